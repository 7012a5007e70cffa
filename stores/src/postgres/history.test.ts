/**
 * DeleteApp, DeletePartition, Prune and ListSteps at the backend, with batches and pages of a
 * few rows, checked against a model (the store-agnostic checks live beside the SQLite store's
 * test helpers); saves from other pools (as from other servers) racing a DeleteApp; and the two
 * ways a save and the end of a DeleteApp can meet on the app's row of <table>_apps, each made
 * to happen (a transaction held open on a connection of the test's own).
 */
import type { Client } from "pg";
import { PostgresBackend, parsePostgresUrl, postgresStatements } from "./index";
import { connectAdmin, dropTables, postgresUrl, uniqueTableName, withParams } from "./testing";
import { asyncStore, checkAgainstModel, checkSavesRacingDeletes } from "../sqlite/testing";

const table = uniqueTableName("history");
const open = () => new PostgresBackend(parsePostgresUrl(withParams(postgresUrl, { table })));

beforeAll(async () => {
  const backend = open();
  try {
    await backend.initialize();
  } finally {
    await backend.close();
  }
});
afterAll(() => dropTables([table]));

const seed = Number(process.env.HISTORY_SEED ?? Date.now() % 100000);

test(`the store agrees with the model (seed ${seed})`, async () => {
  const store = asyncStore(open());
  try {
    await checkAgainstModel(store, seed);
  } finally {
    await store.close();
  }
}, 120_000);

test("saves from two other pools racing a DeleteApp or DeletePartition: never listed without steps, every row accounted for", async () => {
  const stores = [open(), open(), open()].map(asyncStore);
  const look = await connectAdmin();
  try {
    await checkSavesRacingDeletes(stores, async (partition) => {
      const { rows } = await look.query(
        `SELECT EXISTS (SELECT FROM "${table}_apps" WHERE partition_key = $1 AND app_id = 'app') AS listed,
                EXISTS (SELECT FROM "${table}" WHERE partition_key = $1 AND app_id = 'app') AS "hasSteps"`,
        [partition],
      );
      return rows[0];
    });
  } finally {
    await look.end();
    for (const store of stores) await store.close();
  }
}, 120_000);

describe("a save and the end of a DeleteApp on the app's row", () => {
  const sql = postgresStatements("public", table);
  let backend: PostgresBackend;
  let admin: Client;
  /** Watches pg_stat_activity (outside the held transaction, whose view of it would stay as first read). */
  let watcher: Client;
  beforeEach(async () => {
    backend = open();
    admin = await connectAdmin();
    watcher = await connectAdmin();
  });
  afterEach(async () => {
    await admin.end();
    await watcher.end();
    await backend.close();
  });

  const row = (partitionKey: string, sequenceId: number) => ({ partitionKey, appId: "app", sequenceId, position: "x", state: new Uint8Array([1]), status: "completed" });
  const ids = async (partitionKey: string) => {
    const out: string[] = [];
    for await (const page of backend.appIdPages(partitionKey, 10)) out.push(...page);
    return out;
  };
  const steps = async (partitionKey: string) => {
    const out: number[] = [];
    for await (const page of backend.stepPages({ partitionKey, appId: "app", beforeSequenceId: null, limit: null, includeState: false }, 10)) out.push(...page.map((r) => r.sequenceId));
    return out;
  };
  /** Resolves once some other session waits on a lock while running a statement that matches. */
  async function waitingOn(pattern: string): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const { rows } = await watcher.query("SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE $1", [pattern]);
      if (rows[0].n > 0) return;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`no session waited on a lock running ${pattern}`);
  }

  test("a save holding the row (not yet committed) when the delete ends: the delete waits, sees the step, and the app stays listed", async () => {
    const partition = `held-${Math.random().toString(36).slice(2, 8)}`;
    await backend.save(row(partition, 0));
    // A save's statement, its transaction left open: its step inserted and the app's row updated (locked).
    await admin.query("BEGIN");
    await admin.query(sql.save(1), [partition, "app", 1, "x", Buffer.from([1]), "completed", null]);
    const deleting = backend.deleteApp(partition, "app", 1000);
    await waitingOn(`%${table}_apps%`);
    await admin.query("COMMIT");
    expect(await deleting).toBe(1);
    expect({ listed: await ids(partition), steps: await steps(partition) }).toEqual({ listed: ["app"], steps: [1] });
  });

  test("a save coming while the delete holds the row: it waits, and once the row is gone it makes it again", async () => {
    const partition = `after-${Math.random().toString(36).slice(2, 8)}`;
    await backend.save(row(partition, 0));
    await admin.query(`DELETE FROM "${table}" WHERE partition_key = $1`, [partition]);
    // The delete's last transaction: the app's row locked, then forgotten (no step left that it can see).
    await admin.query("BEGIN");
    const { rows: locked } = await admin.query(sql.lockApp.text, [partition, "app"]);
    const saving = backend.save(row(partition, 1));
    await waitingOn("%INSERT INTO%");
    const { rows: forgotten } = await admin.query(sql.forgetApps.text, [locked.map((r: { ctid: string }) => r.ctid)]);
    await admin.query("COMMIT");
    expect(forgotten[0].forgotten).toBe(1);
    await saving;
    expect({ listed: await ids(partition), steps: await steps(partition) }).toEqual({ listed: ["app"], steps: [1] });
  });
});

