/**
 * Stores for the suites: a temporary SQLite file per suite (the databases add theirs). And
 * store-agnostic checks of the history calls at the level of a backend, where the batch size is
 * a parameter: with batches of 1 to 5 rows every batch boundary, cursor and last-batch path of
 * DeleteApp, DeletePartition and Prune runs (the conformance suite's batches of 1000 rarely
 * cross one). The SQLite and PostgreSQL history tests use them; they import no driver.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StoreUnderTest } from "../../../tests/support/subjects";
import type { Backend, HistoryBackend, StepCursor, StoredRow, SyncBackend, SyncHistoryBackend } from "../backend";
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";

export function sqliteStore(): StoreUnderTest {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-sqlite-"));
  let fresh = 0;
  return {
    url: `sqlite:${path.join(dir, "suite.db")}`,
    freshUrl: () => `sqlite:${path.join(dir, `fresh-${++fresh}.db`)}`,
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** What the checks drive: an async backend, or a blocking one behind promises. */
export interface HistoryStore {
  save(row: SaveRow): Promise<Date>;
  load(key: LoadKey): Promise<StoredRow | null>;
  appIds(partitionKey: string): Promise<string[]>;
  steps(key: StepsKey, pageSize: number): Promise<StoredRow[]>;
  deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number>;
  deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }>;
  prune(rule: PruneRule, batchSize: number): Promise<number>;
  close(): Promise<void>;
}

export function asyncStore(backend: Backend & HistoryBackend): HistoryStore {
  return {
    save: (row) => backend.save(row),
    load: (key) => backend.load(key),
    appIds: async (partitionKey) => {
      const ids: string[] = [];
      for await (const page of backend.appIdPages(partitionKey, 2)) ids.push(...page);
      return ids;
    },
    steps: async (key, pageSize) => {
      const rows: StoredRow[] = [];
      for await (const page of backend.stepPages(key, pageSize)) {
        expect(page.length).toBeLessThanOrEqual(pageSize);
        rows.push(...page);
      }
      return rows;
    },
    deleteApp: (partitionKey, appId, batchSize) => backend.deleteApp(partitionKey, appId, batchSize),
    deletePartition: (partitionKey, batchSize) => backend.deletePartition(partitionKey, batchSize),
    prune: (rule, batchSize) => backend.prune(rule, batchSize),
    close: () => backend.close(),
  };
}

export function syncStore(backend: SyncBackend & SyncHistoryBackend): HistoryStore {
  return {
    save: async (row) => backend.save(row),
    load: async (key) => backend.load(key),
    appIds: async (partitionKey) => {
      const ids: string[] = [];
      let cursor: unknown = null;
      do {
        const page = backend.appIdPage(partitionKey, 2, cursor);
        ids.push(...page.ids);
        cursor = page.next;
      } while (cursor !== null);
      return ids;
    },
    steps: async (key, pageSize) => {
      // As the guard drives it: the limit caps each page.
      const rows: StoredRow[] = [];
      let left = key.limit ?? Number.POSITIVE_INFINITY;
      let cursor: StepCursor | null = null;
      do {
        const page = backend.stepPage(key, Math.min(pageSize, left), cursor);
        rows.push(...page.rows.slice(0, left));
        left -= page.rows.length;
        cursor = page.next;
      } while (cursor !== null && left > 0);
      return rows;
    },
    deleteApp: async (partitionKey, appId, batchSize) => backend.deleteApp(partitionKey, appId, batchSize),
    deletePartition: async (partitionKey, batchSize) => backend.deletePartition(partitionKey, batchSize),
    prune: async (rule, batchSize) => backend.prune(rule, batchSize),
    close: async () => backend.close(),
  };
}

/** A small seeded generator, so that a failure can be replayed (the seed is in the test name). */
function random(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (below: number) => Math.floor(next() * below), chance: (p: number) => next() < p };
}

interface ModelRow {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  position: string;
  /** The model's write order. */
  write: number;
  /** Which phase of which round wrote it: 2r before round r's cut, 2r + 1 after. */
  epoch: number;
}

