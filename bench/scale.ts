/**
 * `npm run bench:scale`: the store at 1,000,000 states over 100,000 apps (all in one partition),
 * bulk-loaded straight into the store's own tables (created by the store's own initialize()),
 * then through a server child process: Load p50/p99 (latest, by step, latest in partition) and
 * ListAppIds of the 100,000-app partition (time to first chunk, total time, and the server's
 * peak RSS growth while it streams, sampled from /proc every 2 ms).
 *
 *   npm run bench:scale
 *   npm run bench:scale -- --backends sqlite --states 100000 --apps 10000 --loads 2000
 *
 * Options: --backends sqlite,postgres  --states N  --apps N  --state-bytes N  --loads N (calls per
 * load shape)  --listings N  --profile  --out DIR (the default-sized run writes bench/results).
 */
import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";
import { Client } from "pg";
import { GrpcStatePersister } from "../client/src/grpc-persister";
import { rawCodec } from "../client/src/codec";
import type { LoadQuery } from "../client/src/persister";
import { GuardedPersister } from "../stores/src/guard";
import { openBackend } from "../stores/src/registry";
import { parseSqliteUrl, sqliteQueries } from "../stores/src/sqlite";
import { benchBackend, databaseUrls } from "./lib/backends";
import type { BackendName } from "./lib/ceilings";
import { buildServer, ChildExited, repoRoot, sampleResidentMemory, startChildServer } from "./lib/children";
import { serverScript } from "../tests/support/server-process";
import { formatMiB, formatMs, machine, machineLine, markdownTable } from "./lib/report";
import { appId, stateOf } from "./lib/workload";

const { values } = parseArgs({
  options: {
    backends: { type: "string" },
    states: { type: "string" },
    apps: { type: "string" },
    "state-bytes": { type: "string" },
    loads: { type: "string" },
    listings: { type: "string" },
    profile: { type: "boolean" },
    out: { type: "string" },
  },
});

const scaleBackends = ["sqlite", "postgres"] as const;
type ScaleBackend = (typeof scaleBackends)[number];
const backends = (values.backends?.split(",") ?? scaleBackends) as ScaleBackend[];
for (const name of backends) if (!scaleBackends.includes(name)) throw new Error(`the scale run covers ${scaleBackends.join(" and ")}, not ${name}`);
const states = Number(values.states ?? 1_000_000);
const apps = Number(values.apps ?? 100_000);
const stateBytes = Number(values["state-bytes"] ?? 1024);
const loads = Number(values.loads ?? 5000);
const listings = Number(values.listings ?? 3);
const defaultSized = values.states === undefined && values.apps === undefined;
const outDir = values.out ?? (defaultSized ? path.join(repoRoot, "bench/results") : undefined);
const stamp = new Date().toISOString().slice(0, 19).replaceAll(":", "");
const profileDir = values.profile ? path.join(repoRoot, "bench/results/profiles", `scale-${stamp}`) : undefined;

const partition = "scale";
/** The stores' default table (the bench URLs name none). */
const table = "burr_state";

/** Rows go in step-major order (every app's step 0, then every app's step 1, ...), as many running apps would write them. */
async function bulkLoadSqlite(url: string): Promise<void> {
  const db = new Database(parseSqliteUrl(url).path);
  try {
    // Durability is not the point of a fixture: the measured server opens the file with its own settings.
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = OFF");
    const insert = db.prepare(sqliteQueries(table).insert);
    const baseTime = Date.now() - states;
    const state = stateOf(stateBytes);
    const chunk = db.transaction((from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const sequenceId = Math.floor(i / apps);
        insert.run({ partitionKey: partition, appId: appId(i % apps), sequenceId, position: `step-${sequenceId}`, state, status: "completed", createdAt: baseTime + i });
      }
    });
    for (let from = 0; from < states; from += 50_000) chunk(from, Math.min(states, from + 50_000));
    db.exec(`INSERT INTO ${table}_apps (partition_key, app_id, last_write)
             SELECT partition_key, app_id, max(write_seq) FROM ${table} GROUP BY partition_key, app_id`);
    db.pragma("wal_checkpoint(TRUNCATE)");
  } finally {
    db.close();
  }
}

