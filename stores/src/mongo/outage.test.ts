/**
 * MongoDB going away under a running server: calls fail UNAVAILABLE within a bounded time
 * instead of hanging or crashing the server, and succeed again once the database is back,
 * without a restart. The database is a FerretDB of the test's own, restarted on the same port
 * and files, so what was saved before the outage must still be there. Health says NOT_SERVING
 * while the database is away. A server does not start on a database it cannot reach: it waits
 * up to --store-start-timeout-ms (and serves if the database comes back meanwhile), then exits
 * non-zero saying why.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { GrpcStatePersister } from "@burr-state/client";
import { freePort, startPrivateFerretDb, withCollection, type PrivateFerretDb } from "./testing";
import { ChildExited, parseLine, startServerProcess, type ServerProcess } from "../../../tests/support/server-process";
import { checkHealth, ServingStatus, watchHealth, type HealthWatch } from "../../../tests/support/health";
import { expectUnavailableWhileHung, expectUnavailableWithin, isAlive, retryWhileUnavailable, outageStep as step, startServerAndClient, type ServerAndClient } from "../../../tests/support/outage";

/** Server selection (3 s) or the socket timeout (5 s), plus slack. */
const boundMs = 7_000;

let dir: string;
let port: number;
let ferret: PrivateFerretDb;
let storeUrl: string;
const servers: ServerProcess[] = [];
const clients: Array<GrpcStatePersister<Uint8Array>> = [];

/** A server on the store, and a client of it that shows each answer as is (no retries). */
async function startServer(args: string[] = []): Promise<ServerAndClient> {
  const started = await startServerAndClient(["--store", storeUrl, ...args]);
  servers.push(started.server);
  clients.push(started.client);
  return started;
}

let server: ServerProcess;
let client: GrpcStatePersister<Uint8Array>;
let health: HealthWatch | null = null;
/** Where the statuses seen from the outage on start (the one before it, SERVING, included). */
let healthFrom = 0;
/** A server started while the database is down, still waiting for it. */
let late: ReturnType<typeof startServer> | null = null;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-ferretdb-"));
  port = await freePort();
  ferret = await startPrivateFerretDb(port, dir);
  storeUrl = withCollection(ferret.url, "outage");
  ({ server, client } = await startServer(["--init"]));
});

afterAll(async () => {
  health?.close();
  await late?.catch(() => null);
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
  ferret?.child.kill("SIGCONT");
  await ferret?.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const expectUnavailableWithinBound = (work: () => Promise<unknown>) => expectUnavailableWithin(boundMs, work);

describe("mongo outage", () => {
  test("calls succeed while the database is up", async () => {
    await client.save(step(1));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  });

  test("database hung (SIGSTOP): calls answer UNAVAILABLE after the socket timeout", async () => {
    await expectUnavailableWhileHung(ferret.child, { server, client, boundMs, save: step(2) });
    expect((await retryWhileUnavailable(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 })))?.sequenceId).toBe(1);
  });

  test("database killed: every call answers UNAVAILABLE within the bound and the server stays up; health says NOT_SERVING", async () => {
    health = watchHealth(server.address);
    await health.until(ServingStatus.SERVING, 5000);
    healthFrom = health.seen.length - 1;
    await ferret.kill();
    // The periodic probe (ping, every 2 s by default, 3 s server selection) notices without any call.
    await health.until(ServingStatus.NOT_SERVING, 10_000);
    expect(await checkHealth(server.address, "burr.state.v1.StatePersister")).toBe(ServingStatus.NOT_SERVING);
    expect(server.logs.map(parseLine).find((event) => event?.event === "store_unavailable")?.cause).toMatch(/MongoDB is unavailable/);
    for (let round = 0; round < 3; round++) {
      await expectUnavailableWithinBound(() => client.save(step(10 + round)));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage", appId: "app" }));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 }));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage" }));
      await expectUnavailableWithinBound(() => client.listAppIds("outage"));
      await expectUnavailableWithinBound(() => client.isInitialized());
    }
    expect(isAlive(server)).toBe(true);
    expect(server.logs.some((line) => line.includes("UNAVAILABLE"))).toBe(true);
  });

  test("a server started while the database is down waits for it (--store-start-timeout-ms) instead of serving", async () => {
    let settled = false;
    late = startServer(["--store-start-timeout-ms", "30000"]);
    void late.then(
      () => (settled = true),
      () => (settled = true),
    );
    // Past the first attempt's server selection (3 s): it has failed, and been logged.
    await new Promise((resolve) => setTimeout(resolve, 4000));
    expect(settled).toBe(false);
  });

  test("database back on the same port and files: both servers answer again, earlier data intact, health SERVING", async () => {
    ferret = await startPrivateFerretDb(port, dir);
    expect((await retryWhileUnavailable(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 })))?.sequenceId).toBe(1);
    await client.save(step(20));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(20);
    expect(await client.listAppIds("outage")).toEqual(["app"]);
    await health!.until(ServingStatus.SERVING, 10_000);
    expect(health!.seen.slice(healthFrom)).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);

    // The server that was waiting starts now.
    const waiting = await late!;
    expect(waiting.server.logs.map(parseLine).find((event) => event?.event === "store_waiting")?.cause).toMatch(/MongoDB is unavailable/);
    expect(await retryWhileUnavailable(() => waiting.client.isInitialized())).toBe(true);
    await waiting.client.save(step(21));
    expect((await client.load({ partitionKey: "outage" }))?.sequenceId).toBe(21);
    expect(await checkHealth(waiting.server.address)).toBe(ServingStatus.SERVING);
    expect(servers.every(isAlive)).toBe(true);
  });

  test("a host that cannot be resolved: the server exits non-zero with the reason", async () => {
    const started = Date.now();
    const failure = await startServerProcess(
      ["--store", "mongodb://burr:not-the-password@burr-no-such-host.invalid:27017/burr"],
      { BURR_STORE_START_TIMEOUT_MS: "2000" },
    ).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ChildExited);
    expect((failure as ChildExited).code).toBe(1);
    expect((failure as ChildExited).reason).toMatch(/could not be reached within 2000 ms/);
    expect((failure as ChildExited).reason).toMatch(/MongoDB is unavailable: .*(ENOTFOUND|getaddrinfo)/);
    expect((failure as ChildExited).logs.join("\n")).not.toContain("not-the-password");
    // The start timeout, and the attempt under way then (3 s server selection).
    expect(Date.now() - started).toBeLessThan(2000 + 8000);
  });
});
