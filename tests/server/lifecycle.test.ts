/** Starting, stopping and killing the real server process: nothing acknowledged is lost. */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { Code, PersisterError } from "../../client/src/errors";
import { serviceDefinition } from "../../client/src/grpc-definition";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../client/src/gen/grpc/health/v1/health_pb";
import { SqliteSyncBackend } from "../../stores/src/sqlite";
import { postgresStore } from "../../stores/src/postgres/testing";
import { startServerProcess } from "../support/server-process";
import { sqliteStore } from "../../stores/src/sqlite/testing";

const run = promisify(execFile);
const root = path.resolve(__dirname, "../..");
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-lifecycle-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const state = (i: number) => new Uint8Array(Buffer.from(`{"i": ${i}, "pad": "${"x".repeat(i % 300)}"}`));
const connect = (address: string) => new GrpcStatePersister({ address, codec: rawCodec, retry: { attempts: 1 } });

/** Saves from `writers` loops until stopped; returns every acknowledged (app, sequence id). */
function saveContinuously(client: GrpcStatePersister<Uint8Array>, partitionKey: string, writers: number) {
  const acknowledged: Array<[string, number]> = [];
  let running = true;
  const loops = Array.from({ length: writers }, async (_, w) => {
    for (let i = 0; running; i++) {
      try {
        await client.save({ partitionKey, appId: `w${w}`, sequenceId: i, position: "step", state: state(i), status: "completed" });
        acknowledged.push([`w${w}`, i]);
      } catch (error) {
        expect((error as PersisterError).code).toBe(Code.UNAVAILABLE);
        return;
      }
    }
  });
  return { acknowledged, stop: () => ((running = false), Promise.all(loops)), done: Promise.all(loops) };
}

/** Every acknowledged save is stored byte for byte; anything else stored (in flight at the kill) is whole too. */
async function expectAllStored(address: string, partitionKey: string, acknowledged: Array<[string, number]>) {
  const client = connect(address);
  try {
    for (const [appId, sequenceId] of acknowledged) {
      const row = await client.load({ partitionKey, appId, sequenceId });
      expect(row && Buffer.from(row.state).equals(Buffer.from(state(sequenceId)))).toBe(true);
    }
    const highest = new Map<string, number>();
    for (const [appId, sequenceId] of acknowledged) highest.set(appId, Math.max(sequenceId, highest.get(appId) ?? -1));
    for (const appId of await client.listAppIds(partitionKey)) {
      const latest = await client.load({ partitionKey, appId });
      expect(latest && Buffer.from(latest.state).equals(Buffer.from(state(latest.sequenceId)))).toBe(true);
      // At most the one save in flight per writer can have landed unacknowledged.
      expect(latest!.sequenceId).toBeLessThanOrEqual((highest.get(appId) ?? -1) + 1);
    }
  } finally {
    await client.close();
  }
}

describe.each([
  ["SQLite", () => sqliteStore()],
  ["PostgreSQL", () => postgresStore()],
])("SIGKILL on %s", (_name, makeStore) => {
  test("under load from 50 clients loses no acknowledged save and leaves nothing half-written", async () => {
    const store = makeStore();
    const server = await startServerProcess(["--store", store.url, "--init"]);
    const client = connect(server.address);
    const load = saveContinuously(client, "kill", 50);
    while (load.acknowledged.length < 500) await new Promise((r) => setTimeout(r, 20));
    expect(await server.stop("SIGKILL")).toBeNull();
    await load.done;
    await client.close();
    const restarted = await startServerProcess(["--store", store.url]);
    try {
      await expectAllStored(restarted.address, "kill", load.acknowledged);
    } finally {
      await restarted.stop();
      await store.cleanup?.();
    }
  });
});

