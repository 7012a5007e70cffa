/**
 * The PostgreSQL store behind PgBouncer in transaction mode (Debian's 1.18: no prepared
 * statements there). Without `pgbouncer=true` the store fails clearly, never INTERNAL: PgBouncer
 * refuses its statement_timeout at connect, and where that is ignored, named statements meet
 * server connections that already hold them. With it, everything works, including Initialize
 * racing itself (a transaction-scoped advisory lock). The conformance suite through PgBouncer is
 * pgbouncer-conformance.test.ts.
 */
import type { Backend } from "../backend";
import { PersisterError } from "@burr-state/client/protocol";
import type { SaveRow } from "@burr-state/client/protocol";
import { openPostgres } from "./index";
import { connectAdmin, pgbouncerUrl, postgresUrl, startPrivatePgBouncer, uniqueTableName, withParams, type PrivatePgBouncer } from "./testing";

const backends: Backend[] = [];
const schemas: string[] = [];
let bouncer: PrivatePgBouncer | undefined;

async function open(url: string, params: Record<string, string>): Promise<Backend> {
  const backend = await openPostgres(withParams(url, params));
  backends.push(backend);
  return backend;
}

/** The call's failure as "CODE: message". */
async function failureOf(work: Promise<unknown>): Promise<string> {
  const error = await work.then(
    () => null,
    (reason: unknown) => reason,
  );
  return error instanceof PersisterError ? `${error.codeName}: ${error.message}` : `not a PersisterError: ${String(error)}`;
}

const row = (appId: string, sequenceId: number): SaveRow => ({
  partitionKey: "p",
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`${appId}@${sequenceId}`)),
  status: "completed",
});

afterAll(async () => {
  await Promise.all(backends.map((backend) => backend.close()));
  await bouncer?.destroy();
  const admin = await connectAdmin(postgresUrl);
  try {
    for (const schema of schemas) await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await admin.end();
  }
});

test("without pgbouncer=true: UNAVAILABLE, naming what PgBouncer refused and the parameter to add", async () => {
  const backend = await open(pgbouncerUrl, { table: uniqueTableName("nobouncer") });
  const failure = await failureOf(backend.probe());
  expect(failure).toMatch(/^UNAVAILABLE: PostgreSQL at 127\.0\.0\.1:\d+\/\w+ is unavailable: unsupported startup parameter: statement_timeout /);
  expect(failure).toContain("add pgbouncer=true to the store URL");
});

test("without pgbouncer=true where PgBouncer ignores statement_timeout: a named statement clashes, FAILED_PRECONDITION naming the parameter to add", async () => {
  // One server connection for every client: the second client to prepare a name finds it there.
  bouncer = await startPrivatePgBouncer({ ignore_startup_parameters: "statement_timeout", default_pool_size: "1" });
  const named = await open(bouncer.url, { table: uniqueTableName("named"), pool: "2" });
  const outcomes = await Promise.allSettled([named.isInitialized(), named.isInitialized()]);
  const failures = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason as Error] : []));
  expect(failures).toHaveLength(1);
  expect(failures[0]).toBeInstanceOf(PersisterError);
  expect((failures[0] as PersisterError).codeName).toBe("FAILED_PRECONDITION");
  expect(failures[0]!.message).toBe(
    `PostgreSQL at 127.0.0.1:${new URL(bouncer.url).port}${new URL(postgresUrl).pathname}: prepared statement "tables_exist" already exists ` +
      "(the store's connections go through PgBouncer in transaction mode: add pgbouncer=true to the store URL)",
  );

  const unnamed = await open(bouncer.url, { table: uniqueTableName("unnamed"), pool: "4", pgbouncer: "true" });
  await unnamed.initialize();
  await Promise.all(Array.from({ length: 40 }, (_, i) => unnamed.save(row(`app${i % 4}`, i))));
  const loaded = await Promise.all(Array.from({ length: 40 }, (_, i) => unnamed.load({ kind: "step", partitionKey: "p", appId: `app${i % 4}`, sequenceId: i })));
  expect(loaded.map((stored) => Buffer.from(stored!.state).toString())).toEqual(Array.from({ length: 40 }, (_, i) => `app${i % 4}@${i}`));
});

test("Initialize racing from eight stores through PgBouncer, into a new schema: all succeed, once the server connections have history too", async () => {
  // Server connections that looked a schema up before may not see it made while they waited
  // for the lock (index.ts, initialize): the later rounds run on such connections.
  for (let round = 0; round < 3; round++) {
    const schema = `burr_bouncer_race_${process.pid}_${round}_${Date.now().toString(36)}`;
    schemas.push(schema);
    const stores = await Promise.all(Array.from({ length: 8 }, () => open(pgbouncerUrl, { schema, table: "states", pgbouncer: "true" })));
    await Promise.all(stores.map((store) => store.initialize()));
    for (const store of stores) expect(await store.isInitialized()).toBe(true);
    await stores[0]!.save(row("app", round));
    expect((await stores[7]!.load({ kind: "partition-latest", partitionKey: "p" }))?.sequenceId).toBe(round);
  }
});
