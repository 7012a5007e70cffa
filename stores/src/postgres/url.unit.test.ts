/** The PostgreSQL store URL: what this store reads for itself, and what it hands to pg. Nothing connects. */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { parsePostgresUrl } from "./index";

function thrown(work: () => unknown): Error {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(Error);
    return error as Error;
  }
  throw new Error("expected the URL to be refused");
}

describe("parsePostgresUrl", () => {
  test("defaults: table burr_state in schema public, a pool of 10, not behind PgBouncer; the URL goes to pg as written", () => {
    expect(parsePostgresUrl("postgres://burr:s3cret@db.internal:5433/states")).toEqual({
      connectionString: "postgres://burr:s3cret@db.internal:5433/states",
      target: "db.internal:5433/states",
      schema: "public",
      table: "burr_state",
      poolSize: 10,
      pgbouncer: false,
    });
  });

  test("table, schema, pool and pgbouncer are read and removed; pg's own parameters stay", () => {
    const options = parsePostgresUrl("postgresql://u:p%40w@h:5432/db?table=t1&sslmode=require&schema=app&pool=25&pgbouncer=true&application_name=burr");
    expect(options).toEqual({
      connectionString: "postgresql://u:p%40w@h:5432/db?sslmode=require&application_name=burr",
      target: "h:5432/db",
      schema: "app",
      table: "t1",
      poolSize: 25,
      pgbouncer: true,
    });
  });

  test("the target names host, port and database, never the credentials; localhost and 5432 when absent", () => {
    expect(parsePostgresUrl("postgres://user:hunter2@h/db").target).toBe("h:5432/db");
    expect(parsePostgresUrl("postgres:///db?host=/var/run/postgresql").target).toBe("localhost:5432/db");
    expect(parsePostgresUrl("postgres://h").target).toBe("h:5432/");
    expect(parsePostgresUrl("postgres://[::1]:6543/db").target).toBe("[::1]:6543/db");
    expect(parsePostgresUrl("postgres://h/my%20db").target).toBe("h:5432/my db");
    for (const url of ["postgres://user:hunter2@h:1/db", "postgres://user:hunter2@h/db?pool=3&table=x"]) {
      expect(parsePostgresUrl(url).target).not.toMatch(/hunter2|user/);
    }
  });

  test.each([1, 1000])("pool=%i is accepted", (pool) => {
    expect(parsePostgresUrl(`postgres://h/db?pool=${pool}`).poolSize).toBe(pool);
  });

  test.each(["0", "1001", "-1", "1.5", "ten", "", "NaN", "Infinity"])("pool=%j is refused", (pool) => {
    expect(thrown(() => parsePostgresUrl(`postgres://h/db?pool=${pool}`)).message).toBe(
      `postgres pool must be an integer from 1 to 1000, got ${JSON.stringify(pool)}`,
    );
  });

  test.each([
    ["true", true],
    ["false", false],
  ])("pgbouncer=%s is read as %s", (value, pgbouncer) => {
    expect(parsePostgresUrl(`postgres://h/db?pgbouncer=${value}`).pgbouncer).toBe(pgbouncer);
  });

  test.each(["", "1", "yes", "TRUE", "on"])("pgbouncer=%j is refused", (value) => {
    expect(thrown(() => parsePostgresUrl(`postgres://h/db?pgbouncer=${value}`)).message).toBe(`postgres pgbouncer must be true or false, got ${JSON.stringify(value)}`);
  });

  test.each([
    ["table", "table name", "1st"],
    ["table", "table name", "a-b"],
    ["table", "table name", ""],
    ["table", "table name", "x;drop table y"],
    ["schema", "schema name", "my.schema"],
    ["schema", "schema name", "s".repeat(49)],
  ])("%s=%j is refused INVALID_ARGUMENT, naming the %s", (param, what, value) => {
    const error = thrown(() => parsePostgresUrl(`postgres://h/db?${param}=${encodeURIComponent(value)}`));
    expect(error).toBeInstanceOf(PersisterError);
    expect((error as PersisterError).code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(`${what} ${JSON.stringify(value)} is not allowed: use letters, digits and _ (at most 48, not starting with a digit)`);
  });

  test("a URL that does not parse is refused", () => {
    expect(() => parsePostgresUrl("not a url")).toThrow();
    expect(() => parsePostgresUrl("postgres://h:99999/db")).toThrow();
  });

  test.each(["postgres://u:hun/ter2@h/db", "postgres://u:hun#ter2@h/db", "postgres://u:hun@ter2:x@h:99999/db"])(
    "%j is no URL: INVALID_ARGUMENT with the password masked and how to encode it",
    (url) => {
      const error = thrown(() => parsePostgresUrl(url));
      expect(error).toBeInstanceOf(PersisterError);
      expect((error as PersisterError).code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toMatch(/^the postgres store URL "postgres:\/\/u:\*\*\*@h.*" is not a valid URL: expected postgres:\/\/user:password@host:port\/database.*percent-encode/);
      expect(error.message).not.toMatch(/hun|ter2/);
    },
  );
});
