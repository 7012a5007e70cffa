/**
 * Redis going away under a running server: calls fail UNAVAILABLE within a bounded time instead of
 * hanging or crashing the server, and succeed again once Redis is back, without a restart.
 *
 * The test runs a redis-server of its own with no persistence (--save '' --appendonly no), so the
 * restarted Redis is empty: the server must notice it is no longer initialized and refuse saves
 * until Initialize runs again. Health says NOT_SERVING while Redis is away. A server does not
 * start on a Redis it cannot use: it waits up to --store-start-timeout-ms, then exits non-zero
 * saying why.
 */
import type { GrpcStatePersister } from "@burr-state/client";
import { Code, codeName } from "@burr-state/client/protocol";
import { freePort, startPrivateRedis, withPrefix, type PrivateRedis } from "./testing";
import { ChildExited, parseLine, startServerProcess, type ServerProcess } from "../../../tests/support/server-process";
import { checkHealth, ServingStatus, watchHealth } from "../../../tests/support/health";
import { expectUnavailableWhileHung, expectUnavailableWithin, failure, isAlive, retryWhileUnavailable, outageStep as step, startServerAndClient, type ServerAndClient } from "../../../tests/support/outage";

/** What a call may take while Redis is unreachable or hung: the command timeout (3 s) plus slack. */
const boundMs = 5_000;

let port: number;
let redis: PrivateRedis;
let server: ServerProcess;
let client: GrpcStatePersister<Uint8Array>;

beforeAll(async () => {
  port = await freePort();
  redis = await startPrivateRedis(port);
  ({ server, client } = await startServerAndClient(["--store", withPrefix(redis.url, "outage"), "--init"]));
});

afterAll(async () => {
  await client?.close();
  await server?.stop();
  redis?.child.kill("SIGCONT");
  await redis?.kill();
});

const expectUnavailableWithinBound = (work: () => Promise<unknown>) => expectUnavailableWithin(boundMs, work);

const serverIsAlive = () => isAlive(server);

