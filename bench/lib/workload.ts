/**
 * What the bench does, independent of where it is sent: the operations, the data they read
 * (a fixture preloaded before measuring), and the ids they use. Server rows, gRPC ceilings and
 * database ceilings all run these same operations against a `Surface`.
 */
import type { ListStepsQuery, LoadQuery, PersistedState, SaveInput, StepInfo } from "../../client/src/persister";

export const operations = [
  "save",
  "save-new-app",
  "load-latest",
  "load-step",
  "load-partition-latest",
  "list-app-ids",
  "list-steps",
  "list-steps-all",
  "delete-app-100k",
] as const;
export type Operation = (typeof operations)[number];

/**
 * The history rows (issue 13), measured after the others on data of their own, preloaded just
 * before them: a long history of one app (ListSteps), and a very long one that DeleteApp removes.
 */
export const historyOperations = new Set<Operation>(["list-steps", "list-steps-all", "delete-app-100k"]);

/** Operations whose cost does not depend on the state size: measured once per concurrency. */
export const sizeIndependent = new Set<Operation>(["list-app-ids", ...historyOperations]);

/** The page the "list-steps" row reads from the newest step. */
export const historyPage = 100;

export const operationLabels: Record<Operation, string> = {
  save: "Save (next step)",
  "save-new-app": "Save (new app)",
  "load-latest": "Load latest",
  "load-step": "Load by step",
  "load-partition-latest": "Load latest in partition",
  "list-app-ids": "ListAppIds (whole stream)",
  "list-steps": `ListSteps (newest ${historyPage}, no state)`,
  "list-steps-all": "ListSteps (whole history, no state)",
  "delete-app-100k": "DeleteApp (whole history)",
};

/** What every measured target offers: the persister calls, with states as bytes. */
export interface Surface {
  save(input: SaveInput<Uint8Array>): Promise<unknown>;
  load(query: LoadQuery): Promise<PersistedState<Uint8Array> | null>;
  listAppIds(partitionKey: string): Promise<string[]>;
  /** Only the servers (real and no-op): the database ceilings have no history rows. */
  listSteps?(query: ListStepsQuery): AsyncIterable<StepInfo<Uint8Array>>;
  close(): Promise<void>;
}

/** The preloaded data: per state size a partition of `apps` apps with `steps` steps each, and one listing partition. */
export interface Fixture {
  apps: number;
  steps: number;
  /** Apps in the partition ListAppIds streams (one 2 KiB step each). */
  listApps: number;
  /** Steps of the app ListSteps reads (2 KiB each; preloaded only before the list-steps rows). */
  historySteps: number;
}

export const partitionFor = (stateBytes: number) => `bench-${stateBytes}`;
export const listPartition = "bench-list";
export const listStateBytes = 2048;
/** The history rows' partition: the app ListSteps reads, the app DeleteApp deletes and the app loaded meanwhile. */
export const historyPartition = "bench-history";
export const historyApp = "long-history";
export const historyStateBytes = 2048;
export const appId = (index: number) => `app-${String(index).padStart(6, "0")}`;

/** A state of exactly `bytes` bytes; not all one value, so no layer compresses it to nothing. */
export function stateOf(bytes: number, seed = 1): Uint8Array {
  const state = Buffer.alloc(bytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < bytes; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    state[i] = 32 + ((x >>> 0) % 95);
  }
  return state;
}

/** Every row of the fixture, step-major (apps interleave as many running apps would write). */
export function* fixtureRows(fixture: Fixture, stateBytes: number): Iterable<SaveInput<Uint8Array>> {
  const state = stateOf(stateBytes);
  for (let step = 0; step < fixture.steps; step++) {
    for (let app = 0; app < fixture.apps; app++) {
      yield { partitionKey: partitionFor(stateBytes), appId: appId(app), sequenceId: step, position: `step-${step}`, state, status: "completed" };
    }
  }
}

export function* listFixtureRows(fixture: Fixture): Iterable<SaveInput<Uint8Array>> {
  const state = stateOf(listStateBytes);
  for (let app = 0; app < fixture.listApps; app++) {
    yield { partitionKey: listPartition, appId: appId(app), sequenceId: 0, position: "start", state, status: "completed" };
  }
}

/** `steps` steps of one app of the history partition (2 KiB states), newest last. */
export function* historyRows(app: string, steps: number): Iterable<SaveInput<Uint8Array>> {
  const state = stateOf(historyStateBytes, 3);
  for (let step = 0; step < steps; step++) {
    yield { partitionKey: historyPartition, appId: app, sequenceId: step, position: `step-${step}`, state, status: "completed" };
  }
}

