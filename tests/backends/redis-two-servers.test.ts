/**
 * Two server processes on one Redis namespace, as in a deployment with several replicas: both
 * initialize at once, racing saves of one key through both have exactly one winner, and both
 * answer loads and listings the same.
 */
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../core/codec";
import { Code, PersisterError } from "../../core/errors";
import type { SaveInput } from "../../core/persister";
import { deleteNamespaces, redisUrl, uniquePrefix, withPrefix } from "../support/redis-store";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const prefix = uniquePrefix("two-servers");
let servers: ServerProcess[] = [];
let clients: Array<GrpcStatePersister<Uint8Array>> = [];

beforeAll(async () => {
  // Both run Initialize at start, at the same time.
  servers = await Promise.all([0, 1].map(() => startServerProcess(["--store", withPrefix(redisUrl, prefix), "--init"])));
  clients = servers.map((server) => new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 } }));
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop()));
  await deleteNamespaces([prefix]);
});

const step = (partitionKey: string, appId: string, sequenceId: number, text: string): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(text)),
  status: "completed",
});

describe("two servers on one Redis", () => {
  test("50 racing saves of one key through both servers: exactly one wins; both load the winner", async () => {
    const results = await Promise.allSettled(
      Array.from({ length: 50 }, (_, i) => clients[i % 2]!.save(step("race", "app", 1, `writer ${i}`)).then(() => i)),
    );
    const winners = results.flatMap((result) => (result.status === "fulfilled" ? [result.value] : []));
    expect(winners).toHaveLength(1);
    const losers = results.flatMap((result) => (result.status === "rejected" ? [(result.reason as PersisterError).code] : []));
    expect(losers).toEqual(Array(49).fill(Code.ALREADY_EXISTS));
    for (const client of clients) {
      const row = await client.load({ partitionKey: "race", appId: "app", sequenceId: 1 });
      expect(Buffer.from(row!.state).toString()).toBe(`writer ${winners[0]}`);
      expect(await client.listAppIds("race")).toEqual(["app"]);
    }
  });

  test("concurrent saves of many apps through both servers: both list the same order and agree on the latest", async () => {
    const partition = "many";
    await Promise.all(
      Array.from({ length: 300 }, (_, i) => clients[i % 2]!.save(step(partition, `app${i % 60}`, Math.floor(i / 60), `save ${i}`))),
    );
    const [first, second] = await Promise.all(clients.map((client) => client.listAppIds(partition)));
    expect(first).toHaveLength(60);
    expect(new Set(first).size).toBe(60);
    expect(second).toEqual(first);
    for (const client of clients) {
      expect((await client.load({ partitionKey: partition }))?.appId).toBe(first![0]);
      expect((await client.load({ partitionKey: partition, appId: "app7" }))?.sequenceId).toBe(4);
    }
  });
});
