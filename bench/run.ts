/**
 * `npm run bench`: every operation, through the async client against a server child process,
 * per backend, state size and concurrency, each row measured side by side with its two
 * ceilings: the same calls against a no-op server (gRPC ceiling) and the same database
 * operations done directly by the driver (database ceiling, see lib/ceilings.ts).
 *
 *   npm run bench                       full run (about 16 minutes on 2 cores), writes bench/results/
 *   npm run bench -- --smoke            tiny run for CI (about a minute), writes nothing
 *   npm run bench -- --backends sqlite --ops save,load-latest --sizes 2048 --concurrency 64 --profile
 *
 * Options: --backends a,b  --ops a,b  --sizes BYTES,..  --concurrency N,..  --warmup-ms N
 * --measure-ms N  --client-processes N (split the calls in flight over N client processes)
 * --sqlite-synchronous full|normal  --postgres-pool N  --sync-calls N  --target-rounds N (rounds
 * of the rows a target applies to; the round with the median ratio is reported)
 * --backend-budget-s N (a backend's remaining rows are left out once it has run this long)
 * --history-steps N (steps of the app the ListSteps rows read: 10,000; smoke 200)
 * --delete-steps N (steps of the app the DeleteApp row deletes: 100,000; smoke 500)
 *   (both smaller on MongoDB/FerretDB unless given: see historySizes)
 * --profile (V8 CPU profiles of the server children into bench/results/profiles/)
 * --out DIR (write results; the default full run writes to bench/results, smoke and filtered
 * runs only print).
 * --python / --no-python / --python-only: the Python rows (lib/python-row.ts: the Python clients
 * against Burr's own persisters), included in unfiltered runs, after the backends.
 * --hop / --no-hop / --hop-only: the hop rows (clients against the no-op server and a raw TCP
 * echo) and the server-side rows (lib/hop.ts), included in unfiltered runs, after the backends.
 * --no-build: measure server/dist as it is (when someone else's half-done change breaks the build).
 * --ops list-steps also measures list-steps-all (the whole history, at the lowest concurrency only).
 * The history rows (list-steps, list-steps-all, delete-app-100k) run last per backend, on data of
 * their own preloaded right before them through the client (64 saves in flight), outside the
 * backend's budget (their sizes are bounded per backend instead).
 * The server is built first (`npm run build`, incremental), as the tests' global setup does.
 * A backend that cannot start (its module still UNIMPLEMENTED, its database unreachable) is
 * reported as skipped with the reason; the run goes on with the others.
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { GrpcStatePersister } from "../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../client/src/sync-persister";
import { rawCodec } from "../client/src/codec";
import { backendNames, benchBackend, type BenchBackend } from "./lib/backends";
import { openCeiling, type BackendName } from "./lib/ceilings";
import { buildServer, ChildExited, repoRoot, startChildServer, type ChildServer } from "./lib/children";
import { serverScript } from "../tests/support/server-process";
import { JobRunner, openSurface, type Job, type Target } from "./lib/jobs";
import { summarize, type Measurement, type Summary, type Timing } from "./lib/load";
import { HopBench, hopBroken, hopMarkdown, type HopLine } from "./lib/hop";
import { PythonBench, pythonBroken, pythonMarkdown, type PythonLine } from "./lib/python-row";
import { formatBytes, formatMs, formatRate, formatRatio, machine, machineLine, markdownTable, type Machine } from "./lib/report";
import {
  appId,
  fixtureRows,
  historyApp,
  historyOperations,
  historyPage,
  historyPartition,
  historyRows,
  historyStateBytes,
  listFixtureRows,
  listStateBytes,
  operationLabels,
  operations,
  partitionFor,
  saveAll,
  sizeIndependent,
  type Surface,
  stateOf,
  type Fixture,
  type Operation,
} from "./lib/workload";

interface Options {
  smoke: boolean;
  backends: BackendName[];
  operations: Operation[];
  sizes: number[];
  concurrencies: number[];
  timing: Timing;
  clientProcesses: number;
  sqliteSynchronous: "full" | "normal";
  postgresPool: number;
  syncCalls: number;
  /** Rounds of each row a target applies to (the median round is reported). */
  targetRounds: number;
  /** Once a backend has taken this long, its remaining rows are not measured (a store too slow to finish). */
  backendBudgetMs: number;
  profileDir?: string;
  outDir?: string;
  /** The Python rows (bench/lib/python-row.ts). */
  python: boolean;
  /** The hop and server-side rows (bench/lib/hop.ts). */
  hop: boolean;
  /** Measure server/dist as it is (no `npm run build` first). */
  noBuild: boolean;
  /** --history-steps / --delete-steps, when given (they then apply to every backend). */
  historySteps?: number;
  deleteSteps?: number;
}

