import { parseSourceUrl, SourceUrlError } from "./source-url";

describe("parseSourceUrl", () => {
  it("reads Burr's SQLite layout, with Burr's default table", () => {
    expect(parseSourceUrl("burr-sqlite:./state.db")).toEqual({ layout: "sqlite", path: "./state.db", table: "burr_state" });
    expect(parseSourceUrl("burr-sqlite:///var/burr.db?table=my_states")).toEqual({ layout: "sqlite", path: "/var/burr.db", table: "my_states" });
  });

  it("reads Burr's PostgreSQL layout and hands the rest to the driver", () => {
    expect(parseSourceUrl("burr-postgres://u:p%40ss@db:5432/app?table=public.burr_state&sslmode=require")).toEqual({
      layout: "postgres",
      connectUrl: "postgres://u:p%40ss@db:5432/app?sslmode=require",
      table: "public.burr_state",
    });
    expect(parseSourceUrl("burr-postgresql://db/app")).toMatchObject({ connectUrl: "postgres://db/app", table: "burr_state" });
  });

  it("reads Burr's Redis layout with or without a namespace and a database number", () => {
    expect(parseSourceUrl("burr-redis://cache:6379/2?namespace=proj")).toEqual({ layout: "redis", connectUrl: "redis://cache:6379/2", namespace: "proj" });
    expect(parseSourceUrl("burr-rediss://:secret@cache:6380")).toEqual({ layout: "redis", connectUrl: "rediss://:secret@cache:6380", namespace: "" });
  });

  it("reads Burr's MongoDB layout, with Burr's default database and collection", () => {
    expect(parseSourceUrl("burr-mongodb://m:27017/app?collection=states&authSource=admin")).toEqual({
      layout: "mongodb",
      connectUrl: "mongodb://m:27017/app?authSource=admin",
      database: "app",
      collection: "states",
    });
    expect(parseSourceUrl("burr-mongodb://m:27017")).toMatchObject({ database: "mydatabase", collection: "mystates" });
  });

  it.each([
    ["sqlite:./x.db", /not a Burr persister layout/],
    ["./x.db", /not a Burr persister layout/],
    ["burr-sqlite:", /needs a file path/],
    ["burr-sqlite:x.db?table=a;drop", /not a plain SQL name/],
    ["burr-sqlite:x.db?table=", /empty table/],
    ["burr-sqlite:x.db?table=a&table=b", /table 2 times/],
    ["burr-sqlite:x.db?mode=ro", /only \?table=/],
    ["burr-postgres://db/app?table=Robert'); DROP", /not a plain SQL name/],
    ["burr-postgres:///app", /needs a host/],
    ["burr-redis://cache/x", /database number/],
    ["burr-redis://cache?prefix=x", /only \?namespace=/],
    ["burr-mongodb://m/a%2Fb", /one database name/],
  ])("refuses %s", (text, message) => {
    expect(() => parseSourceUrl(text)).toThrow(SourceUrlError);
    expect(() => parseSourceUrl(text)).toThrow(message);
  });

  it("names the forms it takes and never repeats a password", () => {
    try {
      parseSourceUrl("burr-postgres://u:hunter2@db/app?table=a-b");
      throw new Error("accepted");
    } catch (error) {
      expect((error as Error).message).toContain("burr-sqlite:PATH");
      expect((error as Error).message).not.toContain("hunter2");
    }
  });
});
