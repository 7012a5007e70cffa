/**
 * The Python rows of `npm run bench`: the Python clients against the server, versus Burr's own
 * in-process persisters on the same database, with the same 2 KiB Burr State, at 1, 4 and 16
 * threads (issue 12). bench/python/burr_vs_client.py does the measuring, one Python process per
 * side (client/python/.venv's python); this module starts the servers, runs the script, merges
 * its JSON lines into rows and drops what the run stored.
 *
 *   PostgreSQL  Burr's PostgreSQLPersister (psycopg2) in a schema of the run, one per thread;
 *               the server with --store postgres://...?schema=<another schema of the run>
 *   Redis       Burr's RedisBasePersister (redis-py) under a namespace of the run, one per thread;
 *               the server with --store redis://...?prefix=<another prefix of the run>
 *   SQLite      Burr's SQLitePersister on a file, one per thread (Burr's copy());
 *               the server with --store sqlite:<another file in the same directory>
 *
 * Sides: Burr's persister; the sync GrpcStatePersister (one shared by the threads); the
 * AsyncGrpcStatePersister (one, shared by as many asyncio tasks as there are threads); and the
 * sync client against bench/noop-server.ts (the same grpc-js server and messages, answering at
 * once, no store): the client's transport ceiling.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Redis } from "ioredis";
import { Client } from "pg";
import { databaseUrls, dropPostgresSchemas, dropRedisPrefixes, withParams } from "./backends";
import { ChildExited, repoRoot, startChildServer, type ChildServer } from "./children";
import { serverScript } from "../../tests/support/server-process";
import { formatMs, formatRate, formatRatio, markdownTable } from "./report";

export type PythonDb = "postgres" | "redis" | "sqlite";
export type PythonOperation = "save" | "load-latest" | "load-step";

export interface PythonSettings {
  smoke: boolean;
  sqliteSynchronous: "full" | "normal";
  /** Rounds of the row the target applies to; the round with the median ratio is reported. */
  targetRounds: number;
  /** V8 CPU profiles of the server children go to <profileDir>/python-<db>, cProfiles of the Python sides to <profileDir>/python-<db>/cprofile. */
  profileDir?: string;
  /** Only these databases (all three when left out). */
  dbs?: PythonDb[];
}

/** What one side measured in one round (a line of burr_vs_client.py). */
export interface PythonMeasurement {
  statesPerSec: number;
  p50Ms: number | null;
  p99Ms: number | null;
  meanMs: number | null;
  calls: number;
  errors: number;
  firstError: string | null;
  setup: string;
}

export interface PythonRow {
  kind: "python-row";
  db: PythonDb;
  operation: PythonOperation;
  threads: number;
  stateBytes: number;
  burr: PythonMeasurement;
  /** The sync GrpcStatePersister, one shared by the threads. */
  client: PythonMeasurement;
  /** The same with grpcio's EventEngine client off (eventEngineClientOff). */
  tunedClient: PythonMeasurement;
  /** The AsyncGrpcStatePersister, one shared by as many asyncio tasks. */
  asyncClient: PythonMeasurement;
  /** The sync client's same calls against the no-op server. */
  clientCeiling: PythonMeasurement;
  /** The clients' states/s over Burr's. */
  ratio: number;
  tunedRatio: number;
  asyncRatio: number;
  rounds: Array<{ burrStatesPerSec: number; clientStatesPerSec: number; tunedClientStatesPerSec: number; asyncClientStatesPerSec: number; clientCeilingStatesPerSec: number }>;
  /** met: the sync client's ratio; tunedMet: the tuned sync client's; asyncMet: the async client's. */
  target: { atLeast: number; met: boolean; tunedMet: boolean; asyncMet: boolean } | null;
}

export interface PythonSkipped {
  kind: "python-skipped";
  /** null: the whole Python row. */
  db: PythonDb | null;
  reason: string;
  /** The harness itself failed (not a missing prerequisite). */
  broken: boolean;
}

