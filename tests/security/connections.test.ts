/**
 * Connections are bounded and silent ones do not last: under a 1,024 file-descriptor limit,
 * 2,000 TCP connections that never send anything do not lock new clients out; connections that
 * send no call are closed after --connection-idle-ms; past --max-connections, connections that
 * have all sent calls are refused. Refusals and closures are logged as counted summaries.
 */
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { makeCertificates } from "../support/certificates";
import { rawUnary } from "../support/raw-grpc";
import { parseLine, repoRoot, serverScript, startServerProcess, watchStarted } from "../support/server-process";

const isInitialized = "/burr.state.v1.StatePersister/IsInitialized";

interface Limited {
  port: number;
  pid: number;
  logs: string[];
  stop(): Promise<number | null>;
}

/** The real server under `prlimit --nofile=N:N`, as a container or systemd unit with a low limit would run it. */
async function startWithDescriptorLimit(limit: number, args: string[]): Promise<Limited> {
  const child = spawn("prlimit", [`--nofile=${limit}:${limit}`, process.execPath, path.join(repoRoot, serverScript), "--listen", "127.0.0.1:0", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "inherit", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = (await watchStarted(child, logs, exited)).port as number;
  return { port, pid: child.pid!, logs, stop: () => (child.kill("SIGTERM"), exited) };
}

/** Opens `count` TCP connections that never send a byte, `batch` at a time; they stay open until closed. */
async function silentConnections(port: number, count: number, batch = 200): Promise<net.Socket[]> {
  const sockets: net.Socket[] = [];
  for (let i = 0; i < count; i += batch) {
    await Promise.all(
      Array.from({ length: Math.min(batch, count - i) }, () => {
        const socket = net.connect(port, "127.0.0.1");
        socket.on("error", () => {});
        // Reading (nothing comes) is how this side notices the server closing it.
        socket.resume();
        sockets.push(socket);
        return new Promise((resolve) => {
          socket.once("connect", resolve);
          socket.once("close", resolve);
        });
      }),
    );
  }
  return sockets;
}

/** One call on a new connection of its own. */
const freshCall = (port: number) => rawUnary(`127.0.0.1:${port}`, isInitialized, new Uint8Array(), { deadline: Date.now() + 5000 });

const events = (logs: string[], name: string) => logs.map(parseLine).filter((event) => event?.event === name) as Array<Record<string, unknown>>;
/** How many times an error line happened: the logger writes it once, then summary lines carrying `repeated`. */
const occurrences = (lines: Array<Record<string, unknown>>) => lines.reduce((sum, line) => sum + ((line.repeated as number | undefined) ?? 1), 0);
const openDescriptors = (pid: number) => fs.readdirSync(`/proc/${pid}/fd`).length;

test("2,000 silent connections under a 1,024 descriptor limit do not lock new clients out; closures are logged as summaries", async () => {
  const server = await startWithDescriptorLimit(1024, ["--store", "sqlite::memory:", "--init"]);
  let sockets: net.Socket[] = [];
  try {
    const started = parseLine(server.logs.find((line) => line.includes('"started"'))!)!;
    // The default limit (1,000) is lowered to leave descriptors for everything else.
    expect(started.maxConnections).toBe(924);
    sockets = await silentConnections(server.port, 2000);
    const descriptors = openDescriptors(server.pid);
    for (let i = 0; i < 5; i++) expect(await freshCall(server.port)).toMatchObject({ code: grpc.status.OK });
    const stillOpen = sockets.filter((socket) => !socket.closed).length;
    process.stdout.write(`server descriptors with 2,000 silent connections: ${descriptors}; silent connections still open: ${stillOpen}\n`);
    expect(descriptors).toBeLessThan(1024);
    expect(stillOpen).toBeLessThanOrEqual(924);
  } finally {
    sockets.forEach((socket) => socket.destroy());
    expect(await server.stop()).toBe(0);
  }
  // One line at once, then one summary (at the latest when the server stops), not one per connection.
  const evicted = events(server.logs, "connection_evicted");
  process.stdout.write(`eviction log lines: ${JSON.stringify(evicted.map((event) => event.repeated ?? 1))}\n`);
  expect(evicted.length).toBeGreaterThanOrEqual(1);
  expect(evicted.length).toBeLessThanOrEqual(3);
  expect(occurrences(evicted)).toBeGreaterThanOrEqual(2000 - 924);
  expect(server.logs.length).toBeLessThan(20);
});

test("connections that send no call are closed after --connection-idle-ms; ones that did stay", async () => {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--connection-idle-ms", "500"]);
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  try {
    const [bare] = await silentConnections(server.port, 1);
    const preface = await silentConnections(server.port, 1).then(([socket]) => (socket!.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), socket!));
    const bytes = (value: Buffer) => value;
    const call = () =>
      new Promise<number>((resolve) => client.makeUnaryRequest(isInitialized, bytes, bytes, Buffer.alloc(0), (error) => resolve(error ? error.code : 0)));
    expect(await call()).toBe(0);
    const opened = Date.now();
    const closed = (socket: net.Socket) => new Promise((resolve) => (socket.closed ? resolve(null) : socket.once("close", resolve)));
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([Promise.all([closed(bare!), closed(preface)]).then(() => "closed"), new Promise((resolve) => (timer = setTimeout(() => resolve("still open"), 5000)))]);
    clearTimeout(timer);
    expect(outcome).toBe("closed");
    expect(Date.now() - opened).toBeLessThan(3000);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    // The client's connection has sent a call: still open, the next call goes through on it.
    expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
    expect(await call()).toBe(0);
  } finally {
    client.close();
    await server.stop();
  }
  const idle = events(server.logs, "connection_closed_idle");
  expect(idle.length).toBeGreaterThanOrEqual(1);
  expect(occurrences(idle)).toBe(2);
});

test("over TLS too: a silent connection is closed after --connection-idle-ms, a client that called keeps its connection", async () => {
  const certs = makeCertificates();
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--connection-idle-ms", "500", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey]);
  const client = new grpc.Client(server.address, grpc.credentials.createSsl(certs.read(certs.caCert)));
  try {
    const [silent] = await silentConnections(server.port, 1);
    const bytes = (value: Buffer) => value;
    const call = () =>
      new Promise<number>((resolve) => client.makeUnaryRequest(isInitialized, bytes, bytes, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 5000 }, (error) => resolve(error ? error.code : 0)));
    expect(await call()).toBe(0);
    await new Promise((resolve) => setTimeout(resolve, 1500));
    expect(silent!.closed).toBe(true);
    expect(client.getChannel().getConnectivityState(false)).toBe(grpc.connectivityState.READY);
    expect(await call()).toBe(0);
  } finally {
    client.close();
    await server.stop();
    fs.rmSync(certs.dir, { recursive: true, force: true });
  }
  expect(occurrences(events(server.logs, "connection_closed_idle"))).toBe(1);
});

test("past --max-connections, with every connection busy with calls, a new one is refused and that is logged", async () => {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--max-connections", "3"]);
  const clients = Array.from({ length: 3 }, () => new grpc.Client(server.address, grpc.credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }));
  try {
    const bytes = (value: Buffer) => value;
    const call = (client: grpc.Client) =>
      new Promise<grpc.ServiceError | null>((resolve) =>
        client.makeUnaryRequest(isInitialized, bytes, bytes, Buffer.alloc(0), new grpc.Metadata(), { deadline: Date.now() + 3000 }, (error) => resolve(error)),
      );
    for (const client of clients) expect(await call(client)).toBeNull();
    expect(await freshCall(server.port)).toMatchObject({ code: grpc.status.UNAVAILABLE });
    // The connections already serving go on.
    for (const client of clients) expect(await call(client)).toBeNull();
  } finally {
    clients.forEach((client) => client.close());
    await server.stop();
  }
  const refused = events(server.logs, "connection_refused");
  expect(refused.length).toBeGreaterThanOrEqual(1);
  expect(refused[0]!.reason).toMatch(/--max-connections \(3\)/);
});