describe("redis outage", () => {
  test("calls succeed while Redis is up", async () => {
    await client.save(step(1));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  });

  test("Redis hung (SIGSTOP): calls answer UNAVAILABLE after the command timeout; a timed-out save may still land", async () => {
    await expectUnavailableWhileHung(redis.child, { server, client, boundMs, save: step(2) });
    // Redis runs the save it had received once it resumes: why UNAVAILABLE on Save means "may have landed"
    // and why no layer retries Save on its own.
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(2);
  });

  test("Redis killed: every call answers UNAVAILABLE quickly and the server stays up", async () => {
    await redis.kill();
    for (let round = 0; round < 3; round++) {
      await expectUnavailableWithinBound(() => client.save(step(10 + round)));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage", appId: "app" }));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 }));
      await expectUnavailableWithinBound(() => client.listAppIds("outage"));
      await expectUnavailableWithinBound(() => client.isInitialized());
    }
    expect(serverIsAlive()).toBe(true);
    // Once ioredis has tried to reconnect (100 ms after the loss), failures name the refused connection.
    const named = () => server.logs.some((line) => line.includes("UNAVAILABLE") && line.includes("ECONNREFUSED"));
    for (const deadline = Date.now() + 3000; !named() && Date.now() < deadline; ) {
      await client.isInitialized().catch(() => {});
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(named()).toBe(true);
  });

  test("Redis back (empty, no persistence): the server reconnects by itself; saves wait for Initialize", async () => {
    redis = await startPrivateRedis(port);
    expect(await retryWhileUnavailable(() => client.isInitialized(), 10_000)).toBe(false);
    // The server had seen the store initialized; the save script still refuses an unmarked namespace.
    expect((await failure(() => client.save(step(20)))).code).toBe(codeName(Code.FAILED_PRECONDITION));
    await client.initialize();
    await client.save(step(21));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(21);
    expect(await client.listAppIds("outage")).toEqual(["app"]);
    expect(serverIsAlive()).toBe(true);
  });
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe("redis health and the start rule", () => {
  test("health follows Redis: NOT_SERVING while it is down, SERVING again once it is back (watchers told)", async () => {
    const health = watchHealth(server.address);
    try {
      await health.until(ServingStatus.SERVING, 5000);
      const from = health.seen.length - 1;
      await redis.kill();
      // The periodic probe (PING, every 2 s by default) notices without any call.
      await health.until(ServingStatus.NOT_SERVING, 8000);
      expect(await checkHealth(server.address, "burr.state.v1.StatePersister")).toBe(ServingStatus.NOT_SERVING);
      // The latest (the hung Redis of an earlier test was noticed too).
      expect(server.logs.map(parseLine).filter((event) => event?.event === "store_unavailable").pop()?.cause).toMatch(/redis at redis:\/\/127\.0\.0\.1:\d+.*ECONNREFUSED/);
      redis = await startPrivateRedis(port);
      await health.until(ServingStatus.SERVING, 8000);
      expect(await checkHealth(server.address)).toBe(ServingStatus.SERVING);
      expect(health.seen.slice(from)).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
      expect(serverIsAlive()).toBe(true);
    } finally {
      health.close();
      if (redis.child.exitCode !== null || redis.child.signalCode !== null) redis = await startPrivateRedis(port);
    }
  });

  test("a server started while Redis is down waits for it (--store-start-timeout-ms), then serves", async () => {
    await redis.kill();
    let settled = false;
    const late = startServerAndClient(["--store", withPrefix(redis.url, "outage"), "--init", "--store-start-timeout-ms", "30000"]);
    void late.then(
      () => (settled = true),
      () => (settled = true),
    );
    let started: ServerAndClient | null = null;
    try {
      await sleep(2000);
      expect(settled).toBe(false);
      redis = await startPrivateRedis(port);
      started = await late;
      await started.client.save(step(30));
      expect((await started.client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(30);
      expect(started.server.logs.map(parseLine).find((event) => event?.event === "store_waiting")?.cause).toMatch(/ECONNREFUSED/);
    } finally {
      if (redis.child.exitCode !== null || redis.child.signalCode !== null) redis = await startPrivateRedis(port);
      started ??= await late.catch(() => null);
      await started?.client.close();
      await started?.server.stop();
    }
  });

  test("Redis down past --store-start-timeout-ms: the server exits non-zero, saying why", async () => {
    const nobody = await freePort();
    const started = Date.now();
    const failure = await startServerProcess(["--store", `redis://127.0.0.1:${nobody}`, "--store-start-timeout-ms", "1500"]).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ChildExited);
    expect((failure as ChildExited).code).toBe(1);
    expect((failure as ChildExited).reason).toMatch(new RegExp(`could not be reached within 1500 ms.*redis at redis://127\\.0\\.0\\.1:${nobody}.*ECONNREFUSED`));
    expect(Date.now() - started).toBeLessThan(1500 + 6000);
  });

  test("a wrong password (requirepass): the server exits non-zero with the reason, the password redacted", async () => {
    const secured = await startPrivateRedis(await freePort(), { password: "right-password" });
    try {
      const started = Date.now();
      const failure = await startServerProcess(["--store", `redis://:not-the-password@127.0.0.1:${secured.port}`, "--store-start-timeout-ms", "2000"]).then(
        () => null,
        (error: unknown) => error,
      );
      expect(failure).toBeInstanceOf(ChildExited);
      expect((failure as ChildExited).code).toBe(1);
      expect((failure as ChildExited).reason).toMatch(/WRONGPASS/);
      expect((failure as ChildExited).logs.join("\n")).not.toContain("not-the-password");
      expect(Date.now() - started).toBeLessThan(2000 + 6000);
    } finally {
      await secured.kill();
    }
  });
});