export interface PythonInfo {
  kind: "python-info";
  python: string;
  packages: Record<string, string | null>;
  sqlite: string;
  stateBytes: number;
  warmupS: number;
  measureS: number;
  fixture: { apps: number; steps: number };
}

export type PythonLine = PythonRow | PythonSkipped | PythonInfo;

/** client/python/.venv's python (run-tests.sh builds it), or BURR_BENCH_PYTHON's. */
const venvPython = process.env.BURR_BENCH_PYTHON ?? path.join(repoRoot, "client/python/.venv/bin/python");
const shownPython = venvPython.startsWith(`${repoRoot}/`) ? path.relative(repoRoot, venvPython) : venvPython;
const script = path.join(repoRoot, "bench/python/burr_vs_client.py");
const constraints = path.join(repoRoot, "client/python/constraints.txt");
const operationLabels: Record<PythonOperation, string> = { save: "Save (next step)", "load-latest": "Load latest", "load-step": "Load by step" };
export const dbLabels: Record<PythonDb, string> = { postgres: "PostgreSQL", redis: "Redis", sqlite: "SQLite" };
const allDbs: PythonDb[] = ["postgres", "redis", "sqlite"];

/**
 * Issue 12's targets, client / Burr states/s: saves >= 1.0 at 4 and 16 threads, >= 0.8 at 1, on
 * every database; loads of the latest step >= 1.0 at 4 and 16 threads, >= 0.6 at 1, on
 * PostgreSQL and Redis (SQLite's in-process reads cannot be matched across a process boundary:
 * reported, no target); loads by step: reported.
 */
export function targetFor(db: PythonDb, operation: PythonOperation, threads: number): { atLeast: number } | null {
  if (operation === "save") return { atLeast: threads === 1 ? 0.8 : 1.0 };
  if (operation === "load-latest" && db !== "sqlite") return { atLeast: threads === 1 ? 0.6 : 1.0 };
  return null;
}

interface Case {
  operation: PythonOperation;
  threads: number;
}

const fullCases: Case[] = (["save", "load-latest", "load-step"] as const).flatMap((operation) => [1, 4, 16].map((threads) => ({ operation, threads })));
/** The smoke run only proves every operation, side and database still works. */
const smokeCases: Case[] = [
  { operation: "save", threads: 1 },
  { operation: "load-latest", threads: 1 },
  { operation: "load-step", threads: 1 },
  { operation: "save", threads: 16 },
];

/** tuned: the sync client with eventEngineClientOff. */
type Side = "burr" | "client" | "tuned" | "async" | "noop";

/** Rows whose first round lands within this fraction of their target are measured again (targetRounds in all). */
const nearTarget = 0.25;

class ScriptFailed extends Error {}

/** Why the venv cannot run the script (a missing prerequisite), or null. */
export function pythonMissing(): string | null {
  if (!fs.existsSync(venvPython)) {
    return `${shownPython} is missing: \`bash client/python/run-tests.sh\` builds client/python/.venv (npm test does too), then the bench measures the Python rows`;
  }
  const imports = spawnSync(venvPython, ["-c", "import burr, grpc, google.protobuf"], { encoding: "utf8" });
  if (imports.status !== 0) return `${shownPython} cannot import burr and grpc (run client/python/run-tests.sh): ${lastLine(imports.stderr)}`;
  return null;
}

/**
 * grpcio's own tuning, not the client's: since grpcio 1.80 its core sends and receives through
 * the EventEngine, which on this machine costs a call about twice the CPU and latency of the
 * older iomgr path that this environment variable brings back (README, "Python: lower latency").
 * The bench measures the sync client both ways.
 */
export const eventEngineClientOff = { GRPC_EXPERIMENTS: "-event_engine_client" } as const;

