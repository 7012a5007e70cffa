/**
 * MongoDB going away under a running server: calls fail UNAVAILABLE within a bounded time
 * instead of hanging or crashing the server, and succeed again once the database is back,
 * without a restart. The database is a FerretDB of the test's own, restarted on the same port
 * and files, so what was saved before the outage must still be there.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GrpcStatePersister } from "@burr-state/client";
import { rawCodec } from "@burr-state/client/protocol";
import { Code, codeName, PersisterError } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { freePort, startPrivateFerretDb, withCollection, type PrivateFerretDb } from "./testing";
import { startServerProcess, type ServerProcess } from "../../../tests/support/server-process";

/** Server selection (3 s) or the socket timeout (5 s), plus slack. */
const boundMs = 7_000;

let dir: string;
let port: number;
let ferret: PrivateFerretDb;
let storeUrl: string;
const servers: ServerProcess[] = [];
const clients: Array<GrpcStatePersister<Uint8Array>> = [];

/** A server on the store, and a client of it that shows each answer as is (no retries). */
async function startServer(args: string[] = []): Promise<{ server: ServerProcess; client: GrpcStatePersister<Uint8Array> }> {
  const server = await startServerProcess(["--store", storeUrl, ...args]);
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 }, deadlineMs: 10_000 });
  servers.push(server);
  clients.push(client);
  return { server, client };
}

let server: ServerProcess;
let client: GrpcStatePersister<Uint8Array>;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-ferretdb-"));
  port = await freePort();
  ferret = await startPrivateFerretDb(port, dir);
  storeUrl = withCollection(ferret.url, "outage");
  ({ server, client } = await startServer(["--init"]));
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(servers.map((s) => s.stop()));
  ferret?.child.kill("SIGCONT");
  await ferret?.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const step = (sequenceId: number): SaveInput<Uint8Array> => ({
  partitionKey: "outage",
  appId: "app",
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`{"step": ${sequenceId}}`)),
  status: "completed",
});

/** The call's error code and how long it took to get it. */
async function failure(work: () => Promise<unknown>): Promise<{ code: string; ms: number }> {
  const started = Date.now();
  try {
    await work();
  } catch (error) {
    expect(error).toBeInstanceOf(PersisterError);
    return { code: (error as PersisterError).codeName, ms: Date.now() - started };
  }
  throw new Error("expected the call to fail, but it succeeded");
}

async function expectUnavailableWithinBound(work: () => Promise<unknown>) {
  const { code, ms } = await failure(work);
  expect(code).toBe(codeName(Code.UNAVAILABLE));
  expect(ms).toBeLessThan(boundMs);
}

const isAlive = (process: ServerProcess) => process.child.exitCode === null && process.child.signalCode === null;

/** Retries a call while it answers UNAVAILABLE, for at most `ms`. */
async function once<T>(work: () => Promise<T>, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await work();
    } catch (error) {
      if ((error as PersisterError).code !== Code.UNAVAILABLE || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

describe("mongo outage", () => {
  test("calls succeed while the database is up", async () => {
    await client.save(step(1));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(1);
  });

  test("database hung (SIGSTOP): calls answer UNAVAILABLE after the socket timeout", async () => {
    ferret.child.kill("SIGSTOP");
    try {
      await expectUnavailableWithinBound(() => client.save(step(2)));
      await expectUnavailableWithinBound(() => client.load({ partitionKey: "outage", appId: "app" }));
      expect(isAlive(server)).toBe(true);
    } finally {
      ferret.child.kill("SIGCONT");
    }
    expect((await once(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 })))?.sequenceId).toBe(1);
  });

  test("database killed: every call answers UNAVAILABLE within the bound and the server stays up", async () => {
    await ferret.kill();
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

  test("a server started while the database is down starts anyway and answers UNAVAILABLE", async () => {
    const late = await startServer();
    await expectUnavailableWithinBound(() => late.client.isInitialized());
    await expectUnavailableWithinBound(() => late.client.load({ partitionKey: "outage", appId: "app" }));
    expect(isAlive(late.server)).toBe(true);
  });

  test("database back on the same port and files: both servers answer again, earlier data intact", async () => {
    ferret = await startPrivateFerretDb(port, dir);
    expect((await once(() => client.load({ partitionKey: "outage", appId: "app", sequenceId: 1 })))?.sequenceId).toBe(1);
    await client.save(step(20));
    expect((await client.load({ partitionKey: "outage", appId: "app" }))?.sequenceId).toBe(20);
    expect(await client.listAppIds("outage")).toEqual(["app"]);

    const late = clients[1]!;
    expect(await once(() => late.isInitialized())).toBe(true);
    await late.save(step(21));
    expect((await client.load({ partitionKey: "outage" }))?.sequenceId).toBe(21);
    expect(servers.every(isAlive)).toBe(true);
  });
});
