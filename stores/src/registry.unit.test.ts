/** Which store a URL opens, by its scheme; nothing here opens a store. */
import { defaultStoreUrl, storeFor, storeUrlForms, stores } from "./registry";

const forms = "sqlite:PATH, sqlite::memory:, postgres://USER:PASSWORD@HOST:PORT/DB, redis://HOST:PORT, rediss://HOST:PORT, redis+cluster://HOST:PORT,HOST:PORT, mongodb://HOST:PORT/DB";

describe("stores", () => {
  test("the four stores, their schemes and drivers", () => {
    expect(stores.map(({ name, schemes, driver }) => ({ name, schemes, driver }))).toEqual([
      { name: "sqlite", schemes: ["sqlite"], driver: "better-sqlite3" },
      { name: "postgres", schemes: ["postgres", "postgresql"], driver: "pg" },
      { name: "redis", schemes: ["redis", "rediss", "redis+cluster", "rediss+cluster"], driver: "ioredis" },
      { name: "mongo", schemes: ["mongodb", "mongodb+srv"], driver: "mongodb" },
    ]);
  });

  test("the URL forms, in order, for --help and errors", () => {
    expect(storeUrlForms).toBe(forms);
  });

  test("the default store is a SQLite file", () => {
    expect(defaultStoreUrl).toBe("sqlite:./burr_state.db");
    expect(storeFor(defaultStoreUrl).name).toBe("sqlite");
  });
});

describe("storeFor", () => {
  test.each([
    ["sqlite:./burr_state.db", "sqlite"],
    ["sqlite::memory:", "sqlite"],
    ["sqlite:///var/lib/x.db", "sqlite"],
    ["postgres://u:p@h:5432/db", "postgres"],
    ["postgresql://h/db", "postgres"],
    ["redis://127.0.0.1:6379", "redis"],
    ["rediss://h:6380", "redis"],
    ["redis+cluster://h1:7000,h2:7000", "redis"],
    ["Rediss+Cluster://h:7000", "redis"],
    ["mongodb://h:27017/db", "mongo"],
    ["mongodb+srv://cluster.example.com/db", "mongo"],
    ["POSTGRES://h/db", "postgres"],
    ["Rediss://h", "redis"],
    ["MongoDB+SRV://c/db", "mongo"],
  ])("%s is the %s store", (url, name) => {
    expect(storeFor(url).name).toBe(name);
  });

  test.each(["mysql://root:hunter2@h/db", "http://u:hunter2@h/", "redis+sentinel://:hunter2@h", "mongodb+ssh://u:hunter2@h/db"])(
    "%s is refused, naming the forms, without the password",
    (url) => {
      let message = "";
      try {
        storeFor(url);
      } catch (error) {
        expect(error).toBeInstanceOf(Error);
        message = (error as Error).message;
      }
      expect(message).toMatch(/^unsupported store URL "/);
      expect(message.endsWith(`: use ${forms}`)).toBe(true);
      expect(message).not.toContain("hunter2");
      expect(message).toContain(":***@");
    },
  );

  test("the refused URL is shown, redacted", () => {
    expect(() => storeFor("mysql://root:hunter2@db:3306/burr?password=x")).toThrow(
      `unsupported store URL "mysql://root:***@db:3306/burr?password=***": use ${forms}`,
    );
  });

  test.each(["", "sqlite", "./burr_state.db", ":memory:", "sqlitex:./a.db", "postgre://h/db"])("%j has no known scheme", (url) => {
    expect(() => storeFor(url)).toThrow(/^unsupported store URL .*: use sqlite:PATH/);
  });
});

describe("a store whose driver is not installed", () => {
  afterEach(() => {
    jest.resetModules();
    jest.dontMock("./sqlite");
  });

  test("opening it names the npm package to install", async () => {
    jest.doMock("./sqlite", () => {
      throw Object.assign(new Error("Cannot find module 'better-sqlite3' from 'stores/src/sqlite/index.ts'"), { code: "MODULE_NOT_FOUND" });
    });
    const registry = jest.requireActual<typeof import("./registry")>("./registry");
    await expect(registry.storeFor("sqlite::memory:").open("sqlite::memory:")).rejects.toThrow(
      "the sqlite store needs its driver: npm install better-sqlite3",
    );
  });

  test("any other failure to load it passes through unchanged", async () => {
    const failure = Object.assign(new Error("Cannot find module 'something-else'"), { code: "MODULE_NOT_FOUND" });
    jest.doMock("./sqlite", () => {
      throw failure;
    });
    const registry = jest.requireActual<typeof import("./registry")>("./registry");
    await expect(registry.storeFor("sqlite::memory:").open("sqlite::memory:")).rejects.toBe(failure);
  });
});
