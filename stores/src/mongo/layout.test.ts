/**
 * The documents and indexes as MongoDB sees them (docs/mongo.md): 64-bit numbers, the state as
 * binary with exactly the saved bytes, a write order that follows the saves, and an index for
 * every query.
 */
import { Binary, Long, MongoClient, type Db } from "mongodb";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import type { SaveInput } from "@burr-state/client/protocol";
import { defaultLimits } from "@burr-state/client/protocol";
import { openMongo, parseMongoUrl } from "./index";
import { dropStores, mongoUrl, sharedStoreUrl, uniqueCollection, withCollection } from "./testing";

const collection = uniqueCollection("layout");
let raw: MongoClient;
let db: Db;
let store: GuardedPersister;

beforeAll(async () => {
  // Longs stay Longs here, so the test sees the BSON types the store wrote.
  raw = await new MongoClient(mongoUrl, { serverSelectionTimeoutMS: 5_000, promoteLongs: false }).connect();
  db = raw.db(parseMongoUrl(mongoUrl).database);
  store = new GuardedPersister(await openMongo(withCollection(sharedStoreUrl, collection)));
  await store.initialize();
});

afterAll(async () => {
  await store?.close();
  await raw?.close();
  await dropStores([collection]);
});

const save = (appId: string, sequenceId: number, state: Buffer, position = "act"): SaveInput<Uint8Array> => ({
  partitionKey: "layout",
  appId,
  sequenceId,
  position,
  state: new Uint8Array(state),
  status: "failed",
});

describe("mongo documents and indexes", () => {
  test("a state document: its key as _id, 64-bit numbers, the exact bytes as binary", async () => {
    const bytes = Buffer.from([0x7b, 0x00, 0xff, 0xfe, 0x22, 0x7d]);
    const { createdAt } = await store.save(save("app", 2 ** 53 - 1, bytes, "p:x"));
    const doc = await db.collection(collection).findOne({ app_id: "app" });
    expect(doc).toMatchObject({
      _id: JSON.stringify(["layout", "app", 2 ** 53 - 1, "p:x"]),
      partition_key: "layout",
      app_id: "app",
      position: "p:x",
      status: "failed",
      created_at: createdAt,
    });
    expect(doc!.sequence_id).toBeInstanceOf(Long);
    expect((doc!.sequence_id as Long).toString()).toBe(String(2 ** 53 - 1));
    expect(doc!.write_seq).toBeInstanceOf(Long);
    expect(doc!.state).toBeInstanceOf(Binary);
    expect((doc!.state as Binary).sub_type).toBe(Binary.SUBTYPE_DEFAULT);
    expect(Buffer.from((doc!.state as Binary).value()).equals(bytes)).toBe(true);
  });

  test("write_seq follows the saves; an app's document holds its newest write_seq", async () => {
    for (const [appId, sequenceId] of [["a", 0], ["b", 0], ["a", 1], ["c", 0], ["a", 2]] as const) {
      await store.save(save(appId, sequenceId, Buffer.from(`${appId}${sequenceId}`)));
    }
    const states = await db.collection(collection).find({ app_id: { $in: ["a", "b", "c"] } }).sort({ write_seq: 1 }).toArray();
    expect(states.map((doc) => `${doc.app_id}${doc.sequence_id}`)).toEqual(["a0", "b0", "a1", "c0", "a2"]);
    const newestOf = (appId: string) => states.filter((doc) => doc.app_id === appId).at(-1)!.write_seq as Long;
    const apps = await db.collection(`${collection}_apps`).find({ partition_key: "layout", app_id: { $in: ["a", "b", "c"] } }).toArray();
    expect(apps).toHaveLength(3);
    for (const app of apps) {
      expect(app._id).toBe(JSON.stringify(["layout", app.app_id]));
      expect((app.last_write as Long).equals(newestOf(app.app_id as string))).toBe(true);
    }
    const counter = await db.collection<{ _id: string; value: Long }>(`${collection}_meta`).findOne({ _id: "write_seq" });
    expect(counter!.value.greaterThanOrEqual(newestOf("a"))).toBe(true);
  });

  test("Initialize creates an index for every query, and the initialized marker", async () => {
    const keys = async (name: string) => (await db.collection(name).listIndexes().toArray()).map((index) => ({ key: index.key, unique: !!index.unique }));
    expect(await keys(collection)).toEqual(
      expect.arrayContaining([
        { key: { _id: 1 }, unique: expect.anything() },
        { key: { write_seq: 1 }, unique: true },
        { key: { partition_key: 1, app_id: 1, sequence_id: -1, write_seq: -1 }, unique: false },
        { key: { partition_key: 1, write_seq: -1 }, unique: false },
      ]),
    );
    expect(await keys(`${collection}_apps`)).toEqual(expect.arrayContaining([{ key: { partition_key: 1, last_write: -1 }, unique: false }]));
    expect(await db.collection<{ _id: string }>(`${collection}_meta`).findOne({ _id: "initialized" })).not.toBeNull();
  });

  test("a document over MongoDB's 16 MiB limit is refused alone; a save beside it lands", async () => {
    // The largest state the guard accepts, with keys that JSON-escape to six bytes a character in _id.
    const escaped = "\u0001".repeat(1024);
    const [big, beside] = await Promise.allSettled([
      store.save({ partitionKey: escaped, appId: escaped, sequenceId: 0, position: escaped, state: new Uint8Array(defaultLimits.maxStateBytes), status: "completed" }),
      store.save(save("beside", 0, Buffer.from("{}"))),
    ]);
    expect(big.status === "rejected" && { code: (big.reason as PersisterError).code, message: (big.reason as PersisterError).message }).toMatchObject({
      code: Code.RESOURCE_EXHAUSTED,
      message: expect.stringMatching(/16777216/),
    });
    expect(beside.status).toBe("fulfilled");
    expect((await store.load({ partitionKey: "layout", appId: "beside" }))?.sequenceId).toBe(0);
  });
});
