import { parseImportArgs, sameTable, UsageError } from "./command";
import { parseSourceUrl } from "./source-url";

describe("parseImportArgs", () => {
  it("takes the source, the store and a partition", () => {
    expect(parseImportArgs(["--from", "burr-sqlite:burr.db", "--store", "sqlite:state.db", "--partition", ""], {})).toEqual({
      source: { layout: "sqlite", path: "burr.db", table: "burr_state" },
      store: "sqlite:state.db",
      partition: "",
    });
  });

  it("takes the store from BURR_STORE, as the server does", () => {
    expect(parseImportArgs(["--from", "burr-sqlite:burr.db"], { BURR_STORE: "postgres://db/app" })).toMatchObject({ store: "postgres://db/app", partition: null });
  });

  it.each([
    [[], /needs --from/],
    [["--from", "burr-sqlite:burr.db"], /needs --store/],
    [["--from", "burr-sqlite:burr.db", "--store", "sqlite:x.db", "extra"], /positional/i],
    [["--from", "burr-sqlite:burr.db", "--store", "sqlite:x.db", "--force"], /Unknown option/],
    [["--from", "redis://cache", "--store", "sqlite:x.db"], /not a Burr persister layout/],
    [["--from", "burr-sqlite:./burr.db", "--store", "sqlite:burr.db"], /same table/],
  ])("refuses %j", (argv, message) => {
    expect(() => parseImportArgs(argv, {})).toThrow(UsageError);
    expect(() => parseImportArgs(argv, {})).toThrow(message);
  });

  it("answers --help", () => {
    expect(parseImportArgs(["--help"], {})).toBe("help");
  });
});

describe("sameTable", () => {
  it.each([
    ["burr-sqlite:burr.db", "sqlite:./burr.db", true],
    ["burr-sqlite:burr.db", "sqlite:burr.db?table=imported", false],
    ["burr-sqlite:burr.db?table=t", "sqlite:other.db?table=t", false],
    ["burr-postgres://u:p@db:5432/app", "postgres://v:q@db:5432/app", true],
    ["burr-postgres://db/app?table=public.burr_state", "postgres://db/app", true],
    ["burr-postgres://db/app", "postgres://db/app?table=imported", false],
    ["burr-postgres://db/app", "postgres://db/other", false],
    ["burr-redis://cache", "redis://cache", false],
  ])("%s and %s: %p", (from, store, same) => {
    expect(sameTable(parseSourceUrl(from), store)).toBe(same);
  });
});
