/** The sync client's own machinery: its worker thread, the state buffers it posts there, its lifetime. */
import { execFile } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import workerThreads = require("node:worker_threads");
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { rawCodec } from "../../client/src/codec";
import { Code } from "../../client/src/errors";
import { startServerProcess, type ServerProcess } from "../support/server-process";

let server: ServerProcess;
beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init"]);
});
afterAll(() => server.stop());

const step = (appId: string, state: Uint8Array) => ({ partitionKey: "sync", appId, sequenceId: 0, position: "p", state, status: "completed" as const });

test("states go to the worker intact and stay the caller's; answers are the caller's own types", () => {
  const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
  const pooled = Buffer.from("a few pooled bytes"); // a view into Buffer's shared 8 KiB pool
  const whole = new Uint8Array([0, 1, 2, 255]);
  client.save(step("pooled", pooled));
  client.save(step("whole", whole));
  expect(pooled.toString()).toBe("a few pooled bytes");
  expect([...whole]).toEqual([0, 1, 2, 255]);
  expect(Buffer.from(client.load({ partitionKey: "sync", appId: "pooled" })!.state).toString()).toBe("a few pooled bytes");
  expect([...client.load({ partitionKey: "sync", appId: "whole" })!.state]).toEqual([0, 1, 2, 255]);
  const row = client.load({ partitionKey: "sync", appId: "whole" })!;
  expect(row.state).toBeInstanceOf(Uint8Array);
  expect(row.createdAt).toBeInstanceOf(Date);
  client.close();
});

test("bad TLS material throws in the constructor; calls after close() fail", () => {
  expect(() => new SyncGrpcStatePersister({ address: server.address, tls: { privateKey: Buffer.from("key") } })).toThrow(/certificate chain/);
  const client = new SyncGrpcStatePersister({ address: server.address });
  expect(client.isInitialized()).toBe(true);
  client.close();
  expect(() => client.isInitialized()).toThrow(expect.objectContaining({ code: Code.FAILED_PRECONDITION }));
});

test("a server that never answers: the call fails at its deadline, not at the worker guard", async () => {
  const sockets: net.Socket[] = [];
  const silent = net.createServer((socket) => sockets.push(socket));
  await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
  const address = `127.0.0.1:${(silent.address() as net.AddressInfo).port}`;
  const client = new SyncGrpcStatePersister({ address, deadlineMs: 500 });
  try {
    const started = Date.now();
    expect(() => client.load({ appId: "a" })).toThrow(expect.objectContaining({ code: Code.DEADLINE_EXCEEDED }));
    expect(Date.now() - started).toBeLessThan(5_000);
  } finally {
    client.close();
    for (const socket of sockets) socket.destroy();
    silent.close();
  }
});

test("an idle client, never closed, does not keep the process alive", async () => {
  const script = `
    const { SyncGrpcStatePersister } = require(${JSON.stringify(path.resolve(__dirname, "../../client/src/sync-persister.ts"))});
    const client = new SyncGrpcStatePersister({ address: ${JSON.stringify(server.address)} });
    console.log(client.isInitialized());
  `;
  const started = Date.now();
  const { stdout } = await promisify(execFile)(process.execPath, ["--require", "tsx/cjs", "-e", script], { cwd: path.resolve(__dirname, "../.."), timeout: 30_000 });
  expect(stdout.trim()).toBe("true");
  expect(Date.now() - started).toBeLessThan(30_000);
});

/**
 * The next sync-client workers started preload these scripts, one each, in order; later ones
 * run as they are. A script can end its worker at a chosen moment of a call.
 */
function preloadInNextWorkers(...scripts: string[]): jest.SpyInstance {
  const RealWorker = workerThreads.Worker;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "sync-worker-hook-"));
  const files = scripts.map((script, i) => {
    const file = path.join(dir, `hook-${i}.js`);
    fs.writeFileSync(file, script);
    return file;
  });
  return jest.spyOn(workerThreads, "Worker").mockImplementation((script, options) => {
    const file = files.shift();
    return new RealWorker(script, { ...options, execArgv: [...(options?.execArgv ?? []), ...(file ? ["--require", file] : [])] });
  });
}

/** The worker takes the call, runs it, then fails as it posts the answer (an uncaught error ends the thread). */
const loseTheAnswer = `
  const { port } = require("node:worker_threads").workerData;
  const post = port.postMessage;
  port.postMessage = () => {
    port.postMessage = post;
    throw new Error("lost the answer");
  };
`;
/** The worker exits as its nth request arrives, before it takes it. */
const exitOnArrival = (nth = 1) => `
  let arrived = 0;
  require("node:worker_threads").workerData.port.on("message", () => {
    if (++arrived === ${nth}) process.exit(3);
  });
`;

describe("a worker thread that ends during a call", () => {
  let hooks: jest.SpyInstance | undefined;
  afterEach(() => hooks?.mockRestore());
  const saved = (appId: string) => step(appId, new Uint8Array(Buffer.from(appId)));

  test("a save it took: UNAVAILABLE naming the cause; the save sent again finds it landed, and the next call gets a fresh worker", () => {
    hooks = preloadInNextWorkers(loseTheAnswer);
    const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      expect(() => client.save(saved("lost-answer"))).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE, message: expect.stringMatching(/exit code 1, Error: lost the answer/) }));
      expect(() => client.save(saved("lost-answer"))).toThrow(expect.objectContaining({ code: Code.ALREADY_EXISTS }));
      expect(Buffer.from(client.load({ partitionKey: "sync", appId: "lost-answer" })!.state).toString()).toBe("lost-answer");
    } finally {
      client.close();
    }
  });

  test("a load it took runs again on a fresh worker", () => {
    const writer = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    writer.save(saved("reloaded"));
    writer.close();
    hooks = preloadInNextWorkers(loseTheAnswer);
    const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      expect(Buffer.from(client.load({ partitionKey: "sync", appId: "reloaded" })!.state).toString()).toBe("reloaded");
      expect(hooks).toHaveBeenCalledTimes(2);
    } finally {
      client.close();
    }
  });

  test("a save it never took goes to a fresh worker", () => {
    hooks = preloadInNextWorkers(exitOnArrival());
    const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      expect(client.save(saved("untaken")).createdAt).toBeInstanceOf(Date);
      expect(hooks).toHaveBeenCalledTimes(2);
      expect(Buffer.from(client.load({ partitionKey: "sync", appId: "untaken" })!.state).toString()).toBe("untaken");
    } finally {
      client.close();
    }
  });

  test("a save whose fresh worker ends as well: UNAVAILABLE with the exit code, and the save did not land", () => {
    hooks = preloadInNextWorkers(exitOnArrival(), exitOnArrival());
    const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      expect(() => client.save(saved("never"))).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE, message: expect.stringMatching(/exit code 3\b/) }));
      expect(client.load({ partitionKey: "sync", appId: "never" })).toBeNull();
    } finally {
      client.close();
    }
  });

  test("a step listing whose worker ends: UNAVAILABLE, not a listing the fresh worker never had", () => {
    const writer = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    writer.save(saved("listed"));
    writer.close();
    hooks = preloadInNextWorkers(exitOnArrival(2));
    const client = new SyncGrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      expect(() => [...client.listSteps({ partitionKey: "sync", appId: "listed" })]).toThrow(expect.objectContaining({ code: Code.UNAVAILABLE, message: expect.stringMatching(/exit code 3\b/) }));
      expect([...client.listSteps({ partitionKey: "sync", appId: "listed" })].map((s) => s.sequenceId)).toEqual([0]);
    } finally {
      client.close();
    }
  });
});
