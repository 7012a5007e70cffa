/** Redis stores for the suites: a key prefix of their own per suite and per fresh store, deleted afterwards. */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { Cluster, Redis } from "ioredis";
import { parseRedisUrl } from "./url";
import type { StoreUnderTest } from "../../../tests/support/subjects";
import { namespacedStore } from "../../../tests/support/namespaced-store";
import { freePort, startDatabaseProcess, type DatabaseProcess } from "../../../tests/support/database-process";

export { freePort };

/** The shared test Redis (started by `.ci/services.sh up`). */
export const redisUrl = process.env.BURR_TEST_REDIS_URL ?? "redis://127.0.0.1:56379";

/** The shared test Redis Cluster (`.ci/redis-cluster.sh up`, run by `.ci/services.sh up`). */
export const redisClusterUrl = process.env.BURR_TEST_REDIS_CLUSTER_URL ?? "redis+cluster://127.0.0.1:57001,127.0.0.1:57002,127.0.0.1:57003";

let prefixCounter = 0;

/** A namespace no other suite or run uses. */
export function uniquePrefix(label: string): string {
  return `burrtest-${label}-${process.pid}-${++prefixCounter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The store URL for one namespace. */
export function withPrefix(url: string, prefix: string): string {
  // A cluster URL's node list is no WHATWG host; the test URLs carry no query of their own.
  if (parseRedisUrl(url).cluster) return `${url}${url.includes("?") ? "&" : "?"}prefix=${prefix}`;
  const parsed = new URL(url);
  parsed.searchParams.set("prefix", prefix);
  return parsed.toString();
}

/** A plain client, for inspecting and deleting keys behind the store's back. */
export async function connectAdmin(url: string = redisUrl): Promise<Redis> {
  const bare = new URL(url);
  bare.search = "";
  const client = new Redis(bare.toString(), { lazyConnect: true, connectTimeout: 5000, maxRetriesPerRequest: 1, retryStrategy: () => null });
  await client.connect();
  return client;
}

/** A plain cluster client, for inspecting and deleting keys behind the store's back. */
export async function connectClusterAdmin(url: string = redisClusterUrl): Promise<Cluster> {
  const { cluster } = parseRedisUrl(url);
  if (!cluster) throw new Error(`${url} is no cluster URL`);
  const client = new Cluster(cluster.nodes, { lazyConnect: true, redisOptions: { connectTimeout: 5000, username: cluster.username, password: cluster.password } });
  await client.connect();
  return client;
}

/** Every key of a namespace on every master of the cluster. */
export async function keysUnderCluster(client: Cluster, prefix: string): Promise<Buffer[]> {
  const keys: Buffer[][] = await Promise.all(client.nodes("master").map((node) => keysUnder(node, prefix)));
  return keys.flat();
}

/** Every key of a namespace, as bytes (keys hold user strings, which may be any UTF-8). */
export async function keysUnder(client: Redis, prefix: string): Promise<Buffer[]> {
  const keys: Buffer[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await client.scanBuffer(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
    cursor = next.toString();
    keys.push(...batch);
  } while (cursor !== "0");
  return keys;
}

/** Reads the "<byte length>:<bytes>" components of a key's rest until it ends; null if it does not follow that shape (both layouts write user strings this way). */
export function keyComponents(rest: Buffer): string[] | null {
  const parts: string[] = [];
  let at = 0;
  while (at < rest.length) {
    const colon = rest.indexOf(":", at);
    const digits = colon < 0 ? "" : rest.subarray(at, colon).toString();
    if (!/^(0|[1-9][0-9]*)$/.test(digits)) return null;
    const end = colon + 1 + Number(digits);
    if (end > rest.length) return null;
    parts.push(rest.subarray(colon + 1, end).toString("utf8"));
    at = end;
  }
  return parts;
}

/** Deletes the namespaces' keys with SCAN + UNLINK (the prefixes hold no glob characters). */
export async function deleteNamespaces(prefixes: string[], url: string = redisUrl): Promise<void> {
  if (parseRedisUrl(url).cluster) {
    const cluster = await connectClusterAdmin(url);
    try {
      // One key per UNLINK: a namespace's keys lie in many slots.
      for (const prefix of prefixes) await Promise.all((await keysUnderCluster(cluster, prefix)).map((key) => cluster.unlink(key)));
    } finally {
      cluster.disconnect();
    }
    return;
  }
  const client = await connectAdmin(url);
  try {
    for (const prefix of prefixes) {
      const keys = await keysUnder(client, prefix);
      for (let i = 0; i < keys.length; i += 500) await client.unlink(...keys.slice(i, i + 500));
    }
  } finally {
    client.disconnect();
  }
}

export function redisStore(baseUrl: string = redisUrl): StoreUnderTest {
  return namespacedStore({
    unique: uniquePrefix,
    urlOf: (prefix) => withPrefix(baseUrl, prefix),
    drop: (prefixes) => deleteNamespaces(prefixes, baseUrl),
  });
}

/** A redis-server of the test's own (no persistence), which the test may kill and start again. */
export type PrivateRedis = DatabaseProcess;

export interface PrivateRedisOptions {
  /** requirepass: the URL then carries it. */
  password?: string;
  /** More redis-server flags (TLS, ...). */
  extraArgs?: string[];
}

export async function startPrivateRedis(port: number, options: PrivateRedisOptions = {}): Promise<PrivateRedis> {
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--daemonize", "no"];
  if (options.password) args.push("--requirepass", options.password);
  // Its own directory: a replica's full sync writes an RDB file even with saving off.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-redis-"));
  const url = `redis://${options.password ? `:${encodeURIComponent(options.password)}@` : ""}127.0.0.1:${port}`;
  return startDatabaseProcess("redis-server", [...args, "--dir", dir, ...(options.extraArgs ?? [])], {
    port,
    url,
    answers: async () => (await connectAdmin(url)).disconnect(),
    withinMs: 10_000,
    afterExit: () => fs.rmSync(dir, { recursive: true, force: true }),
  });
}

