/**
 * The server on a PostgreSQL that goes away: calls answer UNAVAILABLE (naming PostgreSQL and the
 * cause) well within their deadline, the process survives its broken connections, health says
 * NOT_SERVING meanwhile, and once the database is back the same process serves again with no
 * restart. A server does not start on a database it cannot reach: it waits up to
 * --store-start-timeout-ms, then exits non-zero saying why.
 */
import { rawCodec } from "@burr-state/client/protocol";
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { GrpcStatePersister } from "@burr-state/client";
import { postgresUrl, startPrivatePostgres, withParams, type PrivatePostgres } from "./testing";
import { ChildExited, parseLine, startServerProcess, type ServerProcess } from "../../../tests/support/server-process";
import { checkHealth, ServingStatus, watchHealth } from "../../../tests/support/health";

const deadlineMs = 10_000;
let db: PrivatePostgres;
let storeUrl: string;
const servers: ServerProcess[] = [];
const clients: GrpcStatePersister<Uint8Array>[] = [];

async function serve(extraArgs: string[]) {
  const server = await startServerProcess(["--store", storeUrl, ...extraArgs]);
  servers.push(server);
  // No retries: each call's own answer and its time are what is measured.
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, deadlineMs, retry: { attempts: 1 } });
  clients.push(client);
  return { server, client };
}

const step = (sequenceId: number): SaveInput<Uint8Array> => ({
  partitionKey: "outage",
  appId: "app",
  sequenceId,
  position: `action${sequenceId}`,
  state: new Uint8Array(Buffer.from(`{"step": ${sequenceId}}`)),
  status: "completed",
});

/** The call's failure and how long it took to come. */
async function failure(call: () => Promise<unknown>): Promise<{ error: PersisterError; ms: number }> {
  const started = Date.now();
  const error = await call().then(
    () => {
      throw new Error("expected the call to fail while the database is unavailable");
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(PersisterError);
  return { error: error as PersisterError, ms: Date.now() - started };
}

async function expectUnavailable(call: () => Promise<unknown>, withinMs: number, cause: RegExp) {
  const { error, ms } = await failure(call);
  expect({ code: error.codeName, message: error.message }).toMatchObject({ code: "UNAVAILABLE", message: expect.stringMatching(/PostgreSQL/) });
  expect(error.message).toMatch(cause);
  expect(ms).toBeLessThan(withinMs);
}

const alive = (server: ServerProcess) => server.child.exitCode === null && server.child.signalCode === null;

beforeAll(async () => {
  db = await startPrivatePostgres();
  storeUrl = withParams(db.url, { table: "outage_states" });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop("SIGTERM")));
  await db?.destroy();
});

test("a stopped database: every call answers UNAVAILABLE at once, the server stays up, and serves again once it is back", async () => {
  const { server, client } = await serve(["--init"]);
  await client.save(step(0));
  expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(0);

  await db.stop();
  // Let the pool see its idle connections terminated: those errors must not bring the process down.
  await new Promise((resolve) => setTimeout(resolve, 500));
  const refused = /ECONNREFUSED|connect|terminat/i;
  await expectUnavailable(() => client.save(step(1)), 3000, refused);
  await expectUnavailable(() => client.load({ partitionKey: "outage", appId: "app" }), 3000, refused);
  await expectUnavailable(() => client.load({ partitionKey: "outage" }), 3000, refused);
  await expectUnavailable(() => client.listAppIds("outage"), 3000, refused);
  await expectUnavailable(() => client.isInitialized(), 3000, refused);
  expect(alive(server)).toBe(true);

  await db.start();
  await client.save(step(1));
  expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  expect(await client.listAppIds("outage")).toEqual(["app"]);
  expect(alive(server)).toBe(true);
});

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test("health follows the database: NOT_SERVING while it is stopped, SERVING again once it is back (watchers told)", async () => {
  const { server, client } = await serve([]);
  const health = watchHealth(server.address);
  const persister = watchHealth(server.address, "burr.state.v1.StatePersister");
  let down = false;
  try {
    await health.until(ServingStatus.SERVING, 5000);
    const from = health.seen.length - 1;
    await db.stop();
    down = true;
    const stopped = Date.now();
    // The periodic probe (every 2 s by default) notices without any call.
    await health.until(ServingStatus.NOT_SERVING, 8000);
    await persister.until(ServingStatus.NOT_SERVING, 1000);
    expect(Date.now() - stopped).toBeLessThan(8000);
    expect(await checkHealth(server.address)).toBe(ServingStatus.NOT_SERVING);
    expect(server.logs.map(parseLine).find((event) => event?.event === "store_unavailable")?.cause).toMatch(/PostgreSQL.*(ECONNREFUSED|connect|terminat)/i);
    await expectUnavailable(() => client.load({ partitionKey: "outage", appId: "app" }), 3000, /ECONNREFUSED|connect|terminat/i);

    await db.start();
    down = false;
    await health.until(ServingStatus.SERVING, 8000);
    await persister.until(ServingStatus.SERVING, 1000);
    expect(await checkHealth(server.address, "burr.state.v1.StatePersister")).toBe(ServingStatus.SERVING);
    expect(health.seen.slice(from)).toEqual([ServingStatus.SERVING, ServingStatus.NOT_SERVING, ServingStatus.SERVING]);
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
    expect(server.logs.map(parseLine).some((event) => event?.event === "store_available")).toBe(true);
    expect(alive(server)).toBe(true);
  } finally {
    health.close();
    persister.close();
    if (down) await db.start();
  }
});

