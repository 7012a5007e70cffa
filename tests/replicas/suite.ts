/**
 * Two server processes on one store, as in a deployment with replicas behind a load balancer:
 * they initialize at the same moment, race on one key (exactly one save wins), and answer loads
 * and listings alike. Written once; run for every backend that several servers can share.
 */
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { Code, PersisterError } from "../../client/src/errors";
import type { SaveInput } from "../../client/src/persister";
import { startServerProcess, type ServerProcess } from "../support/server-process";
import type { StoreUnderTest } from "../support/subjects";

const step = (partitionKey: string, appId: string, sequenceId: number, text = `${appId}@${sequenceId}`): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(text)),
  status: "completed",
});

export function replicaSuite(name: string, makeStore: () => StoreUnderTest): void {
  describe(`two servers on one ${name} store`, () => {
    let store: StoreUnderTest;
    let servers: ServerProcess[] = [];
    let clients: Array<GrpcStatePersister<Uint8Array>> = [];

    beforeAll(async () => {
      store = makeStore();
      // Both run Initialize on a store that does not exist yet, at the same time.
      servers = await Promise.all([0, 1].map(() => startServerProcess(["--store", store.url, "--init"])));
      // Correctness, not speed: a slow store (FerretDB under load) gets a generous deadline.
      clients = servers.map((server) => new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 }, deadlineMs: 60_000 }));
    });

    afterAll(async () => {
      await Promise.all(clients.map((client) => client.close()));
      await Promise.all(servers.map((server) => server.stop("SIGTERM")));
      await store?.cleanup?.();
    });

    test("both initialized the same store and see each other's writes", async () => {
      for (const client of clients) expect(await client.isInitialized()).toBe(true);
      await clients[0]!.save(step("shared", "from-a", 0));
      await clients[1]!.save(step("shared", "from-b", 0));
      for (const client of clients) {
        expect(await client.listAppIds("shared")).toEqual(["from-b", "from-a"]);
        expect((await client.load({ partitionKey: "shared" }))?.appId).toBe("from-b");
      }
    });

    test("50 racing saves of one key through both: exactly one wins, both load the winner", async () => {
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

    test("concurrent saves of many apps through both: loads and listings agree", async () => {
      const apps = Array.from({ length: 40 }, (_, i) => `app${i}`);
      await Promise.all(
        apps.flatMap((appId, i) => [0, 1, 2].map((sequenceId) => clients[(i + sequenceId) % 2]!.save(step("many", appId, sequenceId)))),
      );
      const [listA, listB] = await Promise.all(clients.map((client) => client.listAppIds("many")));
      expect(new Set(listA)).toEqual(new Set(apps));
      expect(listA).toHaveLength(apps.length);
      expect(listB).toEqual(listA);
      const [latestA, latestB] = await Promise.all(clients.map((client) => client.load({ partitionKey: "many" })));
      expect(latestB).toEqual(latestA);
      expect(latestA?.appId).toBe(listA![0]);
      for (const client of clients) expect((await client.load({ partitionKey: "many", appId: "app7" }))?.sequenceId).toBe(2);
    });
  });
}