const appKey = (partitionKey: string, appId: string) => JSON.stringify([partitionKey, appId]);
const newestFirst = (a: ModelRow, b: ModelRow) => b.sequenceId - a.sequenceId || b.write - a.write;
const label = (row: { sequenceId: number; position: string }) => `${row.sequenceId}:${row.position}`;

/** What every store must hold after the same calls. */
class Model {
  rows: ModelRow[] = [];
  /** Each listed app's most recent save (Prune leaves it alone; deleting the app forgets it). */
  lastWrite = new Map<string, number>();
  private writes = 0;

  /** False when the four keys are already stored (the store must say ALREADY_EXISTS). */
  save(row: Omit<ModelRow, "write">): boolean {
    if (this.rows.some((r) => r.partitionKey === row.partitionKey && r.appId === row.appId && r.sequenceId === row.sequenceId && r.position === row.position)) return false;
    this.rows.push({ ...row, write: ++this.writes });
    this.lastWrite.set(appKey(row.partitionKey, row.appId), this.writes);
    return true;
  }

  steps(partitionKey: string, appId: string): ModelRow[] {
    return this.rows.filter((r) => r.partitionKey === partitionKey && r.appId === appId).sort(newestFirst);
  }

  apps(partitionKey: string): string[] {
    const ids = [...new Set(this.rows.filter((r) => r.partitionKey === partitionKey).map((r) => r.appId))];
    return ids.sort((a, b) => this.lastWrite.get(appKey(partitionKey, b))! - this.lastWrite.get(appKey(partitionKey, a))!);
  }

  private remove(doomed: (row: ModelRow) => boolean): number {
    const before = this.rows.length;
    this.rows = this.rows.filter((row) => !doomed(row));
    return before - this.rows.length;
  }

  deleteApp(partitionKey: string, appId: string): number {
    this.lastWrite.delete(appKey(partitionKey, appId));
    return this.remove((r) => r.partitionKey === partitionKey && r.appId === appId);
  }

  deletePartition(partitionKey: string) {
    const apps = this.apps(partitionKey);
    for (const appId of apps) this.lastWrite.delete(appKey(partitionKey, appId));
    return { stepsDeleted: this.remove((r) => r.partitionKey === partitionKey), appsDeleted: apps.length };
  }