test("after every statement and transaction of a DeleteApp or DeletePartition, even one ending exactly on a batch boundary, an app is listed exactly when it has steps", async () => {
  const backend = open();
  const look = await connectAdmin();
  const tag = `b-${Math.random().toString(36).slice(2, 8)}`;
  // Apps of the test's partitions listed without steps, plus apps with steps not listed.
  const wrong = async () =>
    (
      await look.query(
        `SELECT (SELECT count(*) FROM (SELECT partition_key, app_id FROM "${table}_apps" WHERE partition_key LIKE $1
                   EXCEPT SELECT partition_key, app_id FROM "${table}" WHERE partition_key LIKE $1) x)
              + (SELECT count(*) FROM (SELECT partition_key, app_id FROM "${table}" WHERE partition_key LIKE $1
                   EXCEPT SELECT partition_key, app_id FROM "${table}_apps" WHERE partition_key LIKE $1) y) AS n`,
        [`${tag}%`],
      )
    ).rows[0].n as string;
  const seen: string[] = [];
  // Each commit of the store's own, observed: its statements on their own, and its transactions.
  const inner = backend as unknown as { query: (...args: unknown[]) => Promise<unknown>; transaction: (...args: unknown[]) => Promise<unknown> };
  for (const method of ["query", "transaction"] as const) {
    const original = inner[method].bind(backend);
    inner[method] = async (...args: unknown[]) => {
      const result = await original(...args);
      seen.push(await wrong());
      return result;
    };
  }
  try {
    const save = (partitionKey: string, appId: string, sequenceId: number) => backend.save({ partitionKey, appId, sequenceId, position: "x", state: new Uint8Array([1]), status: "completed" });
    for (let i = 0; i < 6; i++) for (const app of ["a", "b"]) await save(`${tag}-p`, app, i);
    expect(await backend.deleteApp(`${tag}-p`, "a", 3)).toBe(6);
    expect(await backend.deletePartition(`${tag}-p`, 3)).toEqual({ stepsDeleted: 6, appsDeleted: 1 });
    for (let i = 0; i < 6; i++) for (const app of ["a", "b", "c"]) await save(`${tag}-q`, app, i);
    expect(await backend.deletePartition(`${tag}-q`, 6)).toEqual({ stepsDeleted: 18, appsDeleted: 3 });
    expect(seen.length).toBeGreaterThan(10);
    expect(seen.every((n) => n === "0")).toBe(true);
  } finally {
    await look.end();
    await backend.close();
  }
});
