/**
 * The PostgreSQL store's own rules: its URL parameters, safe names, Initialize racing itself,
 * a schema that disappears, and shared save statements where each save still stands alone.
 */
import type { Client } from "pg";
import type { Backend } from "../backend";
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { SaveRow } from "@burr-state/client/protocol";
import { openPostgres, parsePostgresUrl } from "./index";
import { connectAdmin, dropTables, postgresUrl, uniqueTableName, withParams } from "./testing";

let admin: Client;
const tables: string[] = [];
const schemas: string[] = [];
const backends: Backend[] = [];

async function open(params: Record<string, string> = {}): Promise<Backend> {
  const table = params.table ?? uniqueTableName("setup");
  if (params.schema) schemas.push(params.schema);
  else tables.push(table);
  const backend = await openPostgres(withParams(postgresUrl, { ...params, table }));
  backends.push(backend);
  return backend;
}

const row = (partitionKey: string, appId: string, sequenceId = 0): SaveRow => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`${appId}@${sequenceId}`)),
  status: "completed",
});

async function codeOf(work: Promise<unknown>): Promise<string> {
  const error = await work.then(
    () => null,
    (reason: unknown) => reason,
  );
  return error instanceof PersisterError ? error.codeName : `not a PersisterError: ${String(error)}`;
}

beforeAll(async () => {
  admin = await connectAdmin();
});

afterAll(async () => {
  await Promise.all(backends.map((backend) => backend.close()));
  for (const schema of schemas) await admin?.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin?.end();
  await dropTables(tables);
});

describe("URL", () => {
  test("table, schema and pool are the store's own; every other parameter goes to pg", () => {
    const options = parsePostgresUrl("postgres://u:p@db.example:6543/states?table=t1&schema=s1&pool=3&application_name=mine&sslmode=disable");
    expect(options).toMatchObject({ table: "t1", schema: "s1", poolSize: 3, target: "db.example:6543/states" });
    const passed = new URL(options.connectionString);
    expect([...passed.searchParams.keys()].sort()).toEqual(["application_name", "sslmode"]);
    expect(parsePostgresUrl("postgres://u@h/d")).toMatchObject({ table: "burr_state", schema: "public", poolSize: 10 });
  });

  test.each(["0", "-1", "2.5", "many", "100000"])("pool=%s is refused", (pool) => {
    expect(() => parsePostgresUrl(`postgres://u@h/d?pool=${pool}`)).toThrow(/pool/);
  });

  test.each([
    ["table", 'states"; DROP TABLE x; --'],
    ["table", "1states"],
    ["schema", "public.other"],
    ["schema", "a b"],
  ])("%s name %j is refused with INVALID_ARGUMENT", async (param, name) => {
    const error = await openPostgres(withParams(postgresUrl, { [param]: name })).catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(PersisterError);
    expect((error as PersisterError).code).toBe(Code.INVALID_ARGUMENT);
  });
});

test("mixed-case schema and table names are quoted, so PostgreSQL keeps them exactly", async () => {
  const schema = `Burr_Schema_${process.pid}_${Date.now().toString(36)}`;
  const table = `Burr_Table_${process.pid}`;
  const backend = await open({ schema, table });
  expect(await backend.isInitialized()).toBe(false);
  await backend.initialize();
  await backend.save(row("p", "app"));
  expect((await backend.load({ kind: "app-latest", partitionKey: "p", appId: "app" }))?.appId).toBe("app");
  const found = await admin.query("SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE nspname = $1 AND relkind = 'r' ORDER BY relname", [schema]);
  expect(found.rows.map((r: { relname: string }) => r.relname)).toEqual([table, `${table}_apps`]);
});

test("eight stores initializing one new schema and table at the same moment all succeed", async () => {
  const schema = `burr_race_${process.pid}_${Date.now().toString(36)}`;
  const stores = await Promise.all(Array.from({ length: 8 }, () => open({ schema, table: "states" })));
  await Promise.all(stores.map((store) => store.initialize()));
  for (const store of stores) expect(await store.isInitialized()).toBe(true);
  await stores[0]!.save(row("p", "app"));
  expect((await stores[7]!.load({ kind: "partition-latest", partitionKey: "p" }))?.appId).toBe("app");
});