test("SIGTERM under load: in-flight saves finish, the process exits 0, nothing acknowledged is lost", async () => {
  const store = `sqlite:${path.join(dir, "stopped.db")}`;
  const server = await startServerProcess(["--store", store, "--init"]);
  const client = connect(server.address);
  const load = saveContinuously(client, "term", 20);
  while (load.acknowledged.length < 300) await new Promise((r) => setTimeout(r, 20));
  expect(await server.stop("SIGTERM")).toBe(0);
  await load.done;
  await client.close();
  expect(server.logs.map((line) => JSON.parse(line).event)).toEqual(["started", "stopping", "stopped"]);
  const restarted = await startServerProcess(["--store", store]);
  try {
    await expectAllStored(restarted.address, "term", load.acknowledged);
  } finally {
    await restarted.stop();
  }
});

test("SIGTERM: health watchers see NOT_SERVING, open list streams are cancelled after the grace period", async () => {
  // 40,000 apps with long ids: 4 MB of listing, far more than client read-ahead and flow-control
  // windows hold, so a reader that stops after the first id keeps the stream open.
  const file = path.join(dir, "many.db");
  const seed = new SqliteSyncBackend({ path: file });
  seed.initialize();
  const rows = Array.from({ length: 40_000 }, (_, i) => ({ partitionKey: "many", appId: `${i}-${"x".repeat(100)}`, sequenceId: 0, position: "p", state: state(0), status: "completed" as const }));
  seed.saveMany(rows);
  seed.close();
  const server = await startServerProcess(["--store", `sqlite:${file}`, "--shutdown-grace-ms", "300"]);
  const client = connect(server.address);

  const HealthClient = grpc.makeGenericClientConstructor(serviceDefinition(Health), Health.typeName);
  const health = new HealthClient(server.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    watch(request: object): grpc.ClientReadableStream<{ status: number }>;
  };
  const seen: number[] = [];
  const watch = health.watch({ service: "burr.state.v1.StatePersister" });
  watch.on("data", (m) => seen.push(m.status));
  watch.on("error", () => {});
  await new Promise((resolve) => watch.once("data", resolve));

  const stream = client.streamAppIds("many")[Symbol.asyncIterator]();
  expect((await stream.next()).done).toBe(false);
  const started = Date.now();
  expect(await server.stop("SIGTERM")).toBe(0);
  expect(Date.now() - started).toBeLessThan(5_000);
  expect(seen).toEqual([Serving.SERVING, Serving.NOT_SERVING]);
  // The unfinished stream was cut, not completed.
  const rest = (async () => {
    for (let next = await stream.next(); !next.done; next = await stream.next());
  })();
  await expect(rest).rejects.toBeInstanceOf(PersisterError);
  health.close();
  await client.close();
});

describe("configuration", () => {
  const main = path.join(root, "server/src/main.ts");
  const node = (args: string[], env: NodeJS.ProcessEnv = {}) =>
    run(process.execPath, ["--require", "tsx/cjs", main, ...args], { cwd: root, env: { ...process.env, ...env } }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );

  test("environment variables configure the server like flags", async () => {
    const server = await startServerProcess([], { BURR_STORE: `sqlite:${path.join(dir, "env.db")}`, BURR_INIT: "1" });
    const client = connect(server.address);
    expect(await client.isInitialized()).toBe(true);
    await client.close();
    await server.stop();
    expect(fs.existsSync(path.join(dir, "env.db"))).toBe(true);
  });

  test("--help prints the flags", async () => {
    const { code, stdout } = await node(["--help"]);
    expect(code).toBe(0);
    for (const flag of ["--listen", "--store", "--init", "--max-message-bytes"]) expect(stdout).toContain(flag);
  });

  test("an unknown flag or store URL fails the start with a message", async () => {
    const flag = await node(["--no-such-flag"]);
    expect(flag.code).not.toBe(0);
    expect(flag.stderr).toMatch(/no-such-flag/);
    const store = await node(["--store", "cassandra://x", "--listen", "127.0.0.1:0"]);
    expect(store.code).not.toBe(0);
    expect(store.stderr).toMatch(/unsupported store URL/);
  });
});