test("a server started while the database is down waits for it (--store-start-timeout-ms), then serves", async () => {
  await db.stop();
  let settled = false;
  const late = serve(["--store-start-timeout-ms", "30000"]);
  void late.then(
    () => (settled = true),
    () => (settled = true),
  );
  try {
    await sleep(2500);
    expect(settled).toBe(false);
  } finally {
    await db.start();
  }
  const { server, client } = await late;
  expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  expect(await checkHealth(server.address)).toBe(ServingStatus.SERVING);
  const waited = server.logs.map(parseLine).find((event) => event?.event === "store_waiting");
  expect(waited?.cause).toMatch(/PostgreSQL.*(ECONNREFUSED|connect)/i);
});

test("a server whose database stays down past --store-start-timeout-ms exits non-zero, saying why", async () => {
  await db.stop();
  try {
    const started = Date.now();
    const failure = await serve(["--store-start-timeout-ms", "1500"]).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(ChildExited);
    expect((failure as ChildExited).code).toBe(1);
    expect((failure as ChildExited).reason).toMatch(/could not be reached within 1500 ms/);
    expect((failure as ChildExited).reason).toMatch(/PostgreSQL at 127\.0\.0\.1:\d+\/postgres is unavailable: .*ECONNREFUSED/);
    expect(Date.now() - started).toBeLessThan(1500 + 6000);
  } finally {
    await db.start();
  }
});

test("a wrong password: the server does not start; it exits non-zero with the reason (the password redacted)", async () => {
  const wrong = new URL(postgresUrl);
  wrong.password = "not-the-password";
  const started = Date.now();
  const failure = await startServerProcess(["--store", wrong.toString(), "--store-start-timeout-ms", "2000"]).then(
    () => null,
    (error: unknown) => error,
  );
  expect(failure).toBeInstanceOf(ChildExited);
  expect((failure as ChildExited).code).toBe(1);
  expect((failure as ChildExited).reason).toMatch(/password authentication failed/);
  expect((failure as ChildExited).logs.join("\n")).not.toContain("not-the-password");
  expect(Date.now() - started).toBeLessThan(2000 + 6000);
});

test("a database that stops answering: calls answer UNAVAILABLE before their deadline, then recover", async () => {
  const { server, client } = await serve([]);
  await client.save(step(10));
  db.freeze();
  try {
    // Bounded by the connect timeout (3 s) or the query timeout (5 s), whichever the call meets.
    const timedOut = /timeout|terminat/i;
    await expectUnavailable(() => client.save(step(11)), 7000, timedOut);
    await expectUnavailable(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 10 }), 7000, timedOut);
    expect(alive(server)).toBe(true);
  } finally {
    db.thaw();
  }
  // The save that timed out may still have landed once the database woke up, so use a new step.
  await client.save(step(12));
  expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(12);
  expect(alive(server)).toBe(true);
});