/** Saves rows with up to `concurrency` in flight. */
export async function saveAll(surface: Pick<Surface, "save">, rows: Iterable<SaveInput<Uint8Array>>, concurrency = 32): Promise<void> {
  const iterator = rows[Symbol.iterator]();
  const lane = async () => {
    for (let next = iterator.next(); !next.done; next = iterator.next()) await surface.save(next.value);
  };
  await Promise.all(Array.from({ length: concurrency }, lane));
}

/** One measured job: an operation at a state size and concurrency, as seen by one client process. */
export interface JobShape {
  operation: Operation;
  stateBytes: number;
  fixture: Fixture;
  /** Unique per job, so that saves never repeat a stored key. */
  tag: string;
  /** Which client process this is (ids of concurrent processes must differ too). */
  process: number;
}

export interface SlotOperation {
  /** Untimed work before the first measured call (the app a "next step" save extends). */
  prepare(): Promise<void>;
  run(): Promise<void>;
}

const random = (below: number) => Math.floor(Math.random() * below);

/** The calls one in-flight slot makes; answers are checked so a wrong setup cannot look fast. */
export function slotOperation(surface: Surface, job: JobShape, slot: number): SlotOperation {
  const { operation, stateBytes, fixture } = job;
  const partitionKey = partitionFor(stateBytes);
  const state = stateOf(stateBytes, slot + 2);
  const expectState = (row: PersistedState<Uint8Array> | null) => {
    if (!row) throw new Error(`${operation} found nothing: the fixture is missing`);
    if (row.state.byteLength !== stateBytes) throw new Error(`${operation} answered a ${row.state.byteLength}-byte state, not ${stateBytes}`);
  };
  const noPreparation = async () => {};
  switch (operation) {
    case "save": {
      const app = `next-${job.tag}-${job.process}-${slot}`;
      let sequenceId = 0;
      const save = () => surface.save({ partitionKey, appId: app, sequenceId: sequenceId++, position: "step", state, status: "completed" });
      return { prepare: async () => void (await save()), run: async () => void (await save()) };
    }
    case "save-new-app": {
      let count = 0;
      return {
        prepare: noPreparation,
        run: async () =>
          void (await surface.save({ partitionKey, appId: `new-${job.tag}-${job.process}-${slot}-${count++}`, sequenceId: 0, position: "start", state, status: "completed" })),
      };
    }
    case "load-latest":
      return { prepare: noPreparation, run: async () => expectState(await surface.load({ partitionKey, appId: appId(random(fixture.apps)) })) };
    case "load-step":
      return {
        prepare: noPreparation,
        run: async () => expectState(await surface.load({ partitionKey, appId: appId(random(fixture.apps)), sequenceId: random(fixture.steps) })),
      };
    case "load-partition-latest":
      return { prepare: noPreparation, run: async () => expectState(await surface.load({ partitionKey })) };
    case "list-app-ids":
      return {
        prepare: noPreparation,
        run: async () => {
          const ids = await surface.listAppIds(listPartition);
          if (ids.length !== fixture.listApps) throw new Error(`list-app-ids answered ${ids.length} ids, not ${fixture.listApps}`);
        },
      };
    case "list-steps":
    case "list-steps-all": {
      const limit = operation === "list-steps" ? historyPage : undefined;
      const expected = Math.min(limit ?? Number.POSITIVE_INFINITY, fixture.historySteps);
      const listSteps = surface.listSteps?.bind(surface);
      if (!listSteps) throw new Error(`${operation} has no ceiling on this target`);
      return {
        prepare: noPreparation,
        run: async () => {
          let count = 0;
          for await (const step of listSteps({ partitionKey: historyPartition, appId: historyApp, limit })) {
            // Newest first: the steps count down from the highest.
            if (step.sequenceId !== fixture.historySteps - 1 - count) throw new Error(`${operation} answered step ${step.sequenceId} at #${count}`);
            if (step.state !== undefined) throw new Error(`${operation} answered states it was not asked for`);
            count++;
          }
          if (count !== expected) throw new Error(`${operation} answered ${count} steps, not ${expected}`);
        },
      };
    }
    case "delete-app-100k":
      throw new Error("delete-app-100k is one timed call, not a closed loop (bench/run.ts deleteAppRow)");
  }
}
