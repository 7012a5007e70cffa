/** What the TypeScript clients add over the wire: codecs, typed errors, retries, deadlines. */
import * as net from "node:net";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { rawCodec } from "../../client/src/codec";
import { Code, PersisterError } from "../../client/src/errors";
import { startServerProcess, type ServerProcess } from "../support/server-process";

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init"]);
});
afterAll(() => server.stop());

const freePort = () =>
  new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });

test("JSON is the default state codec, for the async and the sync client", async () => {
  const state = { messages: [{ role: "user", text: "héllo" }], count: 3, nested: { ok: true, none: null } };
  const asyncClient = new GrpcStatePersister({ address: server.address });
  await asyncClient.save({ partitionKey: "json", appId: "a", sequenceId: 0, position: "p", state, status: "completed" });
  expect((await asyncClient.load({ partitionKey: "json", appId: "a" }))?.state).toEqual(state);
  const syncClient = new SyncGrpcStatePersister({ address: server.address });
  expect(syncClient.load({ partitionKey: "json", appId: "a" })?.state).toEqual(state);
  syncClient.save({ partitionKey: "json", appId: "b", sequenceId: 0, position: "p", state: [1, "two"], status: "failed" });
  expect((await asyncClient.load({ partitionKey: "json", appId: "b" }))?.state).toEqual([1, "two"]);
  syncClient.close();
  await asyncClient.close();
});

test("a state JavaScript cannot parse comes back through rawCodec, and the JSON codec says DATA_LOSS", async () => {
  const python = new Uint8Array(Buffer.from('{"x": NaN, "big": 18446744073709551616}'));
  const raw = new GrpcStatePersister({ address: server.address, codec: rawCodec });
  await raw.save({ partitionKey: "py", appId: "a", sequenceId: 0, position: "p", state: python, status: "completed" });
  expect(Buffer.from((await raw.load({ partitionKey: "py", appId: "a" }))!.state).equals(Buffer.from(python))).toBe(true);
  const json = new GrpcStatePersister({ address: server.address });
  await expect(json.load({ partitionKey: "py", appId: "a" })).rejects.toMatchObject({ code: Code.DATA_LOSS, message: expect.stringMatching(/rawCodec/) });
  await raw.close();
  await json.close();
});

test("calls made together against a server with a 64 KiB message limit all land: a message of several calls stays under 64 KiB", async () => {
  const small = await startServerProcess(["--store", "sqlite::memory:", "--init", "--max-message-bytes", String(64 * 1024)]);
  const client = new GrpcStatePersister({ address: small.address, codec: rawCodec });
  try {
    const step = (appId: string, stateBytes: number) => ({ appId, sequenceId: 0, position: "p", state: new Uint8Array(stateBytes).fill(7), status: "completed" as const });
    // Made in one turn: 170 KiB together, more than one message may hold; the 70 KiB one goes alone and is refused.
    const saves = [...Array.from({ length: 10 }, (_, i) => step(`fits-${i}`, 10 * 1024)), step("too-large", 70 * 1024)].map((input) => client.save(input));
    const results = await Promise.allSettled(saves);
    expect(results.slice(0, 10).map((result) => result.status)).toEqual(Array(10).fill("fulfilled"));
    expect(results[10]).toMatchObject({ status: "rejected", reason: { code: Code.RESOURCE_EXHAUSTED } });
    for (let i = 0; i < 10; i++) expect((await client.load({ appId: `fits-${i}` }))?.state).toEqual(new Uint8Array(10 * 1024).fill(7));
    expect(await client.load({ appId: "too-large" })).toBeNull();
  } finally {
    await client.close();
    await small.stop();
  }
});

test("errors are PersisterErrors carrying the gRPC code, in both clients", async () => {
  const input = { partitionKey: "dup", appId: "a", sequenceId: 1, position: "p", state: {}, status: "completed" as const };
  const asyncClient = new GrpcStatePersister({ address: server.address });
  await asyncClient.save(input);
  const failure = await asyncClient.save(input).catch((e: unknown) => e);
  expect(failure).toBeInstanceOf(PersisterError);
  expect(failure).toMatchObject({ code: Code.ALREADY_EXISTS, codeName: "ALREADY_EXISTS" });
  const syncClient = new SyncGrpcStatePersister({ address: server.address });
  expect(() => syncClient.save(input)).toThrow(PersisterError);
  try {
    syncClient.save(input);
  } catch (error) {
    expect((error as PersisterError).code).toBe(Code.ALREADY_EXISTS);
  }
  syncClient.close();
  await asyncClient.close();
});

describe("UNAVAILABLE", () => {
  test("reads are retried with backoff until the server is up; saves are not retried and name the address", async () => {
    const port = await freePort();
    const address = `127.0.0.1:${port}`;
    const client = new GrpcStatePersister({ address, retry: { attempts: 80, initialBackoffMs: 100, maxBackoffMs: 500 } });
    const save = client.save({ appId: "a", sequenceId: 0, position: "p", state: {}, status: "completed" }).catch((e: unknown) => e);
    expect(await save).toMatchObject({ code: Code.UNAVAILABLE, message: expect.stringContaining(address) });

    const pending = client.isInitialized();
    await new Promise((r) => setTimeout(r, 300));
    // A later --listen overrides the ephemeral one the helper passes.
    const fixed = await startServerProcess(["--listen", address, "--store", "sqlite::memory:", "--init"]);
    try {
      expect(await pending).toBe(true);
    } finally {
      await client.close();
      await fixed.stop();
    }
  });

  test("the sync client fails fast when nothing listens and says where it tried", async () => {
    const address = `127.0.0.1:${await freePort()}`;
    const client = new SyncGrpcStatePersister({ address, retry: { attempts: 2, initialBackoffMs: 10 } });
    const started = Date.now();
    expect(() => client.load({ appId: "a" })).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE, message: expect.stringContaining(address) }));
    expect(Date.now() - started).toBeLessThan(10_000);
    client.close();
  });
});
