/**
 * Two server processes on one PostgreSQL table, as in a deployment with replicas: they
 * initialize at the same moment, race on the same key, and answer loads and listings alike.
 */
import { rawCodec } from "../../core/codec";
import { Code, PersisterError } from "../../core/errors";
import type { SaveInput } from "../../core/persister";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { postgresStore } from "../support/postgres-store";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import type { StoreUnderTest } from "../support/subjects";

let store: StoreUnderTest;
let servers: ServerProcess[] = [];
let clients: Array<GrpcStatePersister<Uint8Array>> = [];

const bytes = (text: string) => new Uint8Array(Buffer.from(text));
const step = (partitionKey: string, appId: string, sequenceId: number, state = `${appId}@${sequenceId}`): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: bytes(state),
  status: "completed",
});

beforeAll(async () => {
  store = postgresStore();
  // Both run Initialize on a table that does not exist yet, at the same time.
  servers = await Promise.all([0, 1].map(() => startServerProcess(["--store", store.url, "--init"])));
  clients = servers.map((server) => new GrpcStatePersister({ address: server.address, codec: rawCodec }));
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop("SIGTERM")));
  await store?.cleanup?.();
});

test("both servers initialized the same table and see each other's writes", async () => {
  for (const client of clients) expect(await client.isInitialized()).toBe(true);
  await clients[0]!.save(step("shared", "from-a", 0));
  await clients[1]!.save(step("shared", "from-b", 0));
  for (const client of clients) {
    expect(await client.listAppIds("shared")).toEqual(["from-b", "from-a"]);
    expect((await client.load({ partitionKey: "shared" }))?.appId).toBe("from-b");
  }
});

test("50 racing saves of one key through both servers: exactly one wins", async () => {
  const results = await Promise.allSettled(
    Array.from({ length: 50 }, (_, i) => clients[i % 2]!.save(step("race", "app", 1, `writer ${i}`)).then(() => i)),
  );
  const winners = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
  expect(winners).toHaveLength(1);
  for (const result of results) {
    if (result.status === "rejected") {
      expect(result.reason).toBeInstanceOf(PersisterError);
      expect((result.reason as PersisterError).code).toBe(Code.ALREADY_EXISTS);
    }
  }
  for (const client of clients) {
    const row = await client.load({ partitionKey: "race", appId: "app", sequenceId: 1 });
    expect(Buffer.from(row!.state).toString()).toBe(`writer ${winners[0]}`);
    expect(await client.listAppIds("race")).toEqual(["app"]);
  }
});

test("concurrent saves of many apps through both servers: loads and listings agree on both", async () => {
  const apps = Array.from({ length: 40 }, (_, i) => `app${i}`);
  await Promise.all(
    apps.flatMap((appId, i) => [0, 1, 2].map((sequenceId) => clients[(i + sequenceId) % 2]!.save(step("many", appId, sequenceId)))),
  );
  const [listA, listB] = await Promise.all(clients.map((client) => client.listAppIds("many")));
  expect(listA).toHaveLength(apps.length);
  expect(new Set(listA)).toEqual(new Set(apps));
  expect(listB).toEqual(listA);
  const latestA = await clients[0]!.load({ partitionKey: "many" });
  const latestB = await clients[1]!.load({ partitionKey: "many" });
  expect(latestB).toEqual(latestA);
  // The most recently written row belongs to the app listed first.
  expect(latestA?.appId).toBe(listA[0]);
  for (const appId of apps) {
    const [a, b] = await Promise.all(clients.map((client) => client.load({ partitionKey: "many", appId })));
    expect(a?.sequenceId).toBe(2);
    expect(b).toEqual(a);
  }
});