const list = (text: string | undefined) => text?.split(",").map((item) => item.trim()).filter(Boolean);

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: "boolean" },
      backends: { type: "string" },
      ops: { type: "string" },
      sizes: { type: "string" },
      concurrency: { type: "string" },
      "warmup-ms": { type: "string" },
      "measure-ms": { type: "string" },
      "client-processes": { type: "string" },
      "sqlite-synchronous": { type: "string" },
      "postgres-pool": { type: "string" },
      "sync-calls": { type: "string" },
      "target-rounds": { type: "string" },
      "backend-budget-s": { type: "string" },
      profile: { type: "boolean" },
      out: { type: "string" },
      python: { type: "boolean" },
      "no-python": { type: "boolean" },
      "python-only": { type: "boolean" },
      "history-steps": { type: "string" },
      "delete-steps": { type: "string" },
      "no-build": { type: "boolean" },
      "hop": { type: "boolean" },
      "no-hop": { type: "boolean" },
      "hop-only": { type: "boolean" },
    },
  });
  const smoke = values.smoke ?? false;
  const only = values["python-only"] || values["hop-only"];
  const backends = (only ? [] : (list(values.backends) ?? backendNames)) as BackendName[];
  for (const name of backends) if (!backendNames.includes(name)) throw new Error(`unknown backend ${name}: use ${backendNames.join(", ")}`);
  const ops = (list(values.ops) ?? operations) as Operation[];
  for (const op of ops) if (!operations.includes(op)) throw new Error(`unknown operation ${op}: use ${operations.join(", ")}`);
  // The whole-history read is list-steps' second row.
  if (ops.includes("list-steps") && !ops.includes("list-steps-all")) ops.splice(ops.indexOf("list-steps") + 1, 0, "list-steps-all");
  const synchronous = values["sqlite-synchronous"] ?? "full";
  if (synchronous !== "full" && synchronous !== "normal") throw new Error("--sqlite-synchronous is full or normal");
  const filtered = [values.backends, values.ops, values.sizes, values.concurrency, values["python-only"], values["hop-only"]].some((value) => value !== undefined);
  const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "");
  return {
    smoke,
    backends,
    operations: ops,
    sizes: list(values.sizes)?.map(Number) ?? (smoke ? [2048] : [2048, 256 * 1024]),
    // The smoke run only proves the bench works: 8 in flight keep a slow store (FerretDB) within the minute.
    concurrencies: list(values.concurrency)?.map(Number) ?? (smoke ? [1, 8] : [1, 64]),
    timing: {
      warmupMs: Number(values["warmup-ms"] ?? (smoke ? 50 : 200)),
      measureMs: Number(values["measure-ms"] ?? (smoke ? 100 : 600)),
    },
    clientProcesses: Number(values["client-processes"] ?? 1),
    sqliteSynchronous: synchronous,
    postgresPool: Number(values["postgres-pool"] ?? 10),
    syncCalls: Number(values["sync-calls"] ?? (smoke ? 100 : 1000)),
    targetRounds: Number(values["target-rounds"] ?? (smoke ? 1 : 3)),
    backendBudgetMs: 1000 * Number(values["backend-budget-s"] ?? (smoke ? 20 : 120)),
    profileDir: values.profile ? path.join(repoRoot, "bench/results/profiles", stamp) : undefined,
    outDir: values.out ?? (smoke || filtered ? undefined : path.join(repoRoot, "bench/results")),
    python: !values["no-python"] && !values["hop-only"] && (values.python || values["python-only"] || !filtered),
    hop: !values["no-hop"] && !values["python-only"] && (values.hop || values["hop-only"] || !filtered),
    noBuild: values["no-build"] ?? false,
    historySteps: values["history-steps"] === undefined ? undefined : Number(values["history-steps"]),
    deleteSteps: values["delete-steps"] === undefined ? undefined : Number(values["delete-steps"]),
  };
}

/** Smaller fixtures for large states keep the preload short; listings always cover several chunks. */
const fixtureFor = (options: Options, stateBytes: number, historySteps = 0): Fixture => ({
  ...(options.smoke ? { apps: 20, steps: 2, listApps: 50 } : stateBytes > 64 * 1024 ? { apps: 50, steps: 2, listApps: 2500 } : { apps: 500, steps: 4, listApps: 2500 }),
  historySteps,
});

/** The history rows' apps: steps of the app ListSteps reads and of the app DeleteApp deletes. */
const historyFull = { listSteps: 10_000, deleteSteps: 100_000 };
const historySmoke = { listSteps: 200, deleteSteps: 500 };
/**
 * FerretDB (the MongoDB service here) answers a query by reading the whole collection: with
 * 10,000 more steps a ListSteps page took 2.2 s, reading the whole history 27 s, and a DeleteApp
 * of 10,000 steps failed on the store's 5 s socket timeout; with these it finishes (a note under
 * the table says so). The smoke run's collection is small enough for the usual sizes.
 */
const historyFerret = { listSteps: 1_000, deleteSteps: 5_000 };

function historySizes(options: Options, backend: BackendName): { listSteps: number; deleteSteps: number; reduced: boolean } {
  const reduced = backend === "mongo" && !options.smoke;
  const base = options.smoke ? historySmoke : reduced ? historyFerret : historyFull;
  return {
    listSteps: options.historySteps ?? base.listSteps,
    deleteSteps: options.deleteSteps ?? base.deleteSteps,
    reduced: reduced && (options.historySteps === undefined || options.deleteSteps === undefined),
  };
}

interface Row {
  kind: "row";
  backend: BackendName;
  operation: Operation;
  /** null for operations that never read a state (listing). */
  stateBytes: number | null;
  concurrency: number;
  clientProcesses: number;
  server: Summary;
  grpcCeiling: Summary;
  dbCeiling: Summary | null;
  grpcRatio: number;
  dbRatio: number | null;
  /** History rows: the steps of the app listed. */
  historySteps?: number;
  /** Every round's rates, when the row was measured more than once. */
  rounds: Array<{ opsPerSec: number; grpcCeilingOpsPerSec: number; dbCeilingOpsPerSec: number | null }>;
  target: { of: "grpc" | "db"; atLeast: number; met: boolean } | null;
}

interface Round {
  measured: Summary;
  grpcCeiling: Summary;
  dbCeiling: Summary | null;
  grpcRatio: number;
  dbRatio: number | null;
}

interface Skipped {
  /** skipped: the backend could not run at all; unmeasured: some of its rows were left out; note: rows measured differently. */
  kind: "skipped" | "unmeasured" | "note";
  backend: BackendName;
  reason: string;
}