/** Generated inside PostgreSQL (no rows cross the wire), 100,000 per statement. */
async function bulkLoadPostgres(url: string): Promise<void> {
  const schema = new URL(url).searchParams.get("schema")!;
  const states_ = `"${schema}"."${table}"`;
  const apps_ = `"${schema}"."${table}_apps"`;
  const client = new Client({ connectionString: databaseUrls.postgres });
  await client.connect();
  try {
    for (let from = 0; from < states; from += 100_000) {
      await client.query(
        `INSERT INTO ${states_} (partition_key, app_id, sequence_id, position, state, status, created_at)
         SELECT $1, 'app-' || lpad((g % $2)::text, 6, '0'), g / $2, 'step-' || (g / $2),
                decode(repeat(md5(g::text), $5::int / 16), 'hex'), 'completed', now()
         FROM generate_series($3::bigint, $4::bigint) AS g ORDER BY g`,
        [partition, apps, from, Math.min(states, from + 100_000) - 1, stateBytes],
      );
    }
    await client.query(`INSERT INTO ${apps_} (partition_key, app_id, last_write)
                        SELECT partition_key, app_id, max(write_seq) FROM ${states_} GROUP BY partition_key, app_id`);
    await client.query(`VACUUM ANALYZE ${states_}`);
    await client.query(`VACUUM ANALYZE ${apps_}`);
  } finally {
    await client.end();
  }
}

/** Where a load went: through the server (the product), to the backend in this process (no gRPC), or to the no-op server (gRPC alone). */
type Path = "server" | "in-process" | "gRPC no-op";

interface LoadResult {
  shape: string;
  via: Path;
  calls: number;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

interface ListingResult {
  ids: number;
  firstChunkMs: number;
  totalMs: number;
  rssGrowthBytes: number;
  rssSamples: number;
}

interface ScaleResult {
  kind: "scale";
  backend: BackendName;
  states: number;
  apps: number;
  stateBytes: number;
  bulkLoadSeconds: number;
  loads: LoadResult[];
  listings: ListingResult[];
}

const random = (below: number) => Math.floor(Math.random() * below);

const loadShapes: Array<[string, () => LoadQuery]> = [
  ["Load latest", () => ({ partitionKey: partition, appId: appId(random(apps)) })],
  ["Load by step", () => ({ partitionKey: partition, appId: appId(random(apps)), sequenceId: random(Math.floor(states / apps)) })],
  ["Load latest in partition", () => ({ partitionKey: partition })],
];

/**
 * Unmeasured loads first: a whole pass of every shape, as many loads as are measured. With 2,000
 * the first shape measured still had a p99 2-3 × the same shape measured again right after, on
 * the no-op server too (1.01 vs 0.57 ms): the processes were not warm yet, whatever the store.
 */
const warmupLoads = loads * loadShapes.length;

/** Sequential loads of every shape, after the warm-up. */
async function measureLoads(target: { load(query: LoadQuery): Promise<{ state: Uint8Array } | null> }, via: Path): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  for (let i = 0; i < warmupLoads; i++) await target.load(loadShapes[i % loadShapes.length]![1]());
  for (const [shape, query] of loadShapes) {
    const times: number[] = [];
    for (let i = 0; i < loads; i++) {
      const began = performance.now();
      const row = await target.load(query());
      times.push(performance.now() - began);
      if (!row || row.state.byteLength !== stateBytes) throw new Error(`${shape} answered ${row ? `${row.state.byteLength} bytes` : "nothing"}`);
    }
    times.sort((a, b) => a - b);
    const at = (q: number) => times[Math.min(times.length - 1, Math.floor(q * times.length))]!;
    const result = { shape, via, calls: times.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: times[times.length - 1]! };
    console.log(`${shape} via ${via}: p50 ${formatMs(result.p50Ms)} ms, p99 ${formatMs(result.p99Ms)} ms`);
    results.push(result);
  }
  return results;
}

