/** The SQLite store URL: a path (or :memory:), and the table and synchronous settings. Nothing is opened. */
import { parseSqliteUrl } from "./index";

describe("parseSqliteUrl", () => {
  test.each([
    ["sqlite:./burr_state.db", "./burr_state.db"],
    ["sqlite:state.db", "state.db"],
    ["sqlite:/var/lib/burr/state.db", "/var/lib/burr/state.db"],
    ["sqlite:///var/lib/burr/state.db", "/var/lib/burr/state.db"],
    ["sqlite://./relative.db", "./relative.db"],
    ["sqlite::memory:", ":memory:"],
    ["sqlite://:memory:", ":memory:"],
  ])("%s is the file %s, with the defaults", (url, path) => {
    expect(parseSqliteUrl(url)).toEqual({ path });
    expect(parseSqliteUrl(url)).toMatchObject({ table: undefined, synchronous: undefined });
  });

  test.each(["sqlite:", "sqlite://", "sqlite:?table=t"])("no path (%s): ./burr_state.db", (url) => {
    expect(parseSqliteUrl(url).path).toBe("./burr_state.db");
  });

  test("table and synchronous come from the query", () => {
    expect(parseSqliteUrl("sqlite:./x.db?table=my_states&synchronous=normal")).toEqual({
      path: "./x.db",
      table: "my_states",
      synchronous: "normal",
    });
    expect(parseSqliteUrl("sqlite::memory:?synchronous=full")).toEqual({ path: ":memory:", synchronous: "full" });
  });

  test("the table name is decoded from the query (the store checks its shape)", () => {
    expect(parseSqliteUrl("sqlite:x.db?table=my%5Fstates").table).toBe("my_states");
  });

  test.each(["off", "FULL", "Normal", "", "extra"])("synchronous=%j is refused, naming the two values", (value) => {
    expect(() => parseSqliteUrl(`sqlite:x.db?synchronous=${value}`)).toThrow(
      `sqlite synchronous must be "full" or "normal", got ${JSON.stringify(value)}`,
    );
  });
});
