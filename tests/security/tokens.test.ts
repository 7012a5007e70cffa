/** Bearer tokens scoped to partitions, for every RPC; health stays open; reloads on SIGHUP. */
import { createHash } from "node:crypto";
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { Code } from "../../client/src/errors";
import { Status } from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { batched } from "../support/pipeline-framing";
import { rawUnary } from "../support/raw-grpc";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const run = promisify(execFile);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-tokens-"));
const authFile = path.join(dir, "tokens.json");

const writer = "writer-token-0123456789abcdef";
const reader = "reader-token-0123456789abcdef";
const admin = "admin-token-0123456789abcdef0";
const tokens = {
  tokens: [
    { name: "chat", token: writer, partitions: ["user-*", ""], access: "read-write" },
    { name: "audit", sha256: createHash("sha256").update(reader).digest("hex"), partitions: ["*"], access: "read" },
    { name: "admin", token: admin, partitions: ["*"], access: "read-write" },
  ],
};

let server: ServerProcess;
beforeAll(async () => {
  fs.writeFileSync(authFile, JSON.stringify(tokens));
  server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--auth-file", authFile]);
});
afterAll(async () => {
  await server.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const client = (token?: string) => new GrpcStatePersister({ address: server.address, token, retry: { attempts: 1 } });
const step = (partitionKey: string, appId = "a") => ({ partitionKey, appId, sequenceId: 0, position: "p", state: {}, status: "completed" as const });

test("no token or a wrong one: UNAUTHENTICATED on every RPC", async () => {
  for (const token of [undefined, "not-a-real-token-at-all"]) {
    const c = client(token);
    await expect(c.initialize()).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await expect(c.isInitialized()).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await expect(c.save(step("user-1"))).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await expect(c.load({ partitionKey: "user-1", appId: "a" })).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await expect(c.listAppIds("user-1")).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await c.close();
  }
});

test("a read-write token works inside its partitions and gets PERMISSION_DENIED outside them", async () => {
  const c = client(writer);
  await c.save(step("user-7"));
  await c.save(step(""));
  expect((await c.load({ partitionKey: "user-7", appId: "a" }))?.appId).toBe("a");
  expect(await c.listAppIds("user-7")).toEqual(["a"]);
  await expect(c.save(step("team-1"))).rejects.toMatchObject({ code: Code.PERMISSION_DENIED, message: expect.stringContaining("team-1") });
  await expect(c.load({ partitionKey: "team-1", appId: "a" })).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
  await expect(c.load({ partitionKey: "team-1" })).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
  await expect(c.listAppIds("team-1")).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
  await c.close();
});

test("on one pipeline, a denied call fails alone: the calls around it succeed", async () => {
  const c = client(writer);
  const outcomes = await Promise.allSettled([
    c.save(step("user-8", "x")),
    c.save(step("team-2", "x")),
    c.load({ partitionKey: "team-2", appId: "x" }),
    c.save(step("user-8", "y")),
    c.load({ partitionKey: "user-8", appId: "x" }),
  ]);
  expect(outcomes.map((outcome) => (outcome.status === "fulfilled" ? "ok" : (outcome.reason as { code: number }).code))).toEqual([
    "ok",
    Code.PERMISSION_DENIED,
    Code.PERMISSION_DENIED,
    "ok",
    "ok",
  ]);
  expect(await c.listAppIds("user-8")).toEqual(["y", "x"]);
  await c.close();
});

test("in one BatchedPipeline message, each call is checked on its own: a denied call fails alone", async () => {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${writer}`);
  const pipe = batched.open(server.address, metadata);
  const save = (partitionKey: string, appId: string) => ({
    case: "save" as const,
    value: { partitionKey, appId, sequenceId: 0n, position: "p", state: new TextEncoder().encode("{}"), status: Status.COMPLETED },
  });
  batched.send(pipe, [
    { callId: 1n, call: save("user-9", "x") },
    { callId: 2n, call: save("team-3", "x") },
    { callId: 3n, call: { case: "load", value: { partitionKey: "team-3", appId: "x" } } },
    { callId: 4n, call: { case: "load", value: { partitionKey: "user-7", appId: "a" } } },
  ]);
  const results = new Map((await batched.answered(pipe, 4)).map((answer) => [answer.callId, answer.result]));
  expect(results.get(1n)?.case).toBe("save");
  expect(results.get(2n)).toMatchObject({ case: "error", value: { code: Code.PERMISSION_DENIED, message: expect.stringContaining("team-3") } });
  expect(results.get(3n)).toMatchObject({ case: "error", value: { code: Code.PERMISSION_DENIED } });
  expect(results.get(4n)).toMatchObject({ case: "load", value: { persistedState: { appId: "a" } } });
  pipe.end();
  expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
});

test("a read-only token reads everywhere but cannot Save or Initialize", async () => {
  const c = client(reader);
  expect(await c.isInitialized()).toBe(true);
  expect(await c.listAppIds("user-7")).toEqual(["a"]);
  expect((await c.load({ partitionKey: "user-7", appId: "a" }))?.appId).toBe("a");
  await expect(c.save(step("user-7", "b"))).rejects.toMatchObject({ code: Code.PERMISSION_DENIED, message: expect.stringContaining("read-only") });
  await expect(c.initialize()).rejects.toMatchObject({ code: Code.PERMISSION_DENIED });
  await c.close();
  const sync = new SyncGrpcStatePersister({ address: server.address, token: reader, retry: { attempts: 1 } });
  expect(sync.listAppIds("user-7")).toEqual(["a"]);
  expect(() => sync.save(step("user-7", "c"))).toThrow(expect.objectContaining({ code: Code.PERMISSION_DENIED }));
  sync.close();
});

test("health needs no token; reflection needs one", async () => {
  const health = await rawUnary(server.address, "/grpc.health.v1.Health/Check", new Uint8Array());
  expect(health.code).toBe(grpc.status.OK);
  const bufCurl = (...args: string[]) =>
    run("npx", ["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--list-methods", ...args, `http://${server.address}`], { cwd: path.resolve(__dirname, "../..") });
  await expect(bufCurl()).rejects.toMatchObject({ stderr: expect.stringMatching(/unauthenticated|not authenticated/i) });
  // (buf reports the server's UNAUTHENTICATED with its own login hint.)
  const { stdout } = await bufCurl("--reflect-header", `authorization: Bearer ${reader}`);
  expect(stdout).toContain("burr.state.v1.StatePersister/Save");
});

test("tokens never reach the log", () => {
  const logs = server.logs.join("\n");
  for (const token of [writer, reader, admin]) expect(logs).not.toContain(token);
});

test("SIGHUP reloads the file; a broken file keeps the tokens in force", async () => {
  fs.writeFileSync(authFile, JSON.stringify({ tokens: tokens.tokens.filter((t) => t.name !== "chat") }));
  server.child.kill("SIGHUP");
  await waitForLog(server, "tokens_reloaded");
  const revoked = client(writer);
  await expect(revoked.listAppIds("user-7")).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
  await revoked.close();

  fs.writeFileSync(authFile, "{ not json");
  server.child.kill("SIGHUP");
  await waitForLog(server, "tokens_reload_failed");
  const still = client(admin);
  expect(await still.listAppIds("user-7")).toEqual(["a"]);
  await still.close();
});

test("tokens from BURR_AUTH_TOKENS", async () => {
  const other = await startServerProcess(["--store", "sqlite::memory:", "--init"], { BURR_AUTH_TOKENS: JSON.stringify(tokens) });
  try {
    const c = new GrpcStatePersister({ address: other.address, token: writer });
    await c.save(step("user-2"));
    await c.close();
    const anonymous = new GrpcStatePersister({ address: other.address, retry: { attempts: 1 } });
    await expect(anonymous.load({ partitionKey: "user-2", appId: "a" })).rejects.toMatchObject({ code: Code.UNAUTHENTICATED });
    await anonymous.close();
  } finally {
    await other.stop();
  }
});

test("a malformed token file stops the start with a message naming the problem", async () => {
  const bad = path.join(dir, "bad.json");
  fs.writeFileSync(bad, JSON.stringify({ tokens: [{ name: "x", token: "short", partitions: ["*"], access: "read" }] }));
  await expect(startServerProcess(["--store", "sqlite::memory:", "--auth-file", bad])).rejects.toThrow(/at least 16 characters/);
});

async function waitForLog(process: ServerProcess, event: string) {
  const seen = () => process.logs.filter((line) => line.includes(`"event":"${event}"`)).length;
  const before = seen();
  for (let i = 0; i < 100 && seen() === before; i++) await new Promise((r) => setTimeout(r, 50));
  expect(seen()).toBeGreaterThan(before);
}
