/**
 * `npm run bench:replicas`: one server process against two on the same store. The same client
 * load (two client processes, 64 calls in flight in all) goes to one server, then is split over
 * two servers (each client process talks to its own), per backend, for Save and Load latest.
 * The figure of README.md's "Running more than one".
 *
 *   npm run bench:replicas                      full run: writes bench/results/replicas-latest.md
 *   npm run bench:replicas -- --smoke           tiny run for CI, writes nothing
 *   npm run bench:replicas -- --backends postgres --concurrency 64 --measure-ms 3000
 *
 * Every server, client and database shares the machine's cores, so on a small machine the
 * figure says how much a second process costs or gains there; on separate hosts the servers do
 * not compete with each other or with the database for CPU.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { benchBackend, type BenchBackend } from "./lib/backends";
import type { BackendName } from "./lib/ceilings";
import { buildServer, repoRoot, startChildServer, type ChildServer } from "./lib/children";
import { openSurface, type Job } from "./lib/jobs";
import { summarize, type Measurement, type Summary, type Timing } from "./lib/load";
import { formatMs, formatRate, formatRatio, machine, machineLine, markdownTable } from "./lib/report";
import { fixtureRows, saveAll, type Fixture, type Operation } from "./lib/workload";
import { serverScript } from "../tests/support/server-process";

const replicaBackends: readonly BackendName[] = ["postgres", "redis", "mongo"];
const measured: readonly Operation[] = ["save", "load-latest"];
const clientProcesses = 2;
const stateBytes = 2048;

interface Options {
  smoke: boolean;
  backends: BackendName[];
  concurrency: number;
  timing: Timing;
  outDir?: string;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      smoke: { type: "boolean" },
      backends: { type: "string" },
      concurrency: { type: "string" },
      "warmup-ms": { type: "string" },
      "measure-ms": { type: "string" },
      out: { type: "string" },
    },
  });
  const smoke = values.smoke ?? false;
  const backends = (values.backends?.split(",") ?? ["postgres", "redis"]) as BackendName[];
  for (const name of backends) if (!replicaBackends.includes(name)) throw new Error(`unknown backend ${name}: use ${replicaBackends.join(", ")}`);
  const filtered = values.backends !== undefined || values.concurrency !== undefined;
  return {
    smoke,
    backends,
    concurrency: evenConcurrency(values.concurrency ?? (smoke ? "8" : "64")),
    timing: { warmupMs: Number(values["warmup-ms"] ?? (smoke ? 50 : 500)), measureMs: Number(values["measure-ms"] ?? (smoke ? 200 : 3000)) },
    outDir: values.out ?? (smoke || filtered ? undefined : path.join(repoRoot, "bench/results")),
  };
}

/** The calls in flight, split evenly over the client processes (so both cells run exactly that many). */
function evenConcurrency(text: string): number {
  const concurrency = Number(text);
  if (!Number.isInteger(concurrency) || concurrency < clientProcesses || concurrency % clientProcesses !== 0) {
    throw new Error(`--concurrency ${text}: give a multiple of ${clientProcesses} (the client processes it is split over)`);
  }
  return concurrency;
}

/** Client processes that each run their own job (their own target) at the same time. */
class Clients {
  private readonly children: ChildProcess[] = Array.from({ length: clientProcesses }, () =>
    fork(path.join(__dirname, "lib/client-process.ts"), [], { execArgv: ["--conditions=burr-source", "--require", "tsx/cjs"], serialization: "advanced" }),
  );

  /** Runs one job per client process side by side; the merged measurement. */
  async run(jobs: Job[]): Promise<Summary> {
    const answers = jobs.map((job, i) => {
      const child = this.children[i]!;
      const answer = once(child, "message") as Promise<[{ measurement?: Measurement; error?: string }]>;
      child.send(job);
      return answer.then(([reply]) => {
        if (reply.error !== undefined) throw new Error(`client process ${i}: ${reply.error}`);
        return reply.measurement!;
      });
    });
    return summarize(await Promise.all(answers));
  }

