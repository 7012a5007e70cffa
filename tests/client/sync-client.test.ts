/** The sync client's own machinery: its worker thread, the state buffers it posts there, its lifetime. */
import { execFile } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";
import { promisify } from "node:util";
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
