/**
 * The server on a PostgreSQL that goes away: calls answer UNAVAILABLE (naming PostgreSQL and the
 * cause) well within their deadline, the process survives its broken connections, and once the
 * database is back the same process serves again with no restart.
 */
import { rawCodec } from "@burr-state/client/protocol";
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { GrpcStatePersister } from "@burr-state/client";
import { startPrivatePostgres, withParams, type PrivatePostgres } from "./testing";
import { startServerProcess, type ServerProcess } from "../../../tests/support/server-process";

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

  // A server started while the database is down starts, and answers the same way.
  const late = await serve([]);
  await expectUnavailable(() => late.client.load({ partitionKey: "outage", appId: "app" }), 3000, refused);

  await db.start();
  await client.save(step(1));
  expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  expect(await client.listAppIds("outage")).toEqual(["app"]);
  expect((await late.client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  expect(alive(server) && alive(late.server)).toBe(true);
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
