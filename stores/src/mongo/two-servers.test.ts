/**
 * What tests/replicas adds for MongoDB: the test database is FerretDB, whose findAndModify is
 * not atomic, so two servers' write_seq counters can hand out one value twice; the unique index
 * on write_seq must still keep every stored write_seq distinct, and every save land once.
 */
import type { MongoClient } from "mongodb";
import { GrpcStatePersister } from "@burr-state/client";
import { rawCodec } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { parseMongoUrl } from "./index";
import { connectAdmin, dropStores, mongoUrl, sharedStoreUrl, uniqueCollection, withCollection } from "./testing";
import { startServerProcess, type ServerProcess } from "../../../tests/support/server-process";

const collection = uniqueCollection("two_servers");
let admin: MongoClient;
let servers: ServerProcess[] = [];
let clients: Array<GrpcStatePersister<Uint8Array>> = [];

beforeAll(async () => {
  admin = await connectAdmin();
  // Both run Initialize at start, at the same time.
  servers = await Promise.all([0, 1].map(() => startServerProcess(["--store", withCollection(sharedStoreUrl, collection), "--init"])));
  // FerretDB scans whole collections per write: 300 concurrent saves can take longer than the default 10 s deadline.
  clients = servers.map((server) => new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 }, deadlineMs: 60_000 }));
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop()));
  await admin?.close();
  await dropStores([collection]);
});

const step = (partitionKey: string, appId: string, sequenceId: number, text: string): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(text)),
  status: "completed",
});

describe("two servers on one MongoDB collection", () => {
  test("concurrent saves of many apps through both servers: every save lands once, both servers answer alike", async () => {
    const partition = "many";
    const saves = Array.from({ length: 300 }, (_, i) => step(partition, `app${i % 60}`, Math.floor(i / 60), `save ${i}`));
    await Promise.all(saves.map((save, i) => clients[i % 2]!.save(save)));

    const [first, second] = await Promise.all(clients.map((client) => client.listAppIds(partition)));
    expect(first).toHaveLength(60);
    expect(new Set(first).size).toBe(60);
    expect(second).toEqual(first);
    const [latest, latestSeen] = await Promise.all(clients.map((client) => client.load({ partitionKey: partition })));
    expect(latestSeen).toEqual(latest);
    for (const client of clients) {
      expect((await client.load({ partitionKey: partition, appId: "app7" }))?.sequenceId).toBe(4);
      expect(Buffer.from((await client.load({ partitionKey: partition, appId: "app7", sequenceId: 2 }))!.state).toString()).toBe("save 127");
    }

    const stored = await admin.db(parseMongoUrl(mongoUrl).database).collection(collection).find({ partition_key: partition }).toArray();
    expect(stored).toHaveLength(300);
    expect(new Set(stored.map((doc) => Number(doc.write_seq))).size).toBe(300);
  });
});
