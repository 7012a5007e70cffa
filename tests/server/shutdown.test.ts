/**
 * SIGTERM ends the process within --shutdown-grace-ms (plus a second) whatever the open
 * connections do: a TCP connection that never speaks, one that stops after the HTTP/2 preface,
 * and a listing whose client never reads. The store is closed on the way out.
 */
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { SqliteSyncBackend } from "../../stores/src/sqlite";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-shutdown-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const graceMs = 1000;
const preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** A SQLite file holding `count` apps in partition "many" (long ids: megabytes of listing). */
function seeded(name: string, count: number): string {
  const file = path.join(dir, name);
  const seed = new SqliteSyncBackend({ path: file });
  seed.initialize();
  const state = new Uint8Array(Buffer.from("{}"));
  seed.saveMany(Array.from({ length: count }, (_, i) => ({ partitionKey: "many", appId: `${i}-${"x".repeat(100)}`, sequenceId: 0, position: "p", state, status: "completed" as const })));
  seed.close();
  return file;
}

/** A connected TCP socket that has sent `bytes` (maybe nothing) and then stays silent. */
async function silent(port: number, bytes = ""): Promise<net.Socket> {
  const socket = net.connect(port, "127.0.0.1");
  socket.on("error", () => {});
  await new Promise((resolve) => socket.once("connect", resolve));
  if (bytes) socket.write(bytes);
  return socket;
}

/** A gRPC ListAppIds of partition "many" whose answers are never read: HTTP/2 flow control stops the server. */
async function unreadListing(port: number): Promise<http2.ClientHttp2Session> {
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on("error", () => {});
  const stream = session.request({ ":method": "POST", ":path": "/burr.state.v1.StatePersister/ListAppIds", "content-type": "application/grpc", te: "trailers" });
  stream.on("error", () => {});
  // ListAppIdsRequest { partition_key (1) = "many" }, in a gRPC frame.
  const message = Buffer.from([0x0a, 4, ...Buffer.from("many")]);
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  stream.end(frame);
  // Wait until the server has answered with headers (the listing is running), then never read.
  await new Promise((resolve) => stream.once("response", resolve));
  stream.pause();
  return session;
}

/** SIGTERM, then the exit code and how long it took; a server still running 5 s past the grace period is killed. */
async function terminate(server: ServerProcess): Promise<{ code: number | null | "still running"; took: number }> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const code = await Promise.race([server.stop("SIGTERM"), new Promise<"still running">((resolve) => (timer = setTimeout(() => resolve("still running"), graceMs + 5000)))]);
  clearTimeout(timer);
  const took = Date.now() - started;
  if (code === "still running") await server.stop("SIGKILL");
  return { code, took };
}

test("SIGTERM with a silent TCP connection, a preface-only connection and an unread listing exits 0 within the grace period plus a second, the store closed", async () => {
  const file = seeded("many.db", 20_000);
  const server = await startServerProcess(["--store", `sqlite:${file}`, "--shutdown-grace-ms", String(graceMs)]);
  const bare = await silent(server.port);
  const prefaceOnly = await silent(server.port, preface);
  const listing = await unreadListing(server.port);
  // Let the listing fill every window and buffer on the way.
  await new Promise((resolve) => setTimeout(resolve, 500));

  const { code, took } = await terminate(server);
  bare.destroy();
  prefaceOnly.destroy();
  listing.destroy();

  expect(code).toBe(0);
  expect(took).toBeLessThan(graceMs + 1000);
  const events = server.logs.map((line) => JSON.parse(line).event);
  expect(events).toContain("stopped");
  // SQLite removes the write-ahead log when the last connection closes: the store was closed.
  expect(fs.existsSync(`${file}-wal`)).toBe(false);
});

test.each([
  ["a silent TCP connection", (port: number) => silent(port)],
  ["a preface-only connection", (port: number) => silent(port, preface)],
])("SIGTERM with only %s exits 0 within the grace period plus a second", async (_name, open) => {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--shutdown-grace-ms", String(graceMs)]);
  const socket = await open(server.port);
  const { code, took } = await terminate(server);
  socket.destroy();
  expect(code).toBe(0);
  expect(took).toBeLessThan(graceMs + 1000);
});
