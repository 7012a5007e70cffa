/**
 * The documents and indexes as MongoDB sees them (docs/mongo.md): 64-bit numbers, the state as
 * binary with exactly the saved bytes, a write order that follows the saves, and an index for
 * every query.
 */
import { Binary, Long, MongoClient, type CommandStartedEvent, type Db, type Document } from "mongodb";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import type { SaveInput } from "@burr-state/client/protocol";
import { defaultLimits } from "@burr-state/client/protocol";
import { MongoBackend, mongoClientOptions, openMongo, parseMongoUrl } from "./index";
import { dropStores, mongoUrl, sharedStoreUrl, uniqueCollection, withCollection } from "./testing";

const collection = uniqueCollection("layout");
const historyCollection = uniqueCollection("history");
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
  await dropStores([collection, historyCollection]);
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
        { key: { partition_key: 1, app_id: 1, sequence_id: -1, write_seq: -1 }, unique: false },
        { key: { partition_key: 1, write_seq: -1 }, unique: true },
      ]),
    );
    // Every unique index but _id starts with partition_key, the shard key of a sharded collection.
    expect((await keys(collection)).filter((index) => index.unique && !("_id" in index.key)).map((index) => Object.keys(index.key)[0])).toEqual(["partition_key"]);
    expect(await keys(`${collection}_apps`)).toEqual(expect.arrayContaining([{ key: { partition_key: 1, last_write: -1 }, unique: false }]));
    expect(await db.collection<{ _id: string }>(`${collection}_meta`).findOne({ _id: "initialized" })).not.toBeNull();
  });

  test("Initialize upgrades a collection made by 0.2.0 (store-wide unique write_seq) to the per-partition unique index", async () => {
    const legacy = uniqueCollection("legacy");
    try {
      const states = db.collection(legacy);
      await states.createIndex({ write_seq: 1 }, { name: "write_seq", unique: true });
      await states.createIndex({ partition_key: 1, write_seq: -1 }, { name: "partition_recent" });
      await states.insertOne({ _id: JSON.stringify(["p", "old", 0, "start"]) as never, partition_key: "p", app_id: "old", sequence_id: Long.fromNumber(0), position: "start", state: new Binary(Buffer.from("{}")), status: "completed", created_at: new Date(), write_seq: Long.fromNumber(7) });
      await db.collection(`${legacy}_meta`).insertMany([{ _id: "write_seq" as never, value: Long.fromNumber(7) }, { _id: "initialized" as never, created_at: new Date() }]);
      const upgraded = new GuardedPersister(await openMongo(withCollection(sharedStoreUrl, legacy)));
      try {
        await upgraded.initialize();
        await upgraded.initialize(); // a second server's Initialize finds the old indexes gone
        const names = (await states.listIndexes().toArray()).map((index) => index.name as string).sort();
        expect(names).toEqual(["_id_", "app_steps", "partition_order"]);
        expect((await upgraded.load({ partitionKey: "p", appId: "old" }))?.sequenceId).toBe(0);
        await upgraded.save({ partitionKey: "p", appId: "new", sequenceId: 0, position: "start", state: new Uint8Array(2), status: "completed" });
        expect((await upgraded.load({ partitionKey: "p" }))?.appId).toBe("new");
      } finally {
        await upgraded.close();
      }
    } finally {
      await dropStores([legacy]);
    }
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

/** A store whose driver reports every command it sends, on a collection of its own. */
async function monitoredStore(name: string): Promise<{ backend: MongoBackend; store: GuardedPersister; commands: CommandStartedEvent[] }> {
  const options = parseMongoUrl(withCollection(sharedStoreUrl, name));
  const client = new MongoClient(options.driverUrl, { ...mongoClientOptions(options.driverUrl), monitorCommands: true });
  const commands: CommandStartedEvent[] = [];
  client.on("commandStarted", (event) => commands.push(event));
  const backend = new MongoBackend(client, options);
  const store = new GuardedPersister(backend);
  await store.initialize();
  return { backend, store, commands };
}

type IndexKey = Record<string, 1 | -1>;

/**
 * The index that serves a query, by the rules MongoDB's planner follows for a plan without a
 * blocking sort or a collection scan: the filter's equality (and $in) fields are the index's
 * first fields, the sort (less the fields bound by an equality) follows on the next ones (all in
 * the index's directions or all reversed),
 * and the fields of ranges and $or clauses are in the index. null if none does.
 */
function servingIndex(filter: Document, sort: Document, indexes: Array<{ name: string; key: IndexKey }>): string | null {
  const isOperator = (value: unknown) => value !== null && typeof value === "object" && !Array.isArray(value) && !(value instanceof Long);
  const points = Object.entries(filter).filter(([field, value]) => !field.startsWith("$") && (!isOperator(value) || "$in" in (value as Document)));
  const ranges = Object.entries(filter).filter(([field, value]) => !field.startsWith("$") && isOperator(value) && !("$in" in (value as Document)));
  const orFields = ((filter.$or as Document[] | undefined) ?? []).flatMap((clause) => Object.keys(clause));
  // A sort field bound by an equality orders nothing.
  const sortFields = Object.entries(sort).filter(([field]) => !points.some(([point]) => point === field));
  for (const { name, key } of indexes) {
    const fields = Object.entries(key);
    const prefix = new Set(fields.slice(0, points.length).map(([field]) => field));
    if (!points.every(([field]) => prefix.has(field))) continue;
    const rest = fields.slice(points.length).filter(([field]) => !(field in filter) || ranges.some(([range]) => range === field));
    const sortable =
      sortFields.length === 0 ||
      [1, -1].some((flip) => sortFields.every(([field, direction], i) => rest[i]?.[0] === field && rest[i]![1] * flip === direction));
    const covered = [...ranges.map(([field]) => field), ...orFields].every((field) => field in key);
    if (sortable && covered) return name;
  }
  return null;
}

/** A sort as a plain object (the driver sends it as a Map, which keeps the order of its fields). */
const sortOf = (sort: unknown): Document => (sort instanceof Map ? Object.fromEntries(sort) : ((sort as Document | undefined) ?? {}));

/** The filter and sort of every query a command runs, with the collection it names. */
function queriesOf(event: CommandStartedEvent): Array<{ collection: string; filter: Document; sort: Document; what: string }> {
  const command = event.command;
  switch (event.commandName) {
    case "find":
      return [{ collection: command.find, filter: command.filter ?? {}, sort: sortOf(command.sort), what: "find" }];
    case "distinct":
      return [{ collection: command.distinct, filter: command.query ?? {}, sort: {}, what: "distinct" }];
    case "delete":
      return (command.deletes as Document[]).map((op) => ({ collection: command.delete, filter: op.q, sort: {}, what: "delete" }));
    case "update":
      return (command.updates as Document[]).map((op) => ({ collection: command.update, filter: op.q, sort: {}, what: "update" }));
    case "findAndModify":
      return [{ collection: command.findAndModify, filter: command.query, sort: sortOf(command.sort), what: "findAndModify" }];
    default:
      return [];
  }
}

describe("mongo history, deletes and retention", () => {
  test("every query of ListSteps, the deletes and Prune is served by an index (equalities, then the sort), deletes go by _id in batches", async () => {
    const { backend, store, commands } = await monitoredStore(historyCollection);
    try {
      for (let i = 0; i < 5; i++) await store.save(save("a", i, Buffer.from(`a${i}`)));
      await store.save(save("a", 2, Buffer.from("a2 again"), "again"));
      for (let i = 0; i < 3; i++) await store.save(save("b", i, Buffer.from(`b${i}`)));
      await store.save({ ...save("c", 0, Buffer.from("c0")), partitionKey: "other" });
      commands.length = 0;

      const pages: string[][] = [];
      const key = { partitionKey: "layout", appId: "a", beforeSequenceId: null, limit: null, includeState: false };
      for await (const page of backend.stepPages(key, 2)) pages.push(page.map((row) => `${row.sequenceId}:${row.position}`));
      expect(pages).toEqual([["4:act", "3:act"], ["2:again", "2:act"], ["1:act", "0:act"]]);
      for await (const page of backend.stepPages({ ...key, beforeSequenceId: 3, limit: 2, includeState: true }, 10)) {
        expect(page.map((row) => Buffer.from(row.state).toString())).toEqual(["a2 again", "a2"]);
      }
      expect(await backend.prune({ partitionKey: "layout", appId: "a", keepLast: 3, olderThan: null }, 1000)).toBe(3);
      expect(await backend.prune({ partitionKey: null, appId: null, keepLast: null, olderThan: new Date(Date.now() + 60_000) }, 1000)).toBe(4);
      expect(await backend.deleteApp("layout", "a", 2)).toBe(1);
      await store.save(save("b", 3, Buffer.from("b3")));
      await store.save(save("d", 0, Buffer.from("d0")));
      expect(await backend.deletePartition("layout", 2)).toEqual({ stepsDeleted: 3, appsDeleted: 2 });
      expect(await store.listAppIds("layout")).toEqual([]);
      expect(await store.listAppIds("other")).toEqual(["c"]);

      const indexes = async (name: string) => (await db.collection(name).listIndexes().toArray()).map((index) => ({ name: index.name as string, key: index.key as IndexKey }));
      const served = { [historyCollection]: await indexes(historyCollection), [`${historyCollection}_apps`]: await indexes(`${historyCollection}_apps`) };
      const queries = commands.flatMap(queriesOf).filter((query) => query.collection in served);
      expect(queries.length).toBeGreaterThan(10);
      const plans = queries.map((query) => ({ ...query, index: servingIndex(query.filter, query.sort, served[query.collection]!) }));
      expect(plans.some((plan) => plan.what === "distinct")).toBe(true);
      expect(plans.filter((plan) => plan.index === null)).toEqual([]);
      // Deletes of states name their _ids, at most a batch of them.
      const stateDeletes = plans.filter((plan) => plan.what === "delete" && plan.collection === historyCollection);
      expect(stateDeletes.length).toBeGreaterThan(0);
      for (const plan of stateDeletes) expect(Object.keys(plan.filter)).toEqual(["_id"]);
    } finally {
      await store.close();
    }
  });

  test("a save whose state a DeleteApp took before the save wrote its app entry leaves the app unlisted (upsert and step-0 insert)", async () => {
    const { backend, store } = await monitoredStore(historyCollection);
    // The collections the store writes through, to run the delete between the save's two writes.
    const apps = (backend as unknown as { apps: { bulkWrite: (...args: unknown[]) => Promise<unknown>; insertMany: (...args: unknown[]) => Promise<unknown> } }).apps;
    const deleteBefore = (method: "bulkWrite" | "insertMany", appId: string) => {
      const original = apps[method];
      apps[method] = async (...args: unknown[]) => {
        apps[method] = original;
        expect(await backend.deleteApp("race", appId, 1000)).toBeGreaterThan(0);
        return original.apply(apps, args);
      };
    };
    try {
      const row = (appId: string, sequenceId: number) => ({ ...save(appId, sequenceId, Buffer.from("{}")), partitionKey: "race" });
      for (let i = 0; i < 3; i++) await store.save(row("moved", i));
      deleteBefore("bulkWrite", "moved");
      await store.save(row("moved", 3)); // answered OK: stored, then deleted with its app
      deleteBefore("insertMany", "fresh");
      await store.save(row("fresh", 0));
      expect(await store.listAppIds("race")).toEqual([]);
      expect(await store.load({ partitionKey: "race" })).toBeNull();
      expect(await db.collection(`${historyCollection}_apps`).countDocuments({ partition_key: "race" })).toBe(0);
      // Both can be saved again, and are listed.
      await store.save(row("moved", 3));
      await store.save(row("fresh", 0));
      expect((await store.listAppIds("race")).sort()).toEqual(["fresh", "moved"]);
    } finally {
      await store.close();
    }
  });

  test("a save landing between a delete's check and its removal of the app entry gets the entry back", async () => {
    const { backend, store } = await monitoredStore(historyCollection);
    const apps = (backend as unknown as { apps: { deleteMany: (...args: unknown[]) => Promise<unknown> } }).apps;
    try {
      const row = (sequenceId: number) => ({ ...save("app", sequenceId, Buffer.from("{}")), partitionKey: "late" });
      for (let i = 0; i < 3; i++) await store.save(row(i));
      const original = apps.deleteMany;
      apps.deleteMany = async (...args: unknown[]) => {
        apps.deleteMany = original;
        // The delete found no state: now a save lands entirely (state, then its entry) before the removal.
        await store.save(row(7));
        return original.apply(apps, args);
      };
      expect(await backend.deleteApp("late", "app", 1000)).toBe(3);
      expect(await store.listAppIds("late")).toEqual(["app"]);
      expect((await store.load({ partitionKey: "late" }))?.sequenceId).toBe(7);
    } finally {
      await store.close();
    }
  });
});