  close(): void {
    for (const child of this.children) child.disconnect();
  }
}

interface Row {
  backend: BackendName;
  operation: Operation;
  one: Summary;
  two: Summary;
}

async function measureBackend(backend: BenchBackend, options: Options, clients: Clients): Promise<Row[]> {
  const fixture: Fixture = options.smoke ? { apps: 20, steps: 2, listApps: 0, historySteps: 0 } : { apps: 500, steps: 4, listApps: 0, historySteps: 0 };
  const servers: ChildServer[] = [];
  try {
    for (let i = 0; i < 2; i++) servers.push(await startChildServer(serverScript, ["--store", backend.storeUrl, "--init"]));
    const surface = await openSurface({ kind: "server", address: servers[0]!.address });
    try {
      await saveAll(surface, fixtureRows(fixture, stateBytes), 64);
    } finally {
      await surface.close();
    }
    const rows: Row[] = [];
    for (const operation of measured) {
      const jobs = (addresses: string[]): Job[] =>
        Array.from({ length: clientProcesses }, (_, i) => ({
          operation,
          stateBytes,
          fixture,
          tag: `${addresses.length}-${operation}`,
          process: i,
          concurrency: options.concurrency / clientProcesses,
          timing: options.timing,
          target: { kind: "server", address: addresses[i % addresses.length]! },
        }));
      const one = await clients.run(jobs([servers[0]!.address]));
      const two = await clients.run(jobs(servers.map((server) => server.address)));
      for (const summary of [one, two]) {
        if (summary.errors > 0) throw new Error(`${backend.name} ${operation}: ${summary.errors} calls failed, first: ${summary.firstError}`);
      }
      rows.push({ backend: backend.name, operation, one, two });
      console.log(`${backend.name} ${operation}: one server ${formatRate(one.opsPerSec)}/s, two ${formatRate(two.opsPerSec)}/s`);
    }
    return rows;
  } finally {
    for (const server of servers) await server.stop("SIGTERM");
  }
}

function markdown(rows: Row[], options: Options): string {
  const table = markdownTable(
    ["store", "operation", "one server, calls/s", "p50 ms", "two servers, calls/s", "p50 ms", "two / one"],
    rows.map((row) => [
      row.backend,
      row.operation,
      formatRate(row.one.opsPerSec),
      formatMs(row.one.p50Ms),
      formatRate(row.two.opsPerSec),
      formatMs(row.two.p50Ms),
      formatRatio(row.two.opsPerSec / row.one.opsPerSec),
    ]),
    new Set([2, 3, 4, 5, 6]),
  );
  return [
    `# One server process vs two on the same store`,
    ``,
    machineLine(machine()),
    ``,
    `2 KiB states, ${options.concurrency} calls in flight from ${clientProcesses} client processes, measured ${options.timing.measureMs} ms per cell. Servers, clients and the database share the machine's cores.`,
    ``,
    table,
    ``,
  ].join("\n");
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv.slice(2));
  buildServer();
  const clients = new Clients();
  const rows: Row[] = [];
  const runId = `replicas_${process.pid}`;
  try {
    for (const name of options.backends) {
      const backend = benchBackend(name, runId, { sqliteSynchronous: "full", postgresPool: 10 });
      try {
        rows.push(...(await measureBackend(backend, options, clients)));
      } finally {
        await backend.drop();
      }
    }
  } finally {
    clients.close();
  }
  const text = markdown(rows, options);
  console.log(`\n${text}`);
  if (options.outDir) {
    fs.mkdirSync(options.outDir, { recursive: true });
    fs.writeFileSync(path.join(options.outDir, "replicas-latest.md"), text);
    console.log(`wrote ${path.relative(repoRoot, path.join(options.outDir, "replicas-latest.md"))}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
