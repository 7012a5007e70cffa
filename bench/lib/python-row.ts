/**
 * The Python row of `npm run bench`: the Python client (burr_grpc_persister.GrpcStatePersister)
 * against the server, versus Burr's own in-process persisters on the same database, with the
 * same 2 KiB Burr State, at 1 and 4 threads. bench/python/burr_vs_client.py does the measuring,
 * one Python process per side (client/python/.venv's python); this module starts the servers,
 * runs the script, merges its JSON lines into rows and drops what the run stored.
 *
 *   PostgreSQL  Burr's PostgreSQLPersister (psycopg2) in a schema of the run, one per thread;
 *               the server with --store postgres://...?schema=<another schema of the run>
 *   SQLite      Burr's SQLitePersister on a file, one per thread (Burr's copy());
 *               the server with --store sqlite:<another file in the same directory>
 *
 * Save rows also measure the client's transport ceiling: the same saves against bench/noop-server.ts
 * (the same grpc-js server and messages, answering at once, no store), right after the row.
 */
import { spawn, spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Client } from "pg";
import { databaseUrls } from "./backends";
import { ChildExited, repoRoot, startChildServer, type ChildServer } from "./children";
import { serverScript } from "../../tests/support/server-process";
import { formatMs, formatRate, formatRatio, markdownTable } from "./report";

export type PythonDb = "postgres" | "sqlite";
export type PythonOperation = "save" | "load-latest";

export interface PythonSettings {
  smoke: boolean;
  sqliteSynchronous: "full" | "normal";
  /** Rounds of the row the target applies to; the round with the median ratio is reported. */
  targetRounds: number;
  /** V8 CPU profiles of the server children go to <profileDir>/python-<db>. */
  profileDir?: string;
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
  client: PythonMeasurement;
  /** The same client calls against the no-op server (save rows only: its canned state is not JSON). */
  clientCeiling: PythonMeasurement | null;
  /** client states/s over Burr's. */
  ratio: number;
  rounds: Array<{ burrStatesPerSec: number; clientStatesPerSec: number; clientCeilingStatesPerSec: number | null }>;
  target: { atLeast: number; met: boolean } | null;
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
const operationLabels: Record<PythonOperation, string> = { save: "Save (next step)", "load-latest": "Load latest" };
const dbLabels: Record<PythonDb, string> = { postgres: "PostgreSQL", sqlite: "SQLite" };

/** The issue's target: the client with 4 threads on PostgreSQL saves at least as fast as Burr's persister with 4 threads. */
const targetFor = (db: PythonDb, operation: PythonOperation, threads: number) => (db === "postgres" && operation === "save" && threads === 4 ? { atLeast: 1.0 } : null);

interface Case {
  operation: PythonOperation;
  threads: number;
}

const cases: Case[] = [
  { operation: "save", threads: 1 },
  { operation: "save", threads: 4 },
  { operation: "load-latest", threads: 1 },
  { operation: "load-latest", threads: 4 },
];

class ScriptFailed extends Error {}

export class PythonBench {
  private readonly runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  private readonly timing: { warmupS: number; measureS: number };
  private readonly fixture: { apps: number; steps: number };
  /** What an interrupted run must still stop and drop. */
  private current: { server: ChildServer | null; drop: () => Promise<void> } | null = null;
  private child: ReturnType<typeof spawn> | null = null;
  private noop: ChildServer | null = null;

  constructor(private readonly settings: PythonSettings) {
    this.timing = settings.smoke ? { warmupS: 0.05, measureS: 0.2 } : { warmupS: 0.5, measureS: 2 };
    this.fixture = settings.smoke ? { apps: 20, steps: 2 } : { apps: 500, steps: 4 };
  }