test("tables dropped under a running store: FAILED_PRECONDITION, and Initialize on the same pool restores service", async () => {
  const table = uniqueTableName("dropped");
  const backend = await open({ table });
  await backend.initialize();
  // Warm the pool so that its connections hold prepared statements for the old tables.
  await Promise.all(Array.from({ length: 10 }, (_, i) => backend.save(row("p", `app${i}`))));
  await Promise.all(Array.from({ length: 10 }, (_, i) => backend.load({ kind: "app-latest", partitionKey: "p", appId: `app${i}` })));
  await dropTables([table]);
  expect(await backend.isInitialized()).toBe(false);
  expect(await codeOf(backend.save(row("p", "app0", 1)))).toBe("FAILED_PRECONDITION");
  expect(await codeOf(backend.load({ kind: "step", partitionKey: "p", appId: "app0", sequenceId: 0 }))).toBe("FAILED_PRECONDITION");
  await backend.initialize();
  for (let i = 0; i < 10; i++) {
    await backend.save(row("p", `app${i}`, 5));
    expect((await backend.load({ kind: "app-latest", partitionKey: "p", appId: `app${i}` }))?.sequenceId).toBe(5);
  }
});

describe("saves sharing one statement", () => {
  let backend: Backend;
  let table: string;

  beforeAll(async () => {
    table = uniqueTableName("shared");
    backend = await open({ table });
    await backend.initialize();
  });

  test("saves made together are written by one statement; a duplicate among them fails alone", async () => {
    await backend.save(row("batch", "existing"));
    const results = await Promise.allSettled([
      backend.save(row("batch", "new1")),
      backend.save(row("batch", "existing")),
      backend.save(row("batch", "new2")),
      backend.save(row("batch", "new1")),
      backend.save(row("batch", "new3")),
    ]);
    expect(results.map((result) => (result.status === "fulfilled" ? "saved" : (result.reason as PersisterError).codeName))).toEqual([
      "saved",
      "ALREADY_EXISTS",
      "saved",
      "ALREADY_EXISTS",
      "saved",
    ]);
    // One statement, one transaction: the new rows share their transaction's timestamp.
    const written = await admin.query(`SELECT count(*)::int AS rows, count(DISTINCT created_at)::int AS transactions FROM "${table}" WHERE partition_key = 'batch' AND app_id <> 'existing'`);
    expect(written.rows[0]).toEqual({ rows: 3, transactions: 1 });
    expect((await backend.load({ kind: "app-latest", partitionKey: "batch", appId: "existing" }))?.state).toEqual(row("batch", "existing").state);
  });

  test("a save the database rejects fails alone; the saves sharing its statement land", async () => {
    // A trigger stands in for any failure that belongs to one row.
    await admin.query(`CREATE FUNCTION "${table}_poison"() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.app_id = 'poison' THEN RAISE EXCEPTION 'poisoned row'; END IF; RETURN NEW; END $$`);
    await admin.query(`CREATE TRIGGER poison BEFORE INSERT ON "${table}" FOR EACH ROW EXECUTE FUNCTION "${table}_poison"()`);
    try {
      const results = await Promise.allSettled([backend.save(row("poisoned", "ok1")), backend.save(row("poisoned", "poison")), backend.save(row("poisoned", "ok2"))]);
      expect(results.map((result) => result.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      expect(String((results[1] as PromiseRejectedResult).reason)).toMatch(/poisoned row/);
      const listed: string[] = [];
      for await (const page of backend.appIdPages("poisoned", 10)) listed.push(...page);
      expect(listed.sort()).toEqual(["ok1", "ok2"]);
    } finally {
      await admin.query(`DROP TRIGGER poison ON "${table}"`);
      await admin.query(`DROP FUNCTION "${table}_poison"()`);
    }
  });
});
