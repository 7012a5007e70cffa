/**
 * Which calls the clients retry on UNAVAILABLE: a server that always answers UNAVAILABLE counts
 * the attempts. Reads and Initialize are retried with backoff; Save, which may have landed, never.
 * Saves and Loads go over the BatchedPipeline stream; against a server that has no such method
 * (UNIMPLEMENTED; 0.2.0 had Pipeline only) the clients fall back to the unary calls.
 */
import { Worker } from "node:worker_threads";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { Code } from "../../client/src/errors";
import { StatePersister } from "../../client/src/gen/burr/state/v1/state_persister_pb";

/**
 * The server runs in a worker thread: the sync client blocks this thread while it waits, so a
 * server on this thread could never answer. Attempts are counted in shared memory.
 */
const methods = StatePersister.methods.map((m) => ({ name: m.name, localName: m.localName, kind: m.methodKind }));
const serverCode = `
  const { workerData, parentPort } = require("node:worker_threads");
  const grpc = require(workerData.grpcPath);
  const counts = new Int32Array(workerData.counts);
  const same = (bytes) => bytes;
  const definition = {};
  const handlers = {};
  workerData.methods.forEach((m, i) => {
    if (m.name === "BatchedPipeline" && !workerData.withBatchedPipeline) return;
    definition[m.localName] = { path: "/burr.state.v1.StatePersister/" + m.name, requestStream: m.kind === "bidi_streaming",
      responseStream: m.kind !== "unary",
      requestSerialize: same, requestDeserialize: same, responseSerialize: same, responseDeserialize: same };
    handlers[m.localName] = (call, callback) => {
      Atomics.add(counts, i, 1);
      const status = { code: grpc.status.UNAVAILABLE, details: "the database is down" };
      if (callback) callback(status); else call.emit("error", status);
    };
  });
  const server = new grpc.Server();
  server.addService(definition, handlers);
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => parentPort.postMessage(port));
`;
const counts = new Int32Array(new SharedArrayBuffer(4 * methods.length));
/** Attempts per method since the last call, then zeroed. */
const attempts = () => {
  const seen = Object.fromEntries(methods.flatMap((m, i) => (counts[i] ? [[m.name, Atomics.load(counts, i)]] : [])));
  counts.fill(0);
  return seen;
};
const workers: Worker[] = [];

async function alwaysUnavailable(withBatchedPipeline: boolean): Promise<string> {
  const worker = new Worker(serverCode, { eval: true, workerData: { grpcPath: require.resolve("@grpc/grpc-js"), counts: counts.buffer, methods, withBatchedPipeline } });
  workers.push(worker);
  return `127.0.0.1:${await new Promise<number>((resolve) => worker.once("message", resolve))}`;
}

afterAll(() => Promise.all(workers.map((worker) => worker.terminate())));
beforeEach(() => counts.fill(0));

const retry = { attempts: 4, initialBackoffMs: 20, maxBackoffMs: 80 };
const step = { appId: "a", sequenceId: 0, position: "p", state: {}, status: "completed" as const };

describe.each([
  ["with BatchedPipeline", true, "BatchedPipeline", "BatchedPipeline"],
  ["with Pipeline but no BatchedPipeline (unary fallback)", false, "Save", "Load"],
])("a server %s", (_name, withBatchedPipeline, saveMethod, loadMethod) => {
  let address: string;
  beforeAll(async () => {
    address = await alwaysUnavailable(withBatchedPipeline);
  });

  test("async client: Load, ListAppIds, IsInitialized and Initialize are tried 4 times; Save once", async () => {
    const client = new GrpcStatePersister({ address, retry });
    await expect(client.save(step)).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(attempts()).toEqual({ [saveMethod]: 1 });
    await expect(client.load({ appId: "a" })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(attempts()).toEqual({ [loadMethod]: 4 });
    await expect(client.listAppIds()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await expect(client.isInitialized()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await expect(client.initialize()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    expect(attempts()).toEqual({ ListAppIds: 4, IsInitialized: 4, Initialize: 4 });
    await client.close();
  });

  test("sync client: the same", () => {
    const client = new SyncGrpcStatePersister({ address, retry });
    expect(() => client.save(step)).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE }));
    expect(attempts()).toEqual({ [saveMethod]: 1 });
    expect(() => client.load({ appId: "a" })).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE }));
    expect(attempts()).toEqual({ [loadMethod]: 4 });
    expect(() => client.listAppIds()).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE }));
    expect(() => client.isInitialized()).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE }));
    expect(() => client.initialize()).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE }));
    expect(attempts()).toEqual({ ListAppIds: 4, IsInitialized: 4, Initialize: 4 });
    client.close();
  });
});