/** Runs burr_vs_client.py with the venv's python; its JSON lines. `started` gets the child (to stop it on an interrupt). */
export function runPythonScript(
  args: string[],
  started: (child: ReturnType<typeof spawn> | null) => void = () => {},
  env: Record<string, string> = {},
): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const child = spawn(venvPython, [script, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1", ...env } });
    started(child);
    let stdout = "";
    let stderr = "";
    child.stdout!.setEncoding("utf8").on("data", (data: string) => (stdout += data));
    child.stderr!.setEncoding("utf8").on("data", (data: string) => (stderr += data));
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      started(null);
      if (code !== 0) {
        reject(new ScriptFailed(`burr_vs_client.py ${args[0]} ${args.slice(1, 5).join(" ")} exited with ${code ?? signal}: ${lastLine(stderr)}`));
        return;
      }
      resolve(
        stdout
          .split("\n")
          .filter((line) => line.startsWith("{"))
          .map((line) => JSON.parse(line) as Record<string, unknown>),
      );
    });
  });
}

export class PythonBench {
  private readonly runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  private readonly timing: { warmupS: number; measureS: number };
  private readonly fixture: { apps: number; steps: number };
  private readonly cases: Case[];
  /** What an interrupted run must still stop and drop. */
  private current: { server: ChildServer | null; drop: () => Promise<void> } | null = null;
  private child: ReturnType<typeof spawn> | null = null;
  private noop: ChildServer | null = null;

  constructor(private readonly settings: PythonSettings) {
    this.timing = settings.smoke ? { warmupS: 0.05, measureS: 0.1 } : { warmupS: 0.3, measureS: 1.2 };
    this.fixture = settings.smoke ? { apps: 20, steps: 2 } : { apps: 500, steps: 4 };
    this.cases = settings.smoke ? smokeCases : fullCases;
  }

  /** Measures every row, printing each as it is measured; a missing prerequisite gives a python-skipped line. */
  async run(): Promise<PythonLine[]> {
    const lines: PythonLine[] = [];
    const emit = (line: PythonLine) => {
      lines.push(line);
      const text = progressLine(line);
      if (text) console.log(text);
    };
    console.log("python: Python clients against Burr's persisters");
    const missing = pythonMissing();
    if (missing) {
      emit({ kind: "python-skipped", db: null, reason: missing, broken: false });
      return lines;
    }
    let info: PythonInfo;
    try {
      const [line] = await this.script(["info"]);
      info = { ...(line as Omit<PythonInfo, "kind" | "warmupS" | "measureS" | "fixture">), kind: "python-info", ...this.timing, fixture: this.fixture };
    } catch (error) {
      emit({ kind: "python-skipped", db: null, reason: errorText(error), broken: true });
      return lines;
    }
    lines.push(info);
    for (const db of this.settings.dbs ?? allDbs) {
      const unmet = db === "postgres" ? ((await postgresUnreachable()) ?? this.installPackage(db)) : db === "redis" ? ((await redisUnreachable()) ?? this.installPackage(db)) : null;
      if (unmet) {
        emit({ kind: "python-skipped", db, reason: unmet, broken: false });
        continue;
      }
      try {
        for (const row of await this.measureDb(db, info.stateBytes)) emit(row);
      } catch (error) {
        emit({ kind: "python-skipped", db, reason: errorText(error), broken: !(error instanceof ChildExited) });
      }
    }
    await this.noop?.stop();
    this.noop = null;
    return lines;
  }

  /** On SIGINT/SIGTERM: stop the Python child and the server, drop the data. */
  async abort(): Promise<void> {
    this.child?.kill("SIGTERM");
    const current = this.current;
    this.current = null;
    await current?.server?.stop();
    await this.noop?.stop();
    await current?.drop().catch(() => {});
  }

