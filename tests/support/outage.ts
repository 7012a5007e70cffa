/**
 * What the store outage tests share: a server with a client that shows each answer as is, a step
 * to save, and the checks that a call fails UNAVAILABLE in time and succeeds again afterwards.
 */
import type { ChildProcess } from "node:child_process";
import { GrpcStatePersister } from "@burr-state/client";
import { Code, codeName, PersisterError, rawCodec } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { startServerProcess, type ServerProcess } from "./server-process";

export interface ServerAndClient {
  server: ServerProcess;
  client: GrpcStatePersister<Uint8Array>;
}

/** A server with these arguments, and a client of it with no retries: each call shows what the server answers. */
export async function startServerAndClient(args: string[]): Promise<ServerAndClient> {
  const server = await startServerProcess(args);
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 }, deadlineMs: 10_000 });
  return { server, client };
}

/** Step `sequenceId` of app "app" in partition "outage". */
export const outageStep = (sequenceId: number): SaveInput<Uint8Array> => ({
  partitionKey: "outage",
  appId: "app",
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`{"step": ${sequenceId}}`)),
  status: "completed",
});

/** The call's error code and how long it took to get it. */
export async function failure(work: () => Promise<unknown>): Promise<{ code: string; ms: number }> {
  const started = Date.now();
  try {
    await work();
  } catch (error) {
    expect(error).toBeInstanceOf(PersisterError);
    return { code: (error as PersisterError).codeName, ms: Date.now() - started };
  }
  throw new Error("expected the call to fail, but it succeeded");
}

export async function expectUnavailableWithin(boundMs: number, work: () => Promise<unknown>): Promise<void> {
  const { code, ms } = await failure(work);
  expect(code).toBe(codeName(Code.UNAVAILABLE));
  expect(ms).toBeLessThan(boundMs);
}

export const isAlive = (process: ServerProcess) => process.child.exitCode === null && process.child.signalCode === null;

export interface HungCheck extends ServerAndClient {
  boundMs: number;
  /** What to save while the database hangs (a store may run it once the database resumes). */
  save: SaveInput<Uint8Array>;
}

/**
 * Hangs the database (SIGSTOP): a save and a load must answer UNAVAILABLE within `boundMs`, and the
 * server must stay up. The database resumes (SIGCONT) afterwards, whatever happened.
 */
export async function expectUnavailableWhileHung(database: ChildProcess, { server, client, boundMs, save }: HungCheck): Promise<void> {
  database.kill("SIGSTOP");
  try {
    await expectUnavailableWithin(boundMs, () => client.save(save));
    await expectUnavailableWithin(boundMs, () => client.load({ partitionKey: save.partitionKey, appId: save.appId }));
    expect(isAlive(server)).toBe(true);
  } finally {
    database.kill("SIGCONT");
  }
}

/** Retries a call while it answers UNAVAILABLE, for at most `ms`; any other failure fails at once. */
export async function retryWhileUnavailable<T>(work: () => Promise<T>, ms = 15_000): Promise<T> {
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