  /** Measures every row, printing each as it is measured; a missing prerequisite gives a python-skipped line. */
  async run(): Promise<PythonLine[]> {
    const lines: PythonLine[] = [];
    const emit = (line: PythonLine) => {
      lines.push(line);
      const text = progressLine(line);
      if (text) console.log(text);
    };
    console.log("python: Python client against Burr's persisters");
    if (!fs.existsSync(venvPython)) {
      emit({
        kind: "python-skipped",
        db: null,
        reason: `${shownPython} is missing: \`bash client/python/run-tests.sh\` builds client/python/.venv (npm test does too), then the bench measures this row`,
        broken: false,
      });
      return lines;
    }
    const imports = spawnSync(venvPython, ["-c", "import burr, grpc, google.protobuf"], { encoding: "utf8" });
    if (imports.status !== 0) {
      emit({ kind: "python-skipped", db: null, reason: `${shownPython} cannot import burr and grpc (run client/python/run-tests.sh): ${lastLine(imports.stderr)}`, broken: false });
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
    for (const db of ["postgres", "sqlite"] as const) {
      if (db === "postgres") {
        const missing = (await this.postgresUnreachable()) ?? this.installPsycopg2();
        if (missing) {
          emit({ kind: "python-skipped", db, reason: missing, broken: false });
          continue;
        }
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
    const storeUrl = db === "postgres" ? withParams(databaseUrls.postgres, { schema: namespace }) : `sqlite:${path.join(dir!, "store.db")}?synchronous=${this.settings.sqliteSynchronous}`;
    const burrArgs =
      db === "postgres" ? ["--postgres-dsn", databaseUrls.postgres, "--postgres-schema", `${namespace}_burr`] : ["--sqlite-path", path.join(dir!, "burr.db")];
    const drop = async () => {
      if (dir) fs.rmSync(dir, { recursive: true, force: true });
      else await dropSchemas(namespace, `${namespace}_burr`);
    };
    this.current = { server: null, drop };
    try {
      const server = await startChildServer(serverScript, ["--store", storeUrl, "--init"], {
        cpuProfDir: this.settings.profileDir && path.join(this.settings.profileDir, `python-${db}`),
      });
      this.current.server = server;
      this.noop ??= await startChildServer("bench/noop-server.ts", ["--state-bytes", String(stateBytes), "--list-ids", "10"]);
      const sides = {
        burr: ["--side", "burr", "--db", db, ...burrArgs],
        client: ["--side", "client", "--db", db, "--address", server.address],
        noop: ["--side", "client", "--db", db, "--address", this.noop.address],
      };
      const fixture = ["--apps", String(this.fixture.apps), "--steps", String(this.fixture.steps)];
      for (const side of ["burr", "client"] as const) await this.script(["preload", ...sides[side], ...fixture]);
      console.log(`python ${db}: preloaded in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      const measured = new Map<string, { burr: PythonMeasurement[]; client: PythonMeasurement[]; noop: PythonMeasurement[] }>();
      const key = (c: Case) => `${c.operation}:${c.threads}`;
      const rounds = Math.max(1, this.settings.targetRounds);
      for (let round = 0; round < rounds; round++) {
        const these = round === 0 ? cases : cases.filter((c) => targetFor(db, c.operation, c.threads));
        if (these.length === 0) break;
        // Alternating which side goes first, so that a drift of the machine falls on both alike;
        // the client's ceiling (saves only) right after.
        const order = round % 2 === 0 ? (["burr", "client", "noop"] as const) : (["client", "burr", "noop"] as const);
        for (const side of order) {
          const theseHere = side === "noop" ? these.filter((c) => c.operation === "save") : these;
          if (theseHere.length === 0) continue;
          const timing = ["--warmup-s", String(this.timing.warmupS), "--measure-s", String(this.timing.measureS)];
          const lines = await this.script(["measure", ...sides[side], ...fixture, ...timing, "--cases", theseHere.map(key).join(","), "--tag", `${this.runId}${db}r${round}`]);
          for (const line of lines) {
            if (line.kind !== "measurement") continue;
            const entry = measured.get(`${line.operation}:${line.threads}`) ?? { burr: [], client: [], noop: [] };
            entry[side].push(line as unknown as PythonMeasurement);
            measured.set(`${line.operation}:${line.threads}`, entry);
          }
        }
      }
      const rows: PythonRow[] = [];
      for (const c of cases) {
        const entry = measured.get(key(c));
        if (!entry || entry.burr.length === 0 || entry.client.length === 0) throw new ScriptFailed(`burr_vs_client.py printed no measurement of ${key(c)}`);
        const pairs = entry.burr.map((burr, i) => ({
          burr,
          client: entry.client[i]!,
          noop: entry.noop[i] ?? null,
          ratio: entry.client[i]!.statesPerSec / burr.statesPerSec,
        }));
        const chosen = [...pairs].sort((a, b) => a.ratio - b.ratio)[Math.floor(pairs.length / 2)]!;
        const goal = targetFor(db, c.operation, c.threads);
        rows.push({
          kind: "python-row",
          db,
          operation: c.operation,
          threads: c.threads,
          stateBytes,
          burr: pick(chosen.burr),
          client: pick(chosen.client),
          clientCeiling: chosen.noop && pick(chosen.noop),
          ratio: chosen.ratio,
          rounds: pairs.map((pair) => ({
            burrStatesPerSec: pair.burr.statesPerSec,
            clientStatesPerSec: pair.client.statesPerSec,
            clientCeilingStatesPerSec: pair.noop?.statesPerSec ?? null,
          })),
          target: goal && { ...goal, met: chosen.ratio >= goal.atLeast && chosen.client.errors === 0 },
        });
      }
      console.log(`python ${db}: measured in ${((performance.now() - started) / 1000).toFixed(0)} s`);
      return rows;
    } finally {
      const current = this.current;
      this.current = null;
      await current?.server?.stop();
      await drop().catch((error: unknown) => console.log(`python ${db}: could not drop the bench data: ${errorText(error)}`));
    }
  }

  /** Runs burr_vs_client.py with the venv's python; its JSON lines. */
  private script(args: string[]): Promise<Array<Record<string, unknown>>> {
    return new Promise((resolve, reject) => {
      const child = spawn(venvPython, [script, ...args], { cwd: repoRoot, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, PYTHONUNBUFFERED: "1" } });
      this.child = child;
      let stdout = "";
      let stderr = "";
      child.stdout!.setEncoding("utf8").on("data", (data: string) => (stdout += data));
      child.stderr!.setEncoding("utf8").on("data", (data: string) => (stderr += data));
      child.once("error", reject);
      child.once("exit", (code, signal) => {
        this.child = null;
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

  /** Why PostgreSQL cannot be used, or null. */
  private async postgresUnreachable(): Promise<string | null> {
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

  /** Burr's PostgreSQL persister needs psycopg2: installed into the venv at the pinned version when missing. */
  private installPsycopg2(): string | null {
    if (spawnSync(venvPython, ["-c", "import psycopg2"]).status === 0) return null;
    console.log(`python: installing psycopg2-binary for ${shownPython} (client/python/constraints.txt pins it)`);
    const install = spawnSync(venvPython, ["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-c", constraints, "psycopg2-binary"], {
      encoding: "utf8",
      timeout: 300_000,
    });
    if (install.status === 0) return null;
    return `psycopg2-binary (for Burr's PostgreSQLPersister) could not be installed for ${shownPython}: ${lastLine(install.stderr || install.error?.message || "")}`;
  }
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

/** Client-side failures other than a slow or unreachable store, or a harness failure: the bench should exit non-zero. */
export function pythonBroken(lines: PythonLine[]): boolean {
  const slowness = /^(DeadlineExceededError|UnavailableError)\b/;
  return lines.some(
    (line) =>
      (line.kind === "python-skipped" && line.broken) ||
      (line.kind === "python-row" && line.client.errors > 0 && !slowness.test(line.client.firstError ?? "")),
  );
}

function progressLine(line: PythonLine): string | null {
  switch (line.kind) {
    case "python-info":
      return null;
    case "python-skipped":
      return `python${line.db ? ` ${line.db}` : ""}: SKIPPED: ${line.reason}`;
    case "python-row": {
      const side = (m: PythonMeasurement) =>
        `${formatRate(m.statesPerSec).padStart(6)} states/s p50 ${formatMs(m.p50Ms ?? undefined)} p99 ${formatMs(m.p99Ms ?? undefined)}` +
        (m.errors > 0 ? ` ERRORS ${m.errors}: ${m.firstError}` : "");
      const ceiling = line.clientCeiling ? ` | client on no-op server ${formatRate(line.clientCeiling.statesPerSec)}` : "";
      return `python ${line.db.padEnd(8)} ${line.operation.padEnd(11)} x${line.threads}  Burr ${side(line.burr)} | client ${side(line.client)} | client/Burr ${formatRatio(line.ratio)}${ceiling}`;
    }
  }
}

/** The markdown section "Python client against Burr's persisters". */
export function pythonMarkdown(lines: PythonLine[]): string {
  const info = lines.find((line): line is PythonInfo => line.kind === "python-info");
  const rows = lines.filter((line): line is PythonRow => line.kind === "python-row");
  const skipped = lines.filter((line): line is PythonSkipped => line.kind === "python-skipped");
  const errors = (m: PythonMeasurement) => (m.errors > 0 ? ` (${m.errors} errors)` : "");
  const table = markdownTable(
    ["Database", "Operation", "Threads", "Burr states/s", "Burr p50 ms", "Burr p99 ms", "Client states/s", "Client p50 ms", "Client p99 ms", "Client / Burr", "Target", "Client on no-op server states/s"],
    rows.map((row) => [
      dbLabels[row.db],
      operationLabels[row.operation],
      String(row.threads),
      formatRate(row.burr.statesPerSec) + errors(row.burr),
      formatMs(row.burr.p50Ms ?? undefined),
      formatMs(row.burr.p99Ms ?? undefined),
      formatRate(row.client.statesPerSec) + errors(row.client),
      formatMs(row.client.p50Ms ?? undefined),
      formatMs(row.client.p99Ms ?? undefined),
      formatRatio(row.ratio),
      row.target ? `≥ ${row.target.atLeast.toFixed(2)}: ${row.target.met ? "met" : "**missed**"}` : "",
      formatRate(row.clientCeiling?.statesPerSec),
    ]),
    new Set([2, 3, 4, 5, 6, 7, 8, 9, 11]),
  );
  const versions = info
    ? `Python ${info.python}, apache-burr ${info.packages["apache-burr"]}, grpcio ${info.packages.grpcio}, psycopg2-binary ${info.packages["psycopg2-binary"] ?? "—"}, SQLite ${info.sqlite}`
    : "";
  return [
    "## Python client against Burr's persisters",
    "",
    ...(info
      ? [
          `The same Burr \`State\` (a chat agent's, ${info.stateBytes} bytes as \`json.dumps(state.serialize())\`) saved (the next step of an app per thread) and loaded (latest step of a random app of ${info.fixture.apps} × ${info.fixture.steps}) ` +
            "by Burr's own persister in-process (`PostgreSQLPersister`, `SQLitePersister`) and by `burr_grpc_persister.GrpcStatePersister` through the server (child process; its store on the same database: another schema, another file in the same directory), " +
            `each side in its own Python process (bench/python/burr_vs_client.py; ${versions}), threads in a closed loop, ${info.measureS} s measured after ${info.warmupS} s of warm-up. ` +
            "Burr with 4 threads: one persister per thread, each with its own connection (sharing one is not safe in either persister: see the script). Client: one `GrpcStatePersister` shared by the threads. " +
            "Client / Burr = states/s of the client over Burr's; the row with the target is the median of its rounds. " +
            "Client on no-op server: the same client saves against bench/noop-server.ts (same grpc-js server and messages, no store), the most the client's transport allows on this machine.",
          "",
        ]
      : []),
    ...(rows.length > 0 ? [table, ""] : []),
    ...skipped.map((line) => `- **Python row${line.db ? ` (${dbLabels[line.db]})` : ""} skipped**: ${line.reason}`),
    "",
  ].join("\n");
}

async function dropSchemas(...schemas: string[]): Promise<void> {
  const client = new Client({ connectionString: databaseUrls.postgres, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

const withParams = (url: string, params: Record<string, string>) => {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return parsed.toString();
};

const lastLine = (text: string) =>
  text
    .trim()
    .split("\n")
    .filter((line) => line.trim())
    .pop() ?? "";

const errorText = (error: unknown) => (error instanceof ChildExited ? `the server did not start: ${error.reason}` : error instanceof Error ? error.message : String(error)).split("\n")[0]!;