  private async measureDb(db: PythonDb, stateBytes: number): Promise<PythonRow[]> {
    const started = performance.now();
    const namespace = `bench_py_${this.runId}`;
    const dir = db === "sqlite" ? fs.mkdtempSync(path.join(os.tmpdir(), "burr-bench-py-")) : null;
    const storeUrls: Record<PythonDb, () => string> = {
      postgres: () => withParams(databaseUrls.postgres, { schema: namespace }),
      redis: () => withParams(databaseUrls.redis, { prefix: namespace }),
      sqlite: () => `sqlite:${path.join(dir!, "store.db")}?synchronous=${this.settings.sqliteSynchronous}`,
    };
    const burrArgs: Record<PythonDb, () => string[]> = {
      postgres: () => ["--postgres-dsn", databaseUrls.postgres, "--postgres-schema", `${namespace}_burr`],
      redis: () => ["--redis-url", databaseUrls.redis, "--redis-namespace", `${namespace}_burr`],
      sqlite: () => ["--sqlite-path", path.join(dir!, "burr.db")],
    };
    const drop = async () => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      else if (db === "postgres") await dropPostgresSchemas(namespace, `${namespace}_burr`);
      else await dropRedisPrefixes(namespace, `${namespace}_burr`);
    };
    this.current = { server: null, drop };
    const profileDir = this.settings.profileDir && path.join(this.settings.profileDir, `python-${db}`);
    try {
      const server = await startChildServer(serverScript, ["--store", storeUrls[db](), "--init"], { cpuProfDir: profileDir });
      this.current.server = server;
      this.noop ??= await startChildServer("bench/noop-server.ts", ["--state-bytes", String(stateBytes), "--list-ids", "10", "--json-state"]);
      const sides: Record<Side, string[]> = {
        burr: ["--side", "burr", "--db", db, ...burrArgs[db]()],
        client: ["--side", "client", "--db", db, "--address", server.address],
        tuned: ["--side", "client", "--db", db, "--address", server.address],
        async: ["--side", "async-client", "--db", db, "--address", server.address],
        noop: ["--side", "client", "--db", db, "--address", this.noop.address],
      };
      const fixture = ["--apps", String(this.fixture.apps), "--steps", String(this.fixture.steps)];
      for (const side of ["burr", "client"] as const) await this.script(["preload", ...sides[side], ...fixture]);
      console.log(`python ${db}: preloaded in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      const measured = new Map<string, Record<Side, PythonMeasurement[]>>();
      const key = (c: Case) => `${c.operation}:${c.threads}`;
      const entry = (c: Case) => measured.get(key(c)) ?? { burr: [], client: [], tuned: [], async: [], noop: [] };
      const rounds = Math.max(1, this.settings.targetRounds);
      for (let round = 0; round < rounds; round++) {
        // After the first round, only the rows whose verdict could go either way.
        const these = round === 0 ? this.cases : this.cases.filter((c) => undecided(db, c, entry(c)));
        if (these.length === 0) break;
        // Alternating which side goes first, so that a drift of the machine falls on all alike.
        const order: Side[] = round % 2 === 0 ? ["burr", "client", "tuned", "async", "noop"] : ["async", "tuned", "client", "burr", "noop"];
        for (const side of order) {
          const timing = ["--warmup-s", String(this.timing.warmupS), "--measure-s", String(this.timing.measureS)];
          const profile = profileDir ? ["--cprofile", path.join(profileDir, "cprofile", `r${round}`)] : [];
          const lines = await this.script(["measure", ...sides[side], ...fixture, ...timing, ...profile, "--cases", these.map(key).join(","), "--tag", `${this.runId}${db}r${round}${side}`], side === "tuned" ? eventEngineClientOff : {});
          for (const line of lines) {
            if (line.kind !== "measurement") continue;
            const c = { operation: line.operation as PythonOperation, threads: line.threads as number };
            const sofar = entry(c);
            sofar[side].push(line as unknown as PythonMeasurement);
            measured.set(key(c), sofar);
          }
        }
      }
      const rows = this.cases.map((c) => rowOf(db, c, entry(c), stateBytes));
      console.log(`python ${db}: measured in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      return rows;
    } finally {
      const current = this.current;
      this.current = null;
      await current?.server?.stop();
      await drop().catch((error: unknown) => console.log(`python ${db}: could not drop the bench data: ${errorText(error)}`));
    }
  }

