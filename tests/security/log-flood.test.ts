/**
 * A store that fails every call does not flood the log: identical error lines are written once,
 * then counted, with one summary line per window ({"repeated": N, "window_ms": ...}) and the
 * rest summarized when the server stops. Every failure is accounted for: lines written plus the
 * summaries' counts equal the calls that failed.
 */
import * as net from "node:net";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { Code } from "../../client/src/errors";
import { dropTables, postgresUrl, uniqueTableName, withParams } from "../../stores/src/postgres/testing";
import { parseLine, startServerProcess } from "../support/server-process";

/** A TCP relay to the test PostgreSQL that can be cut: then every connection to it is refused. */
async function relay(target: URL) {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const upstream = net.connect(Number(target.port || 5432), target.hostname);
    for (const socket of [client, upstream]) {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
      socket.on("error", () => socket.destroy());
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    cut: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

const table = uniqueTableName("flood");
afterAll(() => dropTables([table]));

test("many identical failures: one line, then one summary per window, every failure counted", async () => {
  const target = new URL(postgresUrl);
  const proxy = await relay(target);
  const viaProxy = new URL(withParams(postgresUrl, { table }));
  viaProxy.hostname = "127.0.0.1";
  viaProxy.port = String(proxy.port);
  const server = await startServerProcess(["--store", viaProxy.toString(), "--init"]);
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, deadlineMs: 10_000, retry: { attempts: 1 } });
  const step = (appId: string) => ({ appId, sequenceId: 0, position: "p", state: new Uint8Array([1]), status: "completed" as const });
  const saveLines = () => server.logs.map(parseLine).filter((event) => event?.event === "call_failed" && event.method === "Save");
  let failed = 0;
  const burst = async (count: number) => {
    for (let i = 0; i < count; i += 50) {
      const outcomes = await Promise.allSettled(Array.from({ length: Math.min(50, count - i) }, (_, j) => client.save(step(`app-${i + j}`))));
      for (const outcome of outcomes) {
        expect(outcome.status).toBe("rejected");
        if (outcome.status === "rejected") expect((outcome.reason as { code: number }).code).toBe(Code.UNAVAILABLE);
        failed++;
      }
    }
  };
  try {
    await client.save(step("before"));
    await proxy.cut();
    await burst(400);
    // The first of each kind is written at once; the rest only counted so far.
    const written = saveLines().filter((event) => event!.repeated === undefined);
    expect(written.length).toBeGreaterThan(0);
    expect(written.length).toBeLessThanOrEqual(3);
    // When its window ends, a summary line tells how many more there were.
    const deadline = Date.now() + 15_000;
    while (!saveLines().some((event) => typeof event!.repeated === "number") && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    const summary = saveLines().find((event) => typeof event!.repeated === "number");
    expect(summary).toMatchObject({ level: "error", event: "call_failed", method: "Save", code: "UNAVAILABLE", cause: expect.any(String), window_ms: expect.any(Number) });
    // More of the same, then a stop: what was counted since is summarized before the process exits.
    await burst(200);
    await client.close();
    expect(await server.stop()).toBe(0);
    const lines = saveLines();
    const summaries = lines.filter((event) => typeof event!.repeated === "number");
    const plain = lines.length - summaries.length;
    expect(plain + summaries.reduce((sum, event) => sum + (event!.repeated as number), 0)).toBe(failed);
    expect(lines.length).toBeLessThanOrEqual(12);
    // Every summary repeats the line it counts (same method, code and cause as a line written).
    for (const event of summaries) expect(lines.some((line) => line!.repeated === undefined && line!.cause === event!.cause && line!.code === event!.code)).toBe(true);
  } finally {
    await client.close();
    await server.stop();
  }
}, 90_000);