/** The same loads against the no-op server: what gRPC alone costs on this machine, for comparison. */
async function measureGrpcAlone(): Promise<LoadResult[]> {
  const noop = await startChildServer("bench/noop-server.ts", ["--state-bytes", String(stateBytes), "--list-ids", "1"]);
  const client = new GrpcStatePersister({ address: noop.address, codec: rawCodec });
  try {
    return await measureLoads(client, "gRPC no-op");
  } finally {
    await client.close();
    await noop.stop();
  }
}

async function measureListing(client: GrpcStatePersister<Uint8Array>, serverPid: number): Promise<ListingResult> {
  const sampling = await sampleResidentMemory(serverPid, 2);
  const began = performance.now();
  let firstChunkMs = Number.NaN;
  let ids = 0;
  for await (const _id of client.streamAppIds(partition)) {
    if (ids++ === 0) firstChunkMs = performance.now() - began;
  }
  const totalMs = performance.now() - began;
  const memory = await sampling.stop();
  if (ids !== apps) throw new Error(`the listing streamed ${ids} ids, not ${apps}`);
  return { ids, firstChunkMs, totalMs, rssGrowthBytes: memory.peakBytes - memory.baselineBytes, rssSamples: memory.samples };
}

async function runBackend(name: ScaleBackend): Promise<ScaleResult | { kind: "skipped"; backend: BackendName; reason: string }> {
  const backend = benchBackend(name, `scale_${process.pid}`, { sqliteSynchronous: "full", postgresPool: 10 });
  try {
    const fresh = await openBackend(backend.storeUrl);
    try {
      await fresh.initialize();
    } finally {
      await fresh.close();
    }
    const bulkStarted = performance.now();
    console.log(`${name}: bulk-loading ${states.toLocaleString("en-US")} states over ${apps.toLocaleString("en-US")} apps ...`);
    await (name === "sqlite" ? bulkLoadSqlite(backend.storeUrl) : bulkLoadPostgres(backend.storeUrl));
    const bulkLoadSeconds = (performance.now() - bulkStarted) / 1000;
    console.log(`${name}: loaded in ${bulkLoadSeconds.toFixed(0)} s`);

    const server = await startChildServer(serverScript, ["--store", backend.storeUrl], {
      cpuProfDir: profileDir && path.join(profileDir, name),
    });
    const client = new GrpcStatePersister({ address: server.address, codec: rawCodec });
    const loadResults: LoadResult[] = [];
    const listingResults: ListingResult[] = [];
    try {
      loadResults.push(...(await measureLoads(client, "server")));
      for (let i = 0; i < listings; i++) {
        const result = await measureListing(client, server.pid);
        listingResults.push(result);
        console.log(
          `${name}: ListAppIds of ${result.ids} apps: first chunk ${formatMs(result.firstChunkMs)} ms, total ${formatMs(result.totalMs)} ms, server RSS +${formatMiB(result.rssGrowthBytes)} (${result.rssSamples} samples)`,
        );
      }
    } finally {
      await client.close();
      await server.stop();
    }
    // The backend alone (validation included, no gRPC), once the server is gone.
    const inProcess = new GuardedPersister(await openBackend(backend.storeUrl));
    try {
      loadResults.push(...(await measureLoads(inProcess, "in-process")));
    } finally {
      await inProcess.close();
    }
    return { kind: "scale", backend: name, states, apps, stateBytes, bulkLoadSeconds, loads: loadResults, listings: listingResults };
  } catch (error) {
    const reason = error instanceof ChildExited ? error.reason : error instanceof Error ? error.message : String(error);
    console.log(`${name}: SKIPPED: ${reason}`);
    return { kind: "skipped", backend: name, reason };
  } finally {
    await backend.drop();
  }
}