  private script(args: string[], env: Record<string, string> = {}): Promise<Array<Record<string, unknown>>> {
    return runPythonScript(args, (child) => (this.child = child), env);
  }

  /** Burr's PostgreSQL and Redis persisters need psycopg2 and redis: installed into the venv at the pinned version when missing. */
  private installPackage(db: "postgres" | "redis"): string | null {
    const [module, pkg] = db === "postgres" ? ["psycopg2", "psycopg2-binary"] : ["redis", "redis"];
    if (spawnSync(venvPython, ["-c", `import ${module}`]).status === 0) return null;
    console.log(`python: installing ${pkg} for ${shownPython} (client/python/constraints.txt pins it)`);
    const install = spawnSync(venvPython, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c", constraints, pkg], {
      encoding: "utf8",
      timeout: 300_000,
    });
    if (install.status === 0) return null;
    return `${pkg} (for Burr's ${dbLabels[db]} persister) could not be installed for ${shownPython}: ${lastLine(install.stderr || install.error?.message || "")}`;
  }
}

/** Why PostgreSQL cannot be used, or null. */
async function postgresUnreachable(): Promise<string | null> {
  const client = new Client({ connectionString: databaseUrls.postgres, connectionTimeoutMillis: 5000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return null;
  } catch (error) {
    return `PostgreSQL at ${new URL(databaseUrls.postgres).host} is unreachable (bash .ci/services.sh up, or set BURR_TEST_POSTGRES_URL): ${errorText(error)}`;
  } finally {
    await client.end().catch(() => {});
  }
}

/** Why Redis cannot be used, or null. */
async function redisUnreachable(): Promise<string | null> {
  const redis = new Redis(databaseUrls.redis, { connectTimeout: 5000, maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    await redis.ping();
    return null;
  } catch (error) {
    return `Redis at ${new URL(databaseUrls.redis).host} is unreachable (bash .ci/services.sh up, or set BURR_TEST_REDIS_URL): ${errorText(error)}`;
  } finally {
    redis.disconnect();
  }
}

/** A row whose first round's ratio (either client's) is within nearTarget of its target. */
function undecided(db: PythonDb, c: Case, sofar: Record<Side, PythonMeasurement[]>): boolean {
  const goal = targetFor(db, c.operation, c.threads);
  if (!goal || sofar.burr.length === 0) return false;
  const ratios = [sofar.client, sofar.tuned, sofar.async].map((side) => side[0]!.statesPerSec / sofar.burr[0]!.statesPerSec / goal.atLeast);
  return ratios.some((ratio) => Math.abs(ratio - 1) < nearTarget);
}

/** A row from its rounds: the round with the median (sync client) ratio. */
function rowOf(db: PythonDb, c: Case, sofar: Record<Side, PythonMeasurement[]>, stateBytes: number): PythonRow {
  const rounds = Math.min(sofar.burr.length, sofar.client.length, sofar.tuned.length, sofar.async.length, sofar.noop.length);
  if (rounds === 0) throw new ScriptFailed(`burr_vs_client.py printed no measurement of ${c.operation}:${c.threads}`);
  const pairs = Array.from({ length: rounds }, (_, i) => ({
    burr: sofar.burr[i]!,
    client: sofar.client[i]!,
    tuned: sofar.tuned[i]!,
    async: sofar.async[i]!,
    noop: sofar.noop[i]!,
    ratio: sofar.client[i]!.statesPerSec / sofar.burr[i]!.statesPerSec,
    tunedRatio: sofar.tuned[i]!.statesPerSec / sofar.burr[i]!.statesPerSec,
    asyncRatio: sofar.async[i]!.statesPerSec / sofar.burr[i]!.statesPerSec,
  }));
  const chosen = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor(pairs.length / 2)]!;
  const goal = targetFor(db, c.operation, c.threads);
  return {
    kind: "python-row",
    db,
    operation: c.operation,
    threads: c.threads,
    stateBytes,
    burr: pick(chosen.burr),
    client: pick(chosen.client),
    tunedClient: pick(chosen.tuned),
    asyncClient: pick(chosen.async),
    clientCeiling: pick(chosen.noop),
    ratio: chosen.ratio,
    tunedRatio: chosen.tunedRatio,
    asyncRatio: chosen.asyncRatio,
    rounds: pairs.map((pair) => ({
      burrStatesPerSec: pair.burr.statesPerSec,
      clientStatesPerSec: pair.client.statesPerSec,
      tunedClientStatesPerSec: pair.tuned.statesPerSec,
      asyncClientStatesPerSec: pair.async.statesPerSec,
      clientCeilingStatesPerSec: pair.noop.statesPerSec,
    })),
    target: goal && {
      ...goal,
      met: chosen.ratio >= goal.atLeast && chosen.client.errors === 0,
      tunedMet: chosen.tunedRatio >= goal.atLeast && chosen.tuned.errors === 0,
      asyncMet: chosen.asyncRatio >= goal.atLeast && chosen.async.errors === 0,
    },
  };
}

const pick = (m: PythonMeasurement): PythonMeasurement => ({
  statesPerSec: m.statesPerSec,
  p50Ms: m.p50Ms,
  p99Ms: m.p99Ms,
  meanMs: m.meanMs,
  calls: m.calls,
  errors: m.errors,
  firstError: m.firstError,
  setup: m.setup,
});

function progressLine(line: PythonLine): string | null {
  switch (line.kind) {
    case "python-info":
      return null;
    case "python-skipped":
      return `python${line.db ? ` ${line.db}` : ""}: SKIPPED: ${line.reason}`;
    case "python-row": {
      const side = (m: PythonMeasurement) =>
        `${formatRate(m.statesPerSec).padStart(6)}/s p50 ${formatMs(m.p50Ms ?? undefined)}` + (m.errors > 0 ? ` ERRORS ${m.errors}: ${m.firstError}` : "");
      return (
        `python ${line.db.padEnd(8)} ${line.operation.padEnd(11)} x${String(line.threads).padEnd(2)}  Burr ${side(line.burr)} | sync ${side(line.client)} (${formatRatio(line.ratio)})` +
        ` | tuned ${side(line.tunedClient)} (${formatRatio(line.tunedRatio)}) | async ${side(line.asyncClient)} (${formatRatio(line.asyncRatio)}) | sync on no-op ${formatRate(line.clientCeiling.statesPerSec)}${line.target ? ` | ${targetText(line.target)}` : ""}`
      );
    }
  }
}

const targetText = (target: NonNullable<PythonRow["target"]>) =>
  `≥ ${target.atLeast.toFixed(1)}: sync ${target.met ? "met" : "**missed**"}, tuned ${target.tunedMet ? "met" : "**missed**"}, async ${target.asyncMet ? "met" : "**missed**"}`;

/** Client-side failures other than a slow or unreachable store, or a harness failure: the bench should exit non-zero. */
export function pythonBroken(lines: PythonLine[]): boolean {
  const slowness = /^(DeadlineExceededError|UnavailableError)\b/;
  const failed = (m: PythonMeasurement) => m.errors > 0 && !slowness.test(m.firstError ?? "");
  return lines.some(
    (line) =>
      (line.kind === "python-skipped" && line.broken) ||
      (line.kind === "python-row" && [line.client, line.tunedClient, line.asyncClient, line.clientCeiling].some(failed)),
  );
}

/** The markdown section "Python clients against Burr's persisters". */
export function pythonMarkdown(lines: PythonLine[]): string {
  const info = lines.find((line): line is PythonInfo => line.kind === "python-info");
  const rows = lines.filter((line): line is PythonRow => line.kind === "python-row");
  const skipped = lines.filter((line): line is PythonSkipped => line.kind === "python-skipped");
  const errors = (m: PythonMeasurement) => (m.errors > 0 ? ` (${m.errors} errors)` : "");
  const rate = (m: PythonMeasurement) => formatRate(m.statesPerSec) + errors(m);
  const table = markdownTable(
    ["Database", "Operation", "Threads", "Burr states/s", "Burr p50 ms", "Sync client states/s", "p50 ms", "Sync / Burr", "Tuned sync states/s", "p50 ms", "Tuned / Burr", "Async client states/s", "p50 ms", "Async / Burr", "Target", "Sync client on no-op server states/s"],
    rows.map((row) => [
      dbLabels[row.db],
      operationLabels[row.operation],
      String(row.threads),
      rate(row.burr),
      formatMs(row.burr.p50Ms ?? undefined),
      rate(row.client),
      formatMs(row.client.p50Ms ?? undefined),
      formatRatio(row.ratio),
      rate(row.tunedClient),
      formatMs(row.tunedClient.p50Ms ?? undefined),
      formatRatio(row.tunedRatio),
      rate(row.asyncClient),
      formatMs(row.asyncClient.p50Ms ?? undefined),
      formatRatio(row.asyncRatio),
      row.target ? targetText(row.target) : "",
      formatRate(row.clientCeiling.statesPerSec),
    ]),
    new Set([2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 15]),
  );
  const versions = info
    ? `Python ${info.python}, apache-burr ${info.packages["apache-burr"]}, grpcio ${info.packages.grpcio}, psycopg2-binary ${info.packages["psycopg2-binary"] ?? "—"}, redis ${info.packages.redis ?? "—"}, SQLite ${info.sqlite}`
    : "";
  return [
    "## Python clients against Burr's persisters",
    "",
    ...(info
      ? [
          `The same Burr \`State\` (a chat agent's, ${info.stateBytes} bytes as \`json.dumps(state.serialize())\`) saved (the next step of an app per thread), loaded latest (a random app of ${info.fixture.apps} × ${info.fixture.steps}) and loaded by step (a random step of one) ` +
            "by Burr's own persister in-process (`PostgreSQLPersister`, `RedisBasePersister`, `SQLitePersister`; one per thread, each with its own connection: sharing one is not safe in the PostgreSQL and SQLite persisters, see the script) " +
            "and through the server (child process; its store on the same database: another schema, key prefix or file) by the sync `GrpcStatePersister` (one shared by the threads) and the `AsyncGrpcStatePersister` (one shared by as many asyncio tasks in one event loop), " +
            `and the sync client again in a process started with \`GRPC_EXPERIMENTS=${eventEngineClientOff.GRPC_EXPERIMENTS}\` (Tuned: grpcio's older iomgr transport instead of its EventEngine; README, "Python: lower latency"), ` +
            `each side in its own Python process (bench/python/burr_vs_client.py; ${versions}), closed loop, ${info.measureS} s measured after ${info.warmupS} s of warm-up. ` +
            `Ratios: the client's states/s over Burr's. Rows whose first round lands within ${nearTarget * 100}% of the target are measured in more rounds and the round with the median sync ratio is shown. ` +
            "Sync client on no-op server: the same calls against bench/noop-server.ts (same grpc-js server and messages, no store): the most the client's transport gives on this machine.",
          "",
        ]
      : []),
    ...(rows.length > 0 ? [table, ""] : []),
    ...skipped.map((line) => `- **Python row${line.db ? ` (${dbLabels[line.db]})` : ""} skipped**: ${line.reason}`),
    "",
  ].join("\n");
}

const lastLine = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter((line) => line.trim())
    .pop() ?? "";

const errorText = (error: unknown) => (error instanceof ChildExited ? `the server did not start: ${error.reason}` : error instanceof Error ? error.message : String(error)).split("\n")[0]!;