/** A Redis Cluster of the test's own (3 masters, 3 replicas, no persistence), whose nodes it may kill and start again. */
export interface PrivateCluster {
  url: string;
  nodes: PrivateRedis[];
  /** Starts a killed node again with its own cluster config: it rejoins the cluster. */
  restart(index: number): Promise<void>;
  stop(): Promise<void>;
}

/** CLUSTER INFO of one node as a record. */
async function clusterInfo(url: string): Promise<Record<string, string>> {
  const client = await connectAdmin(url);
  try {
    const text = String(await client.cluster("INFO"));
    return Object.fromEntries(text.split(/\r?\n/).filter(Boolean).map((line) => line.split(":", 2) as [string, string]));
  } finally {
    client.disconnect();
  }
}

export async function startPrivateCluster(): Promise<PrivateCluster> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-redis-cluster-"));
  const ports: Array<{ port: number; bus: number }> = [];
  for (let i = 0; i < 6; i++) ports.push({ port: await freePort(), bus: await freePort() });
  // A 2 s node timeout makes failovers quick; validity factor 0 lets any replica take over.
  const argsOf = ({ port, bus }: { port: number; bus: number }) => [
    "--cluster-enabled", "yes", "--cluster-config-file", path.join(dir, `nodes-${port}.conf`), "--cluster-port", String(bus),
    "--cluster-node-timeout", "2000", "--cluster-replica-validity-factor", "0", "--dir", dir,
  ];
  const nodes: PrivateRedis[] = [];
  const cluster: PrivateCluster = {
    url: `redis+cluster://${ports.slice(0, 3).map(({ port }) => `127.0.0.1:${port}`).join(",")}`,
    nodes,
    restart: async (index) => {
      nodes[index] = await startPrivateRedis(ports[index]!.port, { extraArgs: argsOf(ports[index]!) });
    },
    stop: async () => {
      await Promise.all(nodes.map((node) => node.kill()));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  try {
    for (const node of ports) nodes.push(await startPrivateRedis(node.port, { extraArgs: argsOf(node) }));
    await promisify(execFile)("redis-cli", ["--cluster", "create", ...ports.map(({ port }) => `127.0.0.1:${port}`), "--cluster-replicas", "1", "--cluster-yes"]);
    const deadline = Date.now() + 30_000;
    for (const node of nodes) {
      while ((await clusterInfo(node.url)).cluster_state !== "ok") {
        if (Date.now() > deadline) throw new Error(`the private cluster in ${dir} did not reach cluster_state:ok within 30 s`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    return cluster;
  } catch (error) {
    await cluster.stop();
    throw error;
  }
}