interface SyncRow {
  kind: "sync-client";
  backend: BackendName;
  operation: Operation;
  stateBytes: number;
  calls: number;
  asyncMeanMs: number;
  syncMeanMs: number;
  asyncP50Ms: number;
  syncP50Ms: number;
  overheadMs: number;
  met: boolean;
}

/**
 * DeleteApp of a long history (one call, timed) while another app is loaded in a loop (one
 * call in flight), against the same loop on the idle server just before.
 */
interface DeleteRow {
  kind: "delete-app";
  backend: BackendName;
  stateBytes: number;
  /** Steps preloaded into the app, and how fast (64 saves in flight through the client). */
  steps: number;
  preloadMs: number;
  /** What DeleteApp answered (null: it failed). */
  stepsDeleted: number | null;
  wallMs: number;
  stepsPerSec: number;
  /** True once a Load of the deleted app finds nothing. */
  gone: boolean;
  error?: string;
  errorCode?: string;
  loadsIdle: Summary;
  loadsDuring: Summary;
}

type Line = Row | Skipped | SyncRow | DeleteRow;

/** The issue's targets: Save and Load at 64 in flight with 2 KiB states. */
function targetFor(backend: BackendName, operation: Operation, stateBytes: number | null, concurrency: number) {
  if (stateBytes !== 2048 || concurrency !== 64 || operation === "list-app-ids") return null;
  return backend === "sqlite" ? { of: "grpc" as const, atLeast: 0.75 } : { of: "db" as const, atLeast: 1.0 };
}

const syncOverheadTarget = 0.2;
/** Blocks of 100 calls of each client before the sync client rows are measured. */
const warmupBlocks = 20;

/** Most of the client's 10 s call deadline: rows whose calls would queue longer are left out. */
const queueLimitMs = 8000;

/** Failures that only say a store is too slow (a result); any other means the bench or the product is broken. */
const slowness = new Set(["DEADLINE_EXCEEDED", "UNAVAILABLE"]);

class Bench {
  private readonly runner: JobRunner;
  private readonly noopServers = new Map<string, Promise<ChildServer>>();
  private readonly runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  private jobs = 0;
  /** A history row's preload failed for another reason than a slow store. */
  historyBroken = false;
  /** What an interrupted run must still stop and drop. */
  private current: { server: ChildServer | null; backend: BenchBackend } | null = null;
  readonly lines: Line[] = [];

  constructor(private readonly options: Options) {
    this.runner = new JobRunner(options.clientProcesses);
  }

  private noopServer(fixture: Fixture, stateBytes: number): Promise<ChildServer> {
    const key = `${stateBytes}/${fixture.historySteps}`;
    let server = this.noopServers.get(key);
    if (!server) {
      const args = ["--state-bytes", String(stateBytes), "--list-ids", String(fixture.listApps), "--history-steps", String(fixture.historySteps)];
      server = startChildServer("bench/noop-server.ts", args);
      this.noopServers.set(key, server);
    }
    return server;
  }

  private measure(target: Target, fixture: Fixture, operation: Operation, stateBytes: number, concurrency: number): Promise<Summary> {
    const job: Job = {
      target,
      operation,
      stateBytes,
      concurrency,
      timing: this.options.timing,
      fixture,
      tag: `${this.runId}-${++this.jobs}`,
      process: 0,
    };
    return this.runner.run(job);
  }

  private emit(line: Line) {
    this.lines.push(line);
    console.log(progressLine(line));
  }

