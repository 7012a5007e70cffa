/**
 * DeleteApp, DeletePartition, Prune and ListSteps at the backend, with batches and pages of a
 * few rows (see testing.ts): the async store (writer thread), the in-memory one (no
 * thread) and the blocking one; and saves from other connections racing a DeleteApp.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { SqliteBackend, SqliteSyncBackend } from "./index";
import { asyncStore, checkAgainstModel, checkSavesRacingDeletes, syncStore } from "./testing";

let dir: string;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-history-"));
});
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const seed = Number(process.env.HISTORY_SEED ?? Date.now() % 100000);

const asyncAt = (file: string) => {
  const backend = new SqliteBackend(new SqliteSyncBackend({ path: file, synchronous: "normal" }, { salvage: false }));
  backend.sync.initialize();
  return backend;
};

test(`the async store (writer thread) agrees with the model (seed ${seed})`, async () => {
  const store = asyncStore(asyncAt(path.join(dir, "async.db")));
  try {
    await checkAgainstModel(store, seed);
  } finally {
    await store.close();
  }
}, 120_000);

test(`the in-memory store agrees with the model (seed ${seed + 1})`, async () => {
  const store = asyncStore(asyncAt(":memory:"));
  try {
    await checkAgainstModel(store, seed + 1);
  } finally {
    await store.close();
  }
}, 120_000);

test(`the blocking store agrees with the model (seed ${seed + 2})`, async () => {
  const backend = new SqliteSyncBackend({ path: path.join(dir, "sync.db"), synchronous: "normal" });
  backend.initialize();
  const store = syncStore(backend);
  try {
    await checkAgainstModel(store, seed + 2);
  } finally {
    await store.close();
  }
}, 120_000);

test("saves from two other connections (writer threads) racing a DeleteApp or DeletePartition: never listed without steps, every row accounted for", async () => {
  const file = path.join(dir, "race.db");
  const stores = [asyncAt(file), asyncAt(file), asyncAt(file)].map(asyncStore);
  // A connection of the test's own: one statement, one snapshot.
  const look = new Database(file, { readonly: true });
  const observe = look.prepare(`SELECT EXISTS (SELECT 1 FROM burr_state_apps WHERE partition_key = ? AND app_id = 'app') AS listed,
                                       EXISTS (SELECT 1 FROM burr_state WHERE partition_key = ? AND app_id = 'app') AS hasSteps`);
  try {
    await checkSavesRacingDeletes(stores, async (partition) => {
      const row = observe.get(partition, partition) as { listed: number; hasSteps: number };
      return { listed: row.listed === 1, hasSteps: row.hasSteps === 1 };
    });
  } finally {
    look.close();
    for (const store of stores) await store.close();
  }
}, 120_000);

test("after every batch of a DeleteApp or DeletePartition, even one ending exactly on a batch boundary, an app is listed exactly when it has steps", () => {
  const backend = new SqliteSyncBackend({ path: path.join(dir, "batches.db"), synchronous: "normal" });
  backend.initialize();
  const look = new Database(path.join(dir, "batches.db"), { readonly: true });
  // Apps listed without steps, plus apps with steps not listed.
  const wrong = look.prepare(`SELECT
      (SELECT count(*) FROM (SELECT partition_key, app_id FROM burr_state_apps EXCEPT SELECT partition_key, app_id FROM burr_state)) +
      (SELECT count(*) FROM (SELECT partition_key, app_id FROM burr_state EXCEPT SELECT partition_key, app_id FROM burr_state_apps)) AS n`);
  const batches: number[] = [];
  const apply = backend.applyBatch.bind(backend);
  backend.applyBatch = (batch) => {
    const outcome = apply(batch);
    batches.push((wrong.get() as { n: number }).n);
    return outcome;
  };
  try {
    const save = (partitionKey: string, appId: string, sequenceId: number) => backend.save({ partitionKey, appId, sequenceId, position: "x", state: new Uint8Array([1]), status: "completed" });
    for (let i = 0; i < 6; i++) for (const app of ["a", "b"]) save("p", app, i);
    expect(backend.deleteApp("p", "a", 3)).toBe(6);
    expect(backend.deletePartition("p", 3)).toEqual({ stepsDeleted: 6, appsDeleted: 1 });
    for (let i = 0; i < 6; i++) for (const app of ["a", "b", "c"]) save("q", app, i);
    expect(backend.deletePartition("q", 6)).toEqual({ stepsDeleted: 18, appsDeleted: 3 });
    expect(batches.length).toBeGreaterThan(5);
    expect(batches.every((n) => n === 0)).toBe(true);
  } finally {
    look.close();
    backend.close();
  }
});