const loadTarget = 2;
const listingTargetMs = 1000;
const rssTargetBytes = 50 * 1024 * 1024;

function markdown(results: Array<Awaited<ReturnType<typeof runBackend>>>, grpcAlone: LoadResult[], info: ReturnType<typeof machine>): string {
  const done = results.filter((result): result is ScaleResult => result.kind === "scale");
  const loadRow = (backend: string, load: LoadResult) => [
    backend,
    load.shape,
    load.via,
    String(load.calls),
    formatMs(load.p50Ms),
    formatMs(load.p99Ms),
    formatMs(load.maxMs),
    load.shape === "Load latest" && load.via === "server" ? (load.p99Ms < loadTarget ? "met" : "**missed**") : "",
  ];
  const loadTable = markdownTable(
    ["Backend", "Load", "via", "calls (sequential)", "p50 ms", "p99 ms", "max ms", "Target p99 < 2 ms"],
    [...done.flatMap((result) => result.loads.map((load) => loadRow(result.backend, load))), ...grpcAlone.map((load) => loadRow("—", load))],
    new Set([3, 4, 5, 6]),
  );
  const listingTable = markdownTable(
    ["Backend", "Run", "ids", "first chunk ms", "total ms", "server RSS growth", "Target < 1 s, < 50 MiB"],
    done.flatMap((result) =>
      result.listings.map((listing, i) => [
        result.backend,
        String(i + 1),
        listing.ids.toLocaleString("en-US"),
        formatMs(listing.firstChunkMs),
        formatMs(listing.totalMs),
        formatMiB(listing.rssGrowthBytes),
        listing.totalMs < listingTargetMs && listing.rssGrowthBytes < rssTargetBytes ? "met" : "**missed**",
      ]),
    ),
    new Set([2, 3, 4, 5]),
  );
  return [
    "# Scale results",
    "",
    machineLine(info),
    `${states.toLocaleString("en-US")} states of ${stateBytes} bytes over ${apps.toLocaleString("en-US")} apps in one partition, bulk-loaded into the store's own tables. Loads via the server (child process, async client), via the backend in this process (no gRPC), and the same calls against the no-op server (gRPC alone, no store).`,
    "",
    loadTable,
    "",
    "ListAppIds of the whole partition (streamed; RSS sampled from /proc every 2 ms):",
    "",
    listingTable,
    "",
    ...done.map((result) => `- ${result.backend} bulk load: ${result.bulkLoadSeconds.toFixed(0)} s`),
    ...results.filter((result) => result.kind === "skipped").map((result) => `- **${result.backend} skipped**: ${"reason" in result ? result.reason : ""}`),
    "",
  ].join("\n");
}

async function main(): Promise<void> {
  buildServer();
  const info = machine();
  console.log(machineLine(info));
  const results = [];
  for (const name of backends) results.push(await runBackend(name));
  const grpcAlone = await measureGrpcAlone();
  const text = markdown(results, grpcAlone, info);
  const jsonLines = [...results, { kind: "grpc-alone", stateBytes, loads: grpcAlone }].map((result) =>
    JSON.stringify({ ...result, date: info.date, nproc: info.nproc, node: info.node }),
  );
  console.log(`\n${text}\n${jsonLines.join("\n")}`);
  if (outDir) {
    fs.mkdirSync(outDir, { recursive: true });
    fs.writeFileSync(path.join(outDir, `scale-${info.date.slice(0, 10)}.json`), [JSON.stringify({ kind: "machine", ...info }), ...jsonLines].join("\n") + "\n");
    fs.writeFileSync(path.join(outDir, "scale-latest.md"), text);
  }
  if (profileDir) console.log(`CPU profiles of the servers: ${path.relative(repoRoot, profileDir)}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