  /** olderThanEpoch: rows of an epoch below it are older than the rule's time (null: no age rule). */
  prune(rule: PruneRule, olderThanEpoch: number | null): number {
    const doomed = new Set<ModelRow>();
    const scope = new Set(
      this.rows
        .filter((r) => (rule.partitionKey === null || r.partitionKey === rule.partitionKey) && (rule.appId === null || r.appId === rule.appId))
        .map((r) => appKey(r.partitionKey, r.appId)),
    );
    for (const key of scope) {
      const [partitionKey, appId] = JSON.parse(key) as [string, string];
      const kept = rule.keepLast ?? 1;
      for (const row of this.steps(partitionKey, appId).slice(kept)) {
        if (olderThanEpoch === null || row.epoch < olderThanEpoch) doomed.add(row);
      }
    }
    return this.remove((row) => doomed.has(row));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Rounds of random saves (with repeated sequence ids and keys), then random ListSteps pages,
 * deletes and prunes at batch sizes of 1 to 5, each checked against the model: counts, every
 * app's history (newest first, before/limit), the listing and its order, and the three loads.
 */
export async function checkAgainstModel(store: HistoryStore, seed: number, rounds = 12): Promise<void> {
  const rnd = random(seed);
  const model = new Model();
  const tag = `m${seed}-${Math.random().toString(36).slice(2, 6)}`;
  const partitions: string[] = [];
  const cuts: Date[] = [];
  const appsOf = ["a", "b", "c"];

  const saveSome = async (partition: string, count: number, epoch: number) => {
    for (let i = 0; i < count; i++) {
      const appId = appsOf[rnd.int(appsOf.length)]!;
      const row: SaveRow = { partitionKey: partition, appId, sequenceId: rnd.int(9), position: rnd.chance(0.7) ? "p" : "q", state: new Uint8Array([i]), status: "completed" };
      const fresh = model.save({ partitionKey: partition, appId, sequenceId: row.sequenceId, position: row.position, epoch });
      const outcome = await store.save(row).then(
        () => "saved",
        (error: unknown) => (error instanceof PersisterError && error.code === Code.ALREADY_EXISTS ? "duplicate" : error),
      );
      expect(outcome).toBe(fresh ? "saved" : "duplicate");
    }
  };

  const verify = async (context: string) => {
    for (const partition of partitions) {
      expect({ context, partition, apps: await store.appIds(partition) }).toEqual({ context, partition, apps: model.apps(partition) });
      const latest = model.rows.filter((r) => r.partitionKey === partition).sort((a, b) => b.write - a.write)[0];
      const loaded = await store.load({ kind: "partition-latest", partitionKey: partition });
      expect({ context, partition, latest: loaded && `${loaded.appId}/${label(loaded)}` }).toEqual({ context, partition, latest: latest ? `${latest.appId}/${label(latest)}` : null });
      for (const appId of appsOf) {
        const expected = model.steps(partition, appId);
        const includeState = rnd.chance(0.5);
        const all = await store.steps({ partitionKey: partition, appId, beforeSequenceId: null, limit: null, includeState }, 1 + rnd.int(4));
        expect({ context, partition, appId, steps: all.map(label) }).toEqual({ context, partition, appId, steps: expected.map(label) });
        if (!includeState) expect(all.every((row) => row.state.byteLength === 0)).toBe(true);
        const before = rnd.int(10);
        const limit = rnd.chance(0.5) ? null : 1 + rnd.int(4);
        const some = await store.steps({ partitionKey: partition, appId, beforeSequenceId: before, limit, includeState }, 1 + rnd.int(3));
        const expectedSome = expected.filter((r) => r.sequenceId < before).slice(0, limit ?? undefined);
        expect({ context, before, limit, steps: some.map(label) }).toEqual({ context, before, limit, steps: expectedSome.map(label) });
        const top = await store.load({ kind: "app-latest", partitionKey: partition, appId });
        expect({ context, appId, top: top && label(top) }).toEqual({ context, appId, top: expected[0] ? label(expected[0]) : null });
        const sequenceId = rnd.int(9);
        const step = await store.load({ kind: "step", partitionKey: partition, appId, sequenceId });
        const expectedStep = expected.find((r) => r.sequenceId === sequenceId);
        expect({ context, sequenceId, step: step && label(step) }).toEqual({ context, sequenceId, step: expectedStep ? label(expectedStep) : null });
      }
    }
  };

  for (let round = 0; round < rounds; round++) {
    const fresh = [`${tag}-${round}-x`, `${tag}-${round}-y`];
    partitions.push(...fresh);
    for (const partition of fresh) await saveSome(partition, 8 + rnd.int(10), 2 * round);
    // created_at: every row so far is before this round's cut, every later row after it.
    await sleep(15);
    cuts.push(new Date());
    await sleep(15);
    for (const partition of fresh) await saveSome(partition, 4 + rnd.int(8), 2 * round + 1);

    for (let op = 0; op < 4; op++) {
      const batchSize = 1 + rnd.int(5);
      const partition = partitions[rnd.int(partitions.length)]!;
      const appId = appsOf[rnd.int(appsOf.length)]!;
      const kind = rnd.int(6);
      let context: string;
      if (kind === 0) {
        context = `round ${round}: deleteApp(${partition}, ${appId}) in batches of ${batchSize}`;
        expect({ context, deleted: await store.deleteApp(partition, appId, batchSize) }).toEqual({ context, deleted: model.deleteApp(partition, appId) });
      } else if (kind === 1) {
        context = `round ${round}: deletePartition(${partition}) in batches of ${batchSize}`;
        expect({ context, deleted: await store.deletePartition(partition, batchSize) }).toEqual({ context, deleted: model.deletePartition(partition) });
      } else {
        // Prune: one app, one partition, or (rarely) every partition; keep_last, older_than or both.
        const scope = rnd.int(5);
        const keepLast = rnd.chance(0.6) ? 1 + rnd.int(4) : null;
        const ageRound = keepLast === null || rnd.chance(0.5) ? rnd.int(round + 1) : null;
        const rule: PruneRule = {
          partitionKey: scope === 4 ? null : partition,
          appId: scope < 2 ? appId : null,
          keepLast,
          olderThan: ageRound === null ? null : cuts[ageRound]!,
        };
        context = `round ${round}: prune(${JSON.stringify(rule)}) in batches of ${batchSize}`;
        const expected = model.prune(rule, ageRound === null ? null : 2 * ageRound + 1);
        expect({ context, deleted: await store.prune(rule, batchSize) }).toEqual({ context, deleted: expected });
      }
      await verify(context);
      // Saves go on after deletes and prunes: the listing order follows them again.
      if (rnd.chance(0.5)) await saveSome(partition, 2 + rnd.int(3), 2 * round + 1);
    }
  }
}

/** What an observer saw at one instant (one statement, one snapshot): is the app listed, has it steps. */
export type Observation = { listed: boolean; hasSteps: boolean };

/**
 * Saves from several stores (connections, threads, processes' worth) racing a DeleteApp, or a
 * DeletePartition, at batch sizes of 1 to 7 (the 30 first steps make some end exactly on a
 * batch boundary): afterwards the app is listed exactly when it has steps, and every row ever
 * stored is either counted as deleted or still there. Meanwhile `observe` looks at the store
 * in a loop, each look one snapshot: no commit may ever show the app listed without steps, or
 * steps of an app not listed.
 */
export async function checkSavesRacingDeletes(stores: HistoryStore[], observe: (partitionKey: string) => Promise<Observation>, rounds = 12): Promise<void> {
  const tag = `race-${Math.random().toString(36).slice(2, 8)}`;
  let looks = 0;
  for (let round = 0; round < rounds; round++) {
    const partition = `${tag}-${round}`;
    const wholePartition = round % 4 >= 2;
    const save = (store: HistoryStore, sequenceId: number, position: string) =>
      store.save({ partitionKey: partition, appId: "app", sequenceId, position, state: new Uint8Array([1]), status: "completed" }).then(
        () => true,
        (error: unknown) => {
          if (error instanceof PersisterError && error.code === Code.ALREADY_EXISTS) return false;
          throw error;
        },
      );
    await stores[0]!.save({ partitionKey: partition, appId: "other", sequenceId: 0, position: "x", state: new Uint8Array([1]), status: "completed" });
    for (let i = 0; i < 30; i++) await save(stores[0]!, i, "first");
    // Racing saves: keys of steps being deleted (ALREADY_EXISTS until their row is gone, then new rows), below and above the keyset.
    const racing = Array.from({ length: 60 }, (_, i) => save(stores[1 + (i % (stores.length - 1))]!, i % 3 === 0 ? i % 30 : 100 + i, i % 3 === 0 ? "first" : "again"));
    // Some rounds let a few racing saves land first: those the delete finds are deleted with the app.
    if (round % 2 === 1) await sleep(round);
    const batchSize = 1 + (round % 7);
    let deleting = true;
    const seen: Observation[] = [];
    const observer = (async () => {
      while (deleting) {
        seen.push(await observe(partition));
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    const deleted = (wholePartition ? stores[0]!.deletePartition(partition, batchSize).then((done) => done.stepsDeleted) : stores[0]!.deleteApp(partition, "app", batchSize)).finally(() => {
      deleting = false;
    });
    const [saved, count] = await Promise.all([Promise.all(racing), deleted]);
    await observer;
    looks += seen.length;
    expect({ round, wrong: seen.filter((look) => look.listed !== look.hasSteps) }).toEqual({ round, wrong: [] });
    const stored = 30 + saved.filter(Boolean).length + (wholePartition ? 1 : 0);
    const left = await stores[0]!.steps({ partitionKey: partition, appId: "app", beforeSequenceId: null, limit: null, includeState: false }, 1000);
    const listed = (await stores[0]!.appIds(partition)).includes("app");
    const latest = await stores[0]!.load({ kind: "app-latest", partitionKey: partition, appId: "app" });
    expect({ round, listed, hasLatest: latest !== null, rowsAccountedFor: count + left.length }).toEqual({ round, listed: left.length > 0, hasLatest: left.length > 0, rowsAccountedFor: stored });
    expect((await stores[0]!.appIds(partition)).includes("other")).toBe(!wholePartition);
  }
  expect(looks).toBeGreaterThan(0);
}