  async runBackend(name: BackendName): Promise<void> {
    let started = performance.now();
    const backend = benchBackend(name, this.runId, this.options);
    let server: ChildServer | null = null;
    this.current = { server, backend };
    try {
      try {
        server = await startChildServer(serverScript, ["--store", backend.storeUrl, "--init"], {
          cpuProfDir: this.options.profileDir && path.join(this.options.profileDir, name),
        });
        this.current.server = server;
        await this.preload({ kind: "server", address: server.address });
      } catch (error) {
        this.emit({ kind: "skipped", backend: name, reason: error instanceof ChildExited ? error.reason : errorText(error) });
        return;
      }
      const ceilingFailure = await this.preloadCeiling(backend);
      if (ceilingFailure) console.log(`${name}: the database ceiling is unavailable: ${ceilingFailure}`);
      console.log(`${name}: preloaded in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      // The budget is for the rows: the preload's time depends on the fixture, not on the rows' count.
      started = performance.now();
      const left: string[] = [];
      const overBudget = () => performance.now() - started > this.options.backendBudgetMs;
      for (const [index, stateBytes] of this.options.sizes.entries()) {
        for (const operation of this.options.operations) {
          if (historyOperations.has(operation) || (sizeIndependent.has(operation) && index > 0)) continue;
          await this.measureOperation(backend, server.address, ceilingFailure, fixtureFor(this.options, stateBytes), operation, stateBytes, (label) => {
            if (!overBudget()) return false;
            left.push(label);
            return true;
          });
        }
      }
      if (left.length > 0) {
        this.emit({ kind: "unmeasured", backend: name, reason: `its ${this.options.backendBudgetMs / 1000} s budget ran out before ${left.join(", ")}` });
      }
      if (name === "sqlite") await this.syncClientRows(server.address);
      console.log(`${name}: rows measured in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      await this.historyRows(backend, server.address);
    } finally {
      this.current = null;
      await server?.stop();
      await backend.drop().catch((error: unknown) => console.log(`${name}: could not drop the bench data: ${errorText(error)}`));
    }
  }

  /**
   * One operation at each concurrency. A call that takes seconds alone would only time out with
   * many in flight, and the abandoned work would slow the store down for everyone after: such
   * rows are left out. `leftOut(label)` is true for a row the backend's budget leaves out.
   */
  private async measureOperation(
    backend: BenchBackend,
    address: string,
    ceilingFailure: string | null,
    fixture: Fixture,
    operation: Operation,
    stateBytes: number,
    leftOut: (label: string) => boolean,
  ): Promise<void> {
    const hasCeiling = ceilingFailure === null && !historyOperations.has(operation);
    // A whole history takes hundreds of ms to read: many in flight would only queue.
    const concurrencies = operation === "list-steps-all" ? [Math.min(...this.options.concurrencies)] : this.options.concurrencies;
    let alone: Row | null = null;
    for (const concurrency of concurrencies) {
      const label = `${operation} ${sizeIndependent.has(operation) ? "" : `${formatBytes(stateBytes)} `}x${concurrency}`;
      if (leftOut(label)) continue;
      const queued = (summary: Summary | null | undefined) => (summary ? (summary.p50Ms || Number.POSITIVE_INFINITY) * concurrency : 0);
      const aloneText = (summary: Summary) =>
        summary.calls > 0 ? `one call alone took ${formatMs(summary.p50Ms)} ms` : `no call alone succeeded (${summary.firstError})`;
      if (queued(alone?.server) > queueLimitMs) {
        this.emit({ kind: "unmeasured", backend: backend.name, reason: `${label}: ${aloneText(alone!.server)}` });
        continue;
      }
      const withCeiling = hasCeiling && queued(alone?.dbCeiling) <= queueLimitMs;
      if (hasCeiling && !withCeiling) {
        this.emit({ kind: "unmeasured", backend: backend.name, reason: `${label}, DB ceiling: ${aloneText(alone!.dbCeiling!)}` });
      }
      const row = await this.measureRow(backend, address, withCeiling, fixture, operation, stateBytes, concurrency);
      if (concurrency === 1) alone = row;
      this.emit(row);
    }
  }

  /**
   * The history rows, after the others (their data would slow a slow store's other rows down):
   * ListSteps of an app of a long history, then DeleteApp of an app of a much longer one.
   */
  private async historyRows(backend: BenchBackend, address: string): Promise<void> {
    const selected = this.options.operations.filter((operation) => historyOperations.has(operation));
    if (selected.length === 0) return;
    const started = performance.now();
    const sizes = historySizes(this.options, backend.name);
    if (sizes.reduced) {
      const full = this.options.smoke ? historySmoke : historyFull;
      this.emit({
        kind: "note",
        backend: backend.name,
        reason:
          `history rows on apps of ${sizes.listSteps.toLocaleString("en-US")} (ListSteps) and ${sizes.deleteSteps.toLocaleString("en-US")} steps (DeleteApp), ` +
          `not ${full.listSteps.toLocaleString("en-US")} and ${full.deleteSteps.toLocaleString("en-US")}: FerretDB reads the whole collection for every query ` +
          "(with 10,000 more steps a ListSteps page took 2.2 s and a DeleteApp of 10,000 steps failed on the store's 5 s socket timeout)",
      });
    }
    const listing = selected.filter((operation) => operation !== "delete-app-100k");
    if (listing.length > 0) {
      const surface = await openSurface({ kind: "server", address });
      try {
        const began = performance.now();
        await saveAll(surface, historyRows(historyApp, sizes.listSteps), 64);
        console.log(`${backend.name}: ${rateText(sizes.listSteps, performance.now() - began)} to preload the ListSteps app`);
        const fixture = fixtureFor(this.options, historyStateBytes, sizes.listSteps);
        for (const operation of listing) await this.measureOperation(backend, address, null, fixture, operation, historyStateBytes, () => false);
      } catch (error) {
        this.historyFailure(backend.name, listing.join(", "), error);
      } finally {
        await surface.close();
      }
    }
    if (selected.includes("delete-app-100k")) {
      try {
        this.emit(await this.deleteAppRow(backend.name, address, sizes.deleteSteps));
      } catch (error) {
        this.historyFailure(backend.name, "delete-app-100k", error);
      }
    }
    console.log(`${backend.name}: history rows measured in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  }

  /** History rows that could not be measured (their preload failed): left out; the run fails unless the store was only too slow. */
  private historyFailure(backend: BackendName, rows: string, error: unknown): void {
    const code = (error as { codeName?: unknown }).codeName;
    if (typeof code !== "string" || !slowness.has(code)) this.historyBroken = true;
    this.emit({ kind: "unmeasured", backend, reason: `${rows}: failed: ${errorText(error)}` });
  }

  /**
   * Preloads an app of `steps` steps (64 saves in flight), loads another app of the partition in
   * a loop (one call in flight) for a while, then deletes the long app with one DeleteApp while
   * that loop goes on: the delete's wall time, and what it does to the other calls' latency.
   */
  private async deleteAppRow(backend: BackendName, address: string, steps: number): Promise<DeleteRow> {
    const app = `delete-${this.runId}`;
    const other = `bystander-${this.runId}`;
    // Deletes get the listing deadline (60 s by default): a slow store may need more.
    const client = new GrpcStatePersister({ address, codec: rawCodec, retry: { attempts: 1 }, listDeadlineMs: 600_000 });
    const loader = await openSurface({ kind: "server", address });
    const state = stateOf(historyStateBytes, 5);
    try {
      await client.save({ partitionKey: historyPartition, appId: other, sequenceId: 0, position: "start", state, status: "completed" });
      const began = performance.now();
      await saveAll(client, historyRows(app, steps), 64);
      const preloadMs = performance.now() - began;
      console.log(`${backend}: ${rateText(steps, preloadMs)} to preload the DeleteApp app`);
      const loadLoop = (until: () => boolean) => sequentialLoads(loader, other, until);
      const idleUntil = performance.now() + idleLoadsMs(this.options);
      const loadsIdle = await loadLoop(() => performance.now() >= idleUntil);
      let deleting = true;
      const during = loadLoop(() => !deleting);
      const deleteStarted = performance.now();
      let stepsDeleted: number | null = null;
      let failure: unknown = null;
      try {
        stepsDeleted = await client.deleteApp(historyPartition, app);
      } catch (error) {
        failure = error;
      }
      const wallMs = performance.now() - deleteStarted;
      deleting = false;
      const loadsDuring = await during;
      let gone = false;
      try {
        gone = failure === null && (await client.load({ partitionKey: historyPartition, appId: app })) === null;
      } catch (error) {
        failure = error;
      }
      const code = failure === null ? undefined : (failure as { codeName?: unknown }).codeName;
      return {
        kind: "delete-app",
        backend,
        stateBytes: historyStateBytes,
        steps,
        preloadMs,
        stepsDeleted,
        wallMs,
        stepsPerSec: stepsDeleted === null ? 0 : (stepsDeleted * 1000) / wallMs,
        gone,
        ...(failure === null ? {} : { error: errorText(failure), errorCode: typeof code === "string" ? code : "Error" }),
        loadsIdle,
        loadsDuring,
      };
    } finally {
      await loader.close();
      await client.close();
    }
  }

  /** On SIGINT/SIGTERM: stop the servers and drop the data of the backend being measured. */
  async abort(): Promise<void> {
    const current = this.current;
    this.current = null;
    await current?.server?.stop();
    await current?.backend.drop().catch(() => {});
    await this.close();
  }

  /** One row: the server, then its gRPC ceiling, then its database ceiling, in as many rounds as its target asks. */
  private async measureRow(
    backend: BenchBackend,
    address: string,
    withCeiling: boolean,
    fixture: Fixture,
    operation: Operation,
    stateBytes: number,
    concurrency: number,
  ): Promise<Row> {
    const bytes = sizeIndependent.has(operation) ? listStateBytes : stateBytes;
    const shownBytes = sizeIndependent.has(operation) ? null : bytes;
    const goal = targetFor(backend.name, operation, shownBytes, concurrency);
    const noopAddress = (await this.noopServer(fixture, bytes)).address;
    const rounds: Round[] = [];
    for (let round = 0; round < (goal ? this.options.targetRounds : 1); round++) {
      const measured = await this.measure({ kind: "server", address }, fixture, operation, bytes, concurrency);
      const grpcCeiling = await this.measure({ kind: "server", address: noopAddress }, fixture, operation, bytes, concurrency);
      const dbCeiling = withCeiling ? await this.measure({ kind: "ceiling", spec: backend.ceiling }, fixture, operation, bytes, concurrency) : null;
      rounds.push({
        measured,
        grpcCeiling,
        dbCeiling,
        grpcRatio: measured.opsPerSec / grpcCeiling.opsPerSec,
        dbRatio: dbCeiling ? measured.opsPerSec / dbCeiling.opsPerSec : null,
      });
    }
    // On a noisy machine one round can be an outlier: the row is the round with the median ratio
    // (without a database ceiling, a database target counts as missed).
    const ratioOf = (round: Round) => (goal?.of === "db" ? (round.dbRatio ?? 0) : round.grpcRatio);
    const chosen = [...rounds].sort((a, b) => ratioOf(a) - ratioOf(b))[Math.floor(rounds.length / 2)]!;
    const achieved = ratioOf(chosen);
    return {
      kind: "row",
      backend: backend.name,
      operation,
      stateBytes: shownBytes,
      concurrency,
      clientProcesses: concurrency >= this.options.clientProcesses ? this.options.clientProcesses : 1,
      server: chosen.measured,
      grpcCeiling: chosen.grpcCeiling,
      dbCeiling: chosen.dbCeiling,
      grpcRatio: chosen.grpcRatio,
      dbRatio: chosen.dbRatio,
      ...(historyOperations.has(operation) ? { historySteps: fixture.historySteps } : {}),
      rounds: rounds.map((round) => ({
        opsPerSec: round.measured.opsPerSec,
        grpcCeilingOpsPerSec: round.grpcCeiling.opsPerSec,
        dbCeilingOpsPerSec: round.dbCeiling?.opsPerSec ?? null,
      })),
      target: goal && { ...goal, met: achieved >= goal.atLeast && chosen.measured.errors === 0 },
    };
  }

  private async preload(target: Target): Promise<void> {
    const surface = await openSurface(target);
    try {
      for (const stateBytes of this.options.sizes) await saveAll(surface, fixtureRows(fixtureFor(this.options, stateBytes), stateBytes));
      if (this.options.operations.includes("list-app-ids")) await saveAll(surface, listFixtureRows(fixtureFor(this.options, listStateBytes)));
    } finally {
      await surface.close();
    }
  }

  /** Sets up and fills the ceiling's own data; the failure's text if it cannot. */
  private async preloadCeiling(backend: BenchBackend): Promise<string | null> {
    try {
      const ceiling = await openCeiling(backend.ceiling);
      try {
        await ceiling.setup();
        for (const stateBytes of this.options.sizes) await ceiling.preload(fixtureRows(fixtureFor(this.options, stateBytes), stateBytes));
        if (this.options.operations.includes("list-app-ids")) await ceiling.preload(listFixtureRows(fixtureFor(this.options, listStateBytes)));
      } finally {
        await ceiling.close();
      }
      return null;
    } catch (error) {
      return errorText(error);
    }
  }

  /**
   * The synchronous client's cost per call over the async one: the same sequential calls in
   * rounds of a block of each, in alternating order; the overhead is the median over rounds of
   * the difference of the blocks' medians, so that a noisy moment falls on both clients alike.
   */
  private async syncClientRows(address: string): Promise<void> {
    const stateBytes = 2048;
    const fixture = fixtureFor(this.options, stateBytes);
    const partitionKey = partitionFor(stateBytes);
    const asyncClient = new GrpcStatePersister({ address, codec: rawCodec });
    const syncClient = new SyncGrpcStatePersister({ address, codec: rawCodec });
    const state = stateOf(stateBytes, 7);
    const app = (client: string) => `sync-${this.runId}-${client}`;
    const randomApp = () => appId(Math.floor(Math.random() * fixture.apps));
    const sequence = { async: 0, sync: 0 };
    const calls: Record<"save" | "load-latest", { async: () => Promise<unknown>; sync: () => unknown }> = {
      save: {
        async: () => asyncClient.save({ partitionKey, appId: app("async"), sequenceId: sequence.async++, position: "step", state, status: "completed" }),
        sync: () => syncClient.save({ partitionKey, appId: app("sync"), sequenceId: sequence.sync++, position: "step", state, status: "completed" }),
      },
      "load-latest": {
        async: () => asyncClient.load({ partitionKey, appId: randomApp() }),
        sync: () => syncClient.load({ partitionKey, appId: randomApp() }),
      },
    };
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;
    const block = 100;
    try {
      for (const operation of ["load-latest", "save"] as const) {
        const timeAsync = async () => {
          const times: number[] = [];
          for (let i = 0; i < block; i++) {
            const began = performance.now();
            await calls[operation].async();
            times.push(performance.now() - began);
          }
          return times;
        };
        const timeSync = () => {
          const times: number[] = [];
          for (let i = 0; i < block; i++) {
            const began = performance.now();
            calls[operation].sync();
            times.push(performance.now() - began);
          }
          return times;
        };
        // Both clients warmed alike first: the sync client's worker is a fresh V8 isolate whose
        // code is not yet optimized, while this thread's async code already ran the whole bench.
        for (let i = 0; i < (this.options.smoke ? 1 : warmupBlocks); i++) {
          await timeAsync();
          timeSync();
        }
        const all = { async: [] as number[], sync: [] as number[] };
        const differences: number[] = [];
        for (let round = 0; round * block < this.options.syncCalls; round++) {
          const syncFirst = round % 2 === 1;
          const syncTimes = syncFirst ? timeSync() : [];
          const asyncTimes = await timeAsync();
          if (!syncFirst) syncTimes.push(...timeSync());
          differences.push(median(syncTimes) - median(asyncTimes));
          all.async.push(...asyncTimes);
          all.sync.push(...syncTimes);
        }
        const overheadMs = median(differences);
        this.emit({
          kind: "sync-client",
          backend: "sqlite",
          operation,
          stateBytes,
          calls: all.sync.length,
          asyncMeanMs: mean(all.async),
          syncMeanMs: mean(all.sync),
          asyncP50Ms: median(all.async),
          syncP50Ms: median(all.sync),
          overheadMs,
          met: overheadMs <= syncOverheadTarget,
        });
      }
    } finally {
      syncClient.close();
      await asyncClient.close();
    }
  }

  async close(): Promise<void> {
    this.runner.close();
    await Promise.all([...this.noopServers.values()].map(async (server) => (await server).stop()));
  }
}

/** How long the DeleteApp row loads the other app before the delete, on the idle server. */
const idleLoadsMs = (options: Options) => (options.smoke ? 300 : 2000);

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]!;

const rateText = (steps: number, ms: number) =>
  `${(ms / 1000).toFixed(1)} s (${formatRate((steps * 1000) / ms)} saves/s) for ${steps.toLocaleString("en-US")} steps`;

/** Loads of one app, one call in flight, until `done()`: at least one call. */
async function sequentialLoads(surface: Surface, app: string, done: () => boolean): Promise<Summary> {
  const latencies: number[] = [];
  const failures: Record<string, number> = {};
  let errors = 0;
  let firstError: string | undefined;
  const began = performance.now();
  do {
    const start = performance.now();
    try {
      const row = await surface.load({ partitionKey: historyPartition, appId: app });
      if (!row) throw new Error(`the app ${app} is missing`);
      latencies.push(performance.now() - start);
    } catch (error) {
      errors++;
      const code = (error as { codeName?: unknown }).codeName;
      const key = typeof code === "string" ? code : "Error";
      failures[key] = (failures[key] ?? 0) + 1;
      firstError ??= errorText(error);
    }
  } while (!done());
  const measurement: Measurement = {
    calls: latencies.length,
    errors,
    failures,
    firstError,
    elapsedMs: performance.now() - began,
    latenciesMs: Float64Array.from(latencies),
  };
  return summarize([measurement]);
}

/** A row's operation, with the length of the history it read. */
function rowLabel(row: Row): string {
  if (row.historySteps === undefined) return operationLabels[row.operation];
  const steps = row.historySteps.toLocaleString("en-US");
  return row.operation === "list-steps" ? `ListSteps (newest ${historyPage} of ${steps} steps, no state)` : `ListSteps (all ${steps} steps, no state)`;
}

function progressLine(line: Line): string {
  switch (line.kind) {
    case "skipped":
      return `${line.backend}: SKIPPED: ${line.reason}`;
    case "unmeasured":
      return `${line.backend}: rows NOT MEASURED: ${line.reason}`;
    case "note":
      return `${line.backend}: note: ${line.reason}`;
    case "delete-app":
      return (
        `${line.backend.padEnd(8)} DeleteApp of ${line.steps.toLocaleString("en-US")} steps: ` +
        (line.error === undefined
          ? `${formatMs(line.wallMs)} ms, ${formatRate(line.stepsPerSec)} steps/s${line.stepsDeleted === line.steps && line.gone ? "" : `  WRONG: ${line.stepsDeleted} deleted, gone ${line.gone}`}`
          : `FAILED after ${formatMs(line.wallMs)} ms: ${line.error}`) +
        ` | Loads of another app meanwhile: ${line.loadsDuring.calls} calls, p50 ${formatMs(line.loadsDuring.p50Ms)} p99 ${formatMs(line.loadsDuring.p99Ms)} ms` +
        ` (idle: p50 ${formatMs(line.loadsIdle.p50Ms)} p99 ${formatMs(line.loadsIdle.p99Ms)} ms)` +
        (line.loadsIdle.errors + line.loadsDuring.errors > 0 ? `  LOAD ERRORS: ${line.loadsDuring.firstError ?? line.loadsIdle.firstError}` : "")
      );
    case "sync-client":
      return `${line.backend} sync client ${line.operation}: async p50 ${formatMs(line.asyncP50Ms)} ms, sync p50 ${formatMs(line.syncP50Ms)} ms, overhead ${formatMs(line.overheadMs)} ms per call`;
    case "row": {
      const size = line.stateBytes === null ? "—" : formatBytes(line.stateBytes);
      const errors = line.server.errors > 0 ? `  ERRORS ${JSON.stringify(line.server.failures)}: ${line.server.firstError}` : "";
      const ceilingErrors = [line.grpcCeiling, line.dbCeiling].some((s) => s && s.errors > 0) ? "  (ceiling errors: see JSON)" : "";
      return (
        `${line.backend.padEnd(8)} ${(line.historySteps === undefined ? line.operation : `${line.operation} (${line.historySteps})`).padEnd(22)} ${size.padStart(7)} x${String(line.concurrency).padEnd(3)} ` +
        `${formatRate(line.server.opsPerSec).padStart(7)} ops/s p50 ${formatMs(line.server.p50Ms)} p99 ${formatMs(line.server.p99Ms)} | ` +
        `gRPC ${formatRate(line.grpcCeiling.opsPerSec)} (${formatRatio(line.grpcRatio)}) | ` +
        (line.historySteps === undefined ? `DB ${formatRate(line.dbCeiling?.opsPerSec)} (${formatRatio(line.dbRatio ?? undefined)})` : "DB n/a") +
        `${errors}${ceilingErrors}`
      );
    }
  }
}

/**
 * A row's target verdict. A server cannot outrun the no-op server on the same stack, so where the
 * gRPC ceiling is below the database ceiling, 1.0 × DB is out of reach on this machine: the cell
 * then also shows that bound (gRPC ceiling / DB ceiling).
 */
function targetCell(row: Row): string {
  if (!row.target) return "";
  const verdict = `≥ ${row.target.atLeast.toFixed(2)} × ${row.target.of === "grpc" ? "gRPC" : "DB"}: ${row.target.met ? "met" : "**missed**"}`;
  const bound = row.dbCeiling ? row.grpcCeiling.opsPerSec / row.dbCeiling.opsPerSec : null;
  return row.target.of === "db" && !row.target.met && bound !== null && bound < row.target.atLeast ? `${verdict} (no-op bound ${formatRatio(bound)})` : verdict;
}

function resultsMarkdown(lines: Line[], info: Machine, options: Options): string {
  const rows = lines.filter((line): line is Row => line.kind === "row");
  const table = markdownTable(
    ["Backend", "Operation", "State", "In flight", "ops/s", "p50 ms", "p99 ms", "gRPC ceiling ops/s", "× gRPC", "DB ceiling ops/s", "× DB", "Target"],
    rows.map((row) => [
      row.backend,
      rowLabel(row),
      row.stateBytes === null ? "—" : formatBytes(row.stateBytes),
      String(row.concurrency),
      formatRate(row.server.opsPerSec) + (row.server.errors > 0 ? ` (${row.server.errors} errors)` : ""),
      formatMs(row.server.p50Ms),
      formatMs(row.server.p99Ms),
      formatRate(row.grpcCeiling.opsPerSec),
      formatRatio(row.grpcRatio),
      row.historySteps === undefined ? formatRate(row.dbCeiling?.opsPerSec) : "n/a",
      row.historySteps === undefined ? formatRatio(row.dbRatio ?? undefined) : "n/a",
      targetCell(row),
    ]),
    new Set([3, 4, 5, 6, 7, 8, 9, 10]),
  );
  const syncRows = lines.filter((line): line is SyncRow => line.kind === "sync-client");
  const syncTable = markdownTable(
    ["Operation (2 KiB, sequential)", "async p50 ms", "sync p50 ms", "async mean ms", "sync mean ms", "sync overhead per call", "Target ≤ 0.2 ms"],
    syncRows.map((row) => [
      operationLabels[row.operation],
      formatMs(row.asyncP50Ms),
      formatMs(row.syncP50Ms),
      formatMs(row.asyncMeanMs),
      formatMs(row.syncMeanMs),
      `${(row.overheadMs * 1000).toFixed(0)} µs`,
      row.met ? "met" : "**missed**",
    ]),
    new Set([1, 2, 3, 4, 5]),
  );
  const deleteRows = lines.filter((line): line is DeleteRow => line.kind === "delete-app");
  const deleteTable = markdownTable(
    ["Backend", "App's steps (2 KiB)", "Preload saves/s (64 in flight)", "DeleteApp s", "steps/s", "Loads meanwhile", "p50 ms", "p99 ms", "Loads idle p50 ms", "p99 ms"],
    deleteRows.map((row) => [
      row.backend,
      row.steps.toLocaleString("en-US"),
      formatRate((row.steps * 1000) / row.preloadMs),
      row.error === undefined ? (row.wallMs / 1000).toFixed(2) : `**failed** (${row.error})`,
      row.error === undefined ? formatRate(row.stepsPerSec) + (row.stepsDeleted === row.steps && row.gone ? "" : ` (**${row.stepsDeleted} deleted**)`) : "—",
      row.loadsDuring.calls.toLocaleString("en-US") + (row.loadsDuring.errors > 0 ? ` (${row.loadsDuring.errors} errors)` : ""),
      formatMs(row.loadsDuring.p50Ms),
      formatMs(row.loadsDuring.p99Ms),
      formatMs(row.loadsIdle.p50Ms),
      formatMs(row.loadsIdle.p99Ms),
    ]),
    new Set([1, 2, 3, 4, 5, 6, 7, 8, 9]),
  );
  const skipped = lines.filter((line): line is Skipped => line.kind === "skipped" || line.kind === "unmeasured" || line.kind === "note");
  return [
    "# Benchmark results",
    "",
    machineLine(info),
    `Each row: ${options.timing.measureMs} ms measured after ${options.timing.warmupMs} ms of warm-up, calls from ${options.clientProcesses} client process(es) through the async client (rawCodec), server child process; SQLite synchronous=${options.sqliteSynchronous}; PostgreSQL ceiling pool ${options.postgresPool}. Rows with a target: the median of ${options.targetRounds} rounds (by the target's ratio).`,
    "Ceilings, measured right after each row: gRPC = the same calls against bench/noop-server.ts (same grpc-js stack and messages, canned answers of the same sizes); DB = the same operation done directly by the same driver, one database operation per call, Burr's persister layout (bench/lib/ceilings.ts).",
    "",
    table,
    "",
    ...(syncRows.length > 0 ? ["Synchronous client (SyncGrpcStatePersister) against the async client, SQLite server:", "", syncTable, ""] : []),
    ...(deleteRows.length > 0
      ? [
          "DeleteApp of an app's whole history (one call, which the server runs in batches of 1,000 steps), the app preloaded right before through the client; " +
            `meanwhile another app of the same partition is loaded in a loop, one call in flight (Loads meanwhile), as it was for ${idleLoadsMs(options) / 1000} s just before on the idle server (Loads idle). No ceilings:`,
          "",
          deleteTable,
          "",
        ]
      : []),
    ...skipped.map((line) => `- **${line.backend} ${{ skipped: "skipped", unmeasured: "rows not measured", note: "note" }[line.kind]}**: ${line.reason}`),
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  if (!options.noBuild) buildServer();
  const info = machine();
  console.log(machineLine(info));
  const started = performance.now();
  const bench = new Bench(options);
  const python = options.python
    ? new PythonBench({ smoke: options.smoke, sqliteSynchronous: options.sqliteSynchronous, targetRounds: options.targetRounds, profileDir: options.profileDir })
    : null;
  const hop = options.hop ? new HopBench({ smoke: options.smoke, profileDir: options.profileDir }) : null;
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      console.log(`${signal}: stopping the servers and dropping the bench data`);
      void Promise.all([bench.abort(), python?.abort(), hop?.close()]).finally(() => process.exit(130));
    });
  }
  let pythonLines: PythonLine[] = [];
  let hopLines: HopLine[] = [];
  try {
    for (const name of options.backends) await bench.runBackend(name);
  } finally {
    await bench.close();
  }
  if (hop) hopLines = await hop.run();
  else console.log("hop: the hop and server-side rows are left out (--no-hop, or a filtered run without --hop)");
  if (python) pythonLines = await python.run();
  else console.log("python: the Python rows are left out (--no-python, or a filtered run without --python)");
  const backendsMarkdown = options.backends.length > 0 ? resultsMarkdown(bench.lines, info, options) : `# Benchmark results\n\n${machineLine(info)}\n`;
  const markdown = backendsMarkdown + (hop ? `\n${hopMarkdown(hopLines)}` : "") + (python ? `\n${pythonMarkdown(pythonLines)}` : "");
  console.log(`\n${markdown}`);
  const jsonLines = [...bench.lines, ...hopLines, ...pythonLines].map((line) => JSON.stringify({ ...line, date: info.date, nproc: info.nproc, node: info.node }));
  for (const line of jsonLines) console.log(line);
  console.log(`\nbench took ${((performance.now() - started) / 1000).toFixed(0)} s`);
  if (options.outDir) {
    fs.mkdirSync(options.outDir, { recursive: true });
    const rawFile = path.join(options.outDir, `${info.date.slice(0, 10)}.json`);
    fs.writeFileSync(rawFile, [JSON.stringify({ kind: "machine", ...info }), ...jsonLines].join("\n") + "\n");
    fs.writeFileSync(path.join(options.outDir, "latest.md"), markdown);
    console.log(`wrote ${path.relative(repoRoot, rawFile)} and ${path.relative(repoRoot, path.join(options.outDir, "latest.md"))}`);
  }
  if (options.profileDir) console.log(`CPU profiles of the servers: ${path.relative(repoRoot, options.profileDir)}`);
  // A store too slow for the deadline is a result; any other failure means the bench or the product is broken.
  const unexpected = (summary: Summary | null) => summary !== null && Object.keys(summary.failures).some((code) => !slowness.has(code));
  const broken = bench.lines.some(
    (line) =>
      (line.kind === "row" && [line.server, line.grpcCeiling, line.dbCeiling].some(unexpected)) ||
      (line.kind === "delete-app" &&
        ([line.loadsIdle, line.loadsDuring].some(unexpected) ||
          (line.error === undefined ? line.stepsDeleted !== line.steps || !line.gone : !slowness.has(line.errorCode ?? "Error")))),
  );
  if (bench.lines.some((line) => (line.kind === "row" && line.server.errors > 0) || (line.kind === "delete-app" && line.error !== undefined))) {
    console.log("some calls failed: see the rows marked ERRORS or FAILED");
  }
  if (broken || bench.historyBroken || pythonBroken(pythonLines) || hopBroken(hopLines)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
