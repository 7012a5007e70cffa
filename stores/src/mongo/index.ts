/**
 * MongoDB store through the official driver (FerretDB 1.x serves the same protocol in tests).
 *
 * `<collection>` holds one document per saved state, its _id the JSON of its four keys: the
 * key's uniqueness is the _id index, and telling a duplicate save from another duplicate key is
 * an _id lookup. `<collection>_apps` keeps each app's latest write, so listing a partition's
 * apps most recent first reads an index. `<collection>_meta` holds the write-order counter and
 * the "initialized" marker.
 *
 * `write_seq` is the store's write order: an atomic $inc on the counter reserves a block for
 * each group of concurrent saves. It is also unique within a partition by index (the unique
 * index a sharded collection allows: it starts with the shard key), so a server whose findAndModify
 * is not atomic (FerretDB 1.x) still never gives two states of a partition the same place: the
 * loser retries.
 *
 * No transactions (FerretDB has none): a save inserts the state first (the truth), then moves
 * its app up in `_apps`. A crash between the two leaves the app listed late (or, after its
 * first save, not yet), never a half-written state.
 *
 * Deletes remove states by _id in batches (one deleteMany each), then an app's `_apps` entry
 * only once no state of it is left, and check again after removing it (a save that landed in
 * between gets its entry back). A save whose `_apps` write created the entry checks that its
 * state is still there (a delete may have taken it between the two writes) and otherwise runs
 * the same removal. So neither order of a save's two writes and a delete's leaves a listed app
 * without states or a state of an unlisted app (README.md, "Deletes and saves").
 */
import {
  Binary,
  BSON,
  Long,
  MongoBulkWriteError,
  MongoClient,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  type Collection,
  type Db,
  type Document,
  type Filter,
  type MongoClientOptions,
  type OptionalUnlessRequiredId,
  type Sort,
} from "mongodb";
import type { Backend, HistoryBackend, StoredRow } from "../backend";
import { Code, duplicate, PersisterError, unavailable } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";
import { checkIdentifier } from "../shared/identifiers";
import { decodeUrlPart } from "../shared/url";

export interface MongoOptions {
  /** The connection string handed to the driver (our own parameters removed). */
  driverUrl: string;
  database: string;
  collection: string;
}

const databaseName = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * `mongodb://host:port/db?collection=burr_state&...`: the database comes from the path
 * (default "burr"), `collection` is ours and is removed before the driver sees the URL.
 */
export function parseMongoUrl(url: string): MongoOptions {
  const queryStart = url.indexOf("?");
  const base = queryStart < 0 ? url : url.slice(0, queryStart);
  const driverParams: string[] = [];
  let collection = "burr_state";
  for (const param of queryStart < 0 ? [] : url.slice(queryStart + 1).split("&")) {
    const equals = param.indexOf("=");
    const [name, value] = equals < 0 ? [param, ""] : [param.slice(0, equals), param.slice(equals + 1)];
    if (decodeUrlPart("parameter name", name) === "collection") collection = decodeUrlPart("collection", value);
    else if (param !== "") driverParams.push(param);
  }
  const afterScheme = base.indexOf("://") + 3;
  const pathStart = base.indexOf("/", afterScheme);
  const database = pathStart < 0 ? "" : decodeUrlPart("database name", base.slice(pathStart + 1));
  if (database !== "" && !databaseName.test(database)) {
    throw new PersisterError(
      Code.INVALID_ARGUMENT,
      `database name ${JSON.stringify(database)} is not allowed: use letters, digits, _ and - (at most 64)`,
    );
  }
  return {
    driverUrl: driverParams.length > 0 ? `${base}?${driverParams.join("&")}` : base,
    database: database || "burr",
    collection: checkIdentifier("collection name", collection),
  };
}

/** Used unless the URL sets its own. */
const defaultDriverOptions: MongoClientOptions = {
  // Bounds on every wait, so a call against an unreachable or hung database fails fast.
  serverSelectionTimeoutMS: 3_000,
  connectTimeoutMS: 3_000,
  socketTimeoutMS: 5_000,
  waitQueueTimeoutMS: 5_000,
  // Callers retry UNAVAILABLE reads themselves; a driver retry would double the wait for an answer.
  retryReads: false,
  appName: "burr-state-persister",
};

/** The driver options: the defaults above where the URL is silent, and a fixed BSON-to-JS mapping. */
export function mongoClientOptions(driverUrl: string): MongoClientOptions {
  const query = driverUrl.includes("?") ? driverUrl.slice(driverUrl.indexOf("?") + 1).toLowerCase() : "";
  const inUrl = new Set(query.split("&").map((param) => param.split("=", 1)[0]));
  return {
    ...Object.fromEntries(Object.entries(defaultDriverOptions).filter(([name]) => !inUrl.has(name.toLowerCase()))),
    // How BSON maps to JS is this module's business, not the URL's.
    promoteLongs: true,
    promoteValues: true,
    promoteBuffers: false,
    useBigInt64: false,
  };
}

type Int64 = Long | number;
const toInt64 = (value: number) => Long.fromNumber(value);
const fromInt64 = (value: Int64) => (typeof value === "number" ? value : value.toNumber());

interface StateDocument {
  /** The JSON of [partition_key, app_id, sequence_id, position]: the key's uniqueness is the _id index. */
  _id: string;
  partition_key: string;
  app_id: string;
  sequence_id: Int64;
  position: string;
  state: Binary;
  status: Status;
  created_at: Date;
  write_seq: Int64;
}

interface AppDocument {
  /** The JSON of [partition_key, app_id]. */
  _id: string;
  partition_key: string;
  app_id: string;
  last_write: Int64;
}

interface MetaDocument {
  _id: string;
  value?: Int64;
  created_at?: Date;
}

const counterId = "write_seq";
const markerId = "initialized";
const duplicateKey = 11000;

/** MongoDB's largest document (maxBsonObjectSize). */
const maxDocumentBytes = 16 * 1024 * 1024;
/** A group of concurrent saves shares one counter reservation, up to this many. */
const maxGroup = 1000;
/** Times a save may find its write_seq taken by another writer before it gives up. */
const maxCollisions = 8;
/** A page of steps with states is handed on once it holds this many bytes of them. */
const stepPageBytes = 16 * 1024 * 1024;
/**
 * Rounds of "remove the app entry, check, put it back" before a delete leaves an app to the
 * writers racing it (each round is a save landing exactly between two of the delete's calls).
 */
const maxSettleRounds = 8;
/** The app_steps index's order: each app's steps together, newest first. */
const appStepsOrder: Sort = { partition_key: 1, app_id: 1, sequence_id: -1, write_seq: -1 };

/** Server answers that mean "not reachable or not serving right now", not "your request is wrong". */
const unavailableServerCodes = new Set([
  6, // HostUnreachable
  7, // HostNotFound
  89, // NetworkTimeout
  91, // ShutdownInProgress
  189, // PrimarySteppedDown
  262, // ExceededTimeLimit
  9001, // SocketException
  10107, // NotWritablePrimary
  11600, // InterruptedAtShutdown
  11602, // InterruptedDueToReplStateChange
  13435, // NotPrimaryNoSecondaryOk
  13436, // NotPrimaryOrSecondary
]);

function toPersisterError(error: unknown): unknown {
  if (error instanceof PersisterError) return error;
  // A bulk write that failed as a whole (not document by document) wraps the driver's error.
  if (error instanceof MongoBulkWriteError && error.errorResponse instanceof Error) return toPersisterError(error.errorResponse);
  if (
    error instanceof MongoNetworkError || // also socket timeouts and cleared pools
    error instanceof MongoServerSelectionError ||
    (error instanceof MongoServerError && typeof error.code === "number" && unavailableServerCodes.has(error.code)) ||
    (error instanceof Error && error.name === "MongoWaitQueueTimeoutError")
  ) {
    return unavailable("MongoDB", error);
  }
  return error;
}

async function mapErrors<T>(work: Promise<T>): Promise<T> {
  try {
    return await work;
  } catch (error) {
    throw toPersisterError(error);
  }
}

/** Drops an index that may be missing (IndexNotFound, NamespaceNotFound): already dropped by another server's Initialize, or never made. */
async function ignoringMissingIndex(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (error) {
    const missing = error instanceof MongoServerError && (error.code === 27 || error.code === 26 || /index not found|ns not found/i.test(error.message));
    if (!missing) throw error;
  }
}

/** Runs an upsert that a concurrent writer may have won; its document then exists, which is all we need. */
async function ignoringDuplicate(work: Promise<unknown>): Promise<void> {
  try {
    await work;
  } catch (error) {
    if (!(error instanceof MongoServerError && error.code === duplicateKey)) throw error;
  }
}

type WriteFailures = Map<number, { code: unknown; errmsg?: string }>;

const writeErrorsOf = (error: MongoBulkWriteError) => (Array.isArray(error.writeErrors) ? error.writeErrors : [error.writeErrors]);

/** The indexes of a bulk write's failed operations, if every failure is a duplicate key. */
function duplicatesOnly(error: MongoBulkWriteError): number[] | null {
  const writeErrors = writeErrorsOf(error);
  if (writeErrors.length === 0 || writeErrors.some((failure) => failure.code !== duplicateKey)) return null;
  return writeErrors.map((failure) => failure.index);
}

/** Inserts every document it can (unordered); answers which ones the server refused, by index. */
async function insertEach<T extends Document>(collection: Collection<T>, docs: OptionalUnlessRequiredId<T>[]): Promise<WriteFailures> {
  try {
    await collection.insertMany(docs, { ordered: false });
    return new Map();
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError)) throw error;
    const writeErrors = writeErrorsOf(error);
    if (writeErrors.length === 0) throw error;
    return new Map(writeErrors.map((failure) => [failure.index, { code: failure.code, errmsg: failure.errmsg }]));
  }
}

const refused = (failure: { code: unknown; errmsg?: string }) =>
  new Error(`MongoDB refused the write: ${failure.errmsg ?? `code ${String(failure.code)}`}`);

const keyOf = (row: SaveRow) => JSON.stringify([row.partitionKey, row.appId, row.sequenceId, row.position]);
const appKeyOf = (row: SaveRow) => JSON.stringify([row.partitionKey, row.appId]);

/** The state of a row listed without states. */
const emptyState = new Binary(new Uint8Array(0));

function toStoredRow(doc: StateDocument): StoredRow {
  return {
    partitionKey: doc.partition_key,
    appId: doc.app_id,
    sequenceId: fromInt64(doc.sequence_id),
    position: doc.position,
    // The driver's buffer may be larger than the value: hand out exactly the stored bytes.
    state: doc.state.buffer.subarray(0, doc.state.length()),
    status: doc.status,
    createdAt: doc.created_at,
  };
}

interface PendingSave {
  row: SaveRow;
  /** The state's document, its write_seq set when a reservation places it. */
  doc: StateDocument;
  /** How often its write_seq was already taken (only on servers without an atomic $inc). */
  collisions: number;
  resolve(createdAt: Date): void;
  reject(error: unknown): void;
}

function rejectAll(saves: PendingSave[], error: unknown): void {
  const mapped = toPersisterError(error);
  for (const save of saves) save.reject(mapped);
}

export class MongoBackend implements Backend, HistoryBackend {
  readonly kind = "mongo";
  private readonly states: Collection<StateDocument>;
  private readonly apps: Collection<AppDocument>;
  private readonly meta: Collection<MetaDocument>;
  private readonly db: Db;
  /** Saves waiting for a write_seq; one reservation is in flight at a time. */
  private waiting: PendingSave[] = [];
  private reserving = false;
  /** Deletes (DeleteApp, DeletePartition) running in this process, and how many ever started. */
  private deletesRunning = 0;
  private deletesStarted = 0;
  private connection: Promise<unknown> | null = null;

  constructor(
    private readonly client: MongoClient,
    options: Pick<MongoOptions, "database" | "collection">,
  ) {
    const db = client.db(options.database);
    this.db = db;
    this.states = db.collection(options.collection);
    this.apps = db.collection(`${options.collection}_apps`);
    this.meta = db.collection(`${options.collection}_meta`);
  }

  /**
   * Connects once. When the first connect fails the driver keeps a closed topology and every
   * later call fails too, so a failed connect is forgotten and the next call tries again.
   * Once connected, the driver finds the server again by itself after an outage.
   */
  private connect(): Promise<unknown> {
    this.connection ??= this.client.connect().catch((error: unknown) => {
      this.connection = null;
      throw toPersisterError(error);
    });
    return this.connection;
  }

  async initialize(): Promise<void> {
    await this.connect();
    await mapErrors(this.createSchema());
  }

  /**
   * Every step is idempotent and safe to run from several servers at once; the marker comes
   * last, so a store seen initialized has all its indexes. One index per command: FerretDB 1.24
   * drops the connection when one createIndexes names several indexes that already exist.
   */
  private async createSchema(): Promise<void> {
    // Stores made by 0.2.0 had a plain index on these keys (one key pattern allows one index),
    // and a store-wide unique write_seq, dropped only once the index below keeps the order unique.
    await ignoringMissingIndex(this.states.dropIndex("partition_recent"));
    // Partition-latest loads; unique, so no two states of a partition share a place in its write
    // order. Unique per partition, not store-wide: a sharded collection (shard key partition_key)
    // allows only unique indexes that start with the shard key.
    await this.states.createIndex({ partition_key: 1, write_seq: -1 }, { name: "partition_order", unique: true });
    await ignoringMissingIndex(this.states.dropIndex("write_seq"));
    // Step and app-latest loads: highest sequence id first, then the last written.
    await this.states.createIndex({ partition_key: 1, app_id: 1, sequence_id: -1, write_seq: -1 }, { name: "app_steps" });
    await this.apps.createIndex({ partition_key: 1, last_write: -1 }, { name: "partition_recent" });
    await ignoringDuplicate(this.meta.updateOne({ _id: counterId }, { $setOnInsert: { value: toInt64(0) } }, { upsert: true }));
    await ignoringDuplicate(this.meta.updateOne({ _id: markerId }, { $setOnInsert: { created_at: new Date() } }, { upsert: true }));
  }

  async isInitialized(): Promise<boolean> {
    await this.connect();
    const marker = await mapErrors(this.meta.findOne({ _id: markerId }, { projection: { _id: 1 } }));
    return marker !== null;
  }

  save(row: SaveRow): Promise<Date> {
    const doc: StateDocument = {
      _id: keyOf(row),
      partition_key: row.partitionKey,
      app_id: row.appId,
      sequence_id: toInt64(row.sequenceId),
      position: row.position,
      state: new Binary(row.state),
      status: row.status,
      created_at: row.createdAt ?? new Date(),
      write_seq: toInt64(0),
    };
    // The driver refuses a whole insertMany for one oversized document: refuse it here, alone.
    const bytes = BSON.calculateObjectSize(doc);
    if (bytes > maxDocumentBytes) {
      return Promise.reject(
        new PersisterError(Code.RESOURCE_EXHAUSTED, `the state with its keys is a ${bytes}-byte document; MongoDB's limit is ${maxDocumentBytes}`),
      );
    }
    return new Promise((resolve, reject) => this.enqueue([{ row, doc, collisions: 0, resolve, reject }]));
  }

  private enqueue(saves: PendingSave[]): void {
    this.waiting.push(...saves);
    if (!this.reserving) void this.reserveForWaiting();
  }

  /** Saves that arrive while a reservation is in flight share the next one: one $inc for many saves. */
  private async reserveForWaiting(): Promise<void> {
    this.reserving = true;
    while (this.waiting.length > 0) {
      const group = this.waiting.splice(0, maxGroup);
      try {
        await this.connect();
        const counter = await this.meta.findOneAndUpdate(
          { _id: counterId },
          { $inc: { value: toInt64(group.length) } },
          { upsert: true, returnDocument: "after" },
        );
        const first = fromInt64(counter!.value!) - group.length + 1;
        group.forEach((save, i) => (save.doc.write_seq = toInt64(first + i)));
        // Not awaited: the next group's reservation overlaps this group's writes. store() settles
        // every save itself; the catch only keeps a bug from leaving callers waiting forever.
        this.store(group).catch((error: unknown) => rejectAll(group, error));
      } catch (error) {
        rejectAll(group, error);
      }
    }
    this.reserving = false;
  }

  /** Inserts the group's states, then records their apps; settles every save, never throws. */
  private async store(group: PendingSave[]): Promise<void> {
    const running = this.deletesRunning > 0;
    const started = this.deletesStarted;
    /** Whether a delete of this process ran at any time since the states' insert began. */
    const deleteOverlapped = () => running || this.deletesRunning > 0 || this.deletesStarted !== started;
    let failures: WriteFailures;
    try {
      failures = await insertEach(this.states, group.map((save) => save.doc));
    } catch (error) {
      rejectAll(group, error);
      return;
    }
    const stored: PendingSave[] = [];
    const collided: PendingSave[] = [];
    group.forEach((save, i) => {
      const failure = failures.get(i);
      if (!failure) stored.push(save);
      else if (failure.code === duplicateKey) collided.push(save);
      else save.reject(refused(failure));
    });
    await Promise.all([this.recordApps(stored, deleteOverlapped), this.settleCollisions(collided)]);
  }

  /**
   * Moves each app of the stored states up to its newest write_seq, then answers the saves.
   * Burr's first save of an app is step 0: those apps are inserted (an upsert works too, but
   * FerretDB runs every upsert as a scan of the collection); all others are upserted.
   * An entry this creates may belong to an app a delete has just emptied, this state included
   * (recheckCreated). An upsert creates an entry only for an app that had none (deleted, or
   * its first save not at step 0): those are always checked. A step-0 insert creates one for
   * every new app: checking each would double the cost of starting an app, so those are
   * checked when a delete of this process overlapped the save; a delete on another server
   * racing an app's first save is the one case left (README.md, "Deletes and saves").
   */
  private async recordApps(stored: PendingSave[], deleteOverlapped: () => boolean): Promise<void> {
    if (stored.length === 0) return;
    const newest = new Map<string, StateDocument>();
    for (const { row, doc } of stored) {
      const id = appKeyOf(row);
      const seen = newest.get(id);
      if (!seen || fromInt64(seen.write_seq) < fromInt64(doc.write_seq)) newest.set(id, doc);
    }
    const created: AppDocument[] = [];
    const moved: AppDocument[] = [];
    for (const [_id, doc] of newest) {
      const app = { _id, partition_key: doc.partition_key, app_id: doc.app_id, last_write: doc.write_seq };
      (fromInt64(doc.sequence_id) === 0 ? created : moved).push(app);
    }
    try {
      const failures: WriteFailures = created.length > 0 ? await insertEach(this.apps, created) : new Map();
      for (const [index, failure] of failures) {
        if (failure.code !== duplicateKey) throw refused(failure);
        moved.push(created[index]!);
      }
      const upserted = await this.moveAppsUp(moved);
      const inserted = deleteOverlapped() ? created.filter((_, index) => !failures.has(index)).map((app) => app._id) : [];
      await this.recheckCreated([...upserted, ...inserted].map((id) => newest.get(id)!));
    } catch (error) {
      rejectAll(stored, error);
      return;
    }
    for (const save of stored) save.resolve(save.doc.created_at);
  }

  /**
   * Apps whose `_apps` entry a save has just created: if a delete took the save's state between
   * the state's insert and the entry's write, the entry must go again (the save's answer, OK,
   * stays true: the state was stored, and deleted with its app). One lookup by _id.
   */
  private async recheckCreated(docs: StateDocument[]): Promise<void> {
    if (docs.length === 0) return;
    const ids = docs.map((doc) => doc._id);
    const found =
      ids.length === 1
        ? await this.states.find({ _id: ids[0]! }, { projection: { _id: 1 } }).toArray()
        : await this.states.find({ _id: { $in: ids } }, { projection: { _id: 1 } }).toArray();
    const present = new Set(found.map((doc) => doc._id));
    for (const doc of docs) if (!present.has(doc._id)) await this.dropAppsIfEmpty(doc.partition_key, [doc.app_id]);
  }

  /**
   * Upserts each app's last write with $max, so a slower writer with an older write_seq never
   * moves it back. Answers the _ids of the entries it created.
   */
  private async moveAppsUp(apps: AppDocument[]): Promise<string[]> {
    const created: string[] = [];
    for (let attempt = 1; apps.length > 0; attempt++) {
      try {
        const result = await this.apps.bulkWrite(
          apps.map(({ _id, partition_key, app_id, last_write }) => ({
            updateOne: { filter: { _id }, update: { $max: { last_write }, $setOnInsert: { partition_key, app_id } }, upsert: true },
          })),
          { ordered: false },
        );
        for (const index of Object.keys(result.upsertedIds ?? {})) created.push(apps[Number(index)]!._id);
        return created;
      } catch (error) {
        // Another writer created one of these apps first (MongoDB retries that itself, FerretDB does not): go again.
        const lost = error instanceof MongoBulkWriteError && attempt < 3 ? duplicatesOnly(error) : null;
        if (!lost) throw error;
        const failed = new Set(lost);
        if (error instanceof MongoBulkWriteError) {
          for (const index of Object.keys(error.result?.upsertedIds ?? {})) if (!failed.has(Number(index))) created.push(apps[Number(index)]!._id);
        }
        apps = lost.map((index) => apps[index]!);
      }
    }
    return created;
  }

  /**
   * A duplicate key is either the save's own key (ALREADY_EXISTS) or a write_seq that another
   * writer took (retried with a new one). A key not found now was deleted since the insert
   * failed: the retry then lands after that delete, as a save racing it may.
   */
  private async settleCollisions(collided: PendingSave[]): Promise<void> {
    if (collided.length === 0) return;
    // One lookup per key: racing saves of one key collide together.
    const keys = [...new Set(collided.map(({ doc }) => doc._id))];
    const taken = new Set<string>();
    try {
      await Promise.all(
        keys.map(async (key) => {
          if (await this.states.findOne({ _id: key }, { projection: { _id: 1 } })) taken.add(key);
        }),
      );
    } catch (error) {
      rejectAll(collided, error);
      return;
    }
    const retry: PendingSave[] = [];
    collided.forEach((save) => {
      if (taken.has(save.doc._id)) save.reject(duplicate(save.row));
      else if (++save.collisions > maxCollisions) save.reject(unavailable("MongoDB", "no free write_seq after repeated collisions"));
      else retry.push(save);
    });
    if (retry.length === 0) return;
    try {
      await this.advanceCounter(retry);
    } catch (error) {
      rejectAll(retry, error);
      return;
    }
    this.enqueue(retry);
  }

  /**
   * Moves the counter past every write_seq stored in the partitions of `saves` (it fell behind:
   * a non-atomic $inc lost updates). Write order only has to be unique within a partition.
   */
  private async advanceCounter(saves: PendingSave[]): Promise<void> {
    const partitions = [...new Set(saves.map(({ doc }) => doc.partition_key))];
    const newest = await Promise.all(
      partitions.map((partitionKey) => this.states.findOne({ partition_key: partitionKey }, { sort: { write_seq: -1 }, projection: { _id: 0, write_seq: 1 } })),
    );
    const highest = Math.max(0, ...newest.map((doc) => (doc ? fromInt64(doc.write_seq) : 0)));
    if (highest > 0) await this.meta.updateOne({ _id: counterId }, { $max: { value: toInt64(highest) } });
  }

  async load(key: LoadKey): Promise<StoredRow | null> {
    let filter: Filter<StateDocument>;
    let sort: Sort;
    switch (key.kind) {
      case "step":
        filter = { partition_key: key.partitionKey, app_id: key.appId, sequence_id: toInt64(key.sequenceId) };
        sort = { write_seq: -1 };
        break;
      case "app-latest":
        filter = { partition_key: key.partitionKey, app_id: key.appId };
        sort = { sequence_id: -1, write_seq: -1 };
        break;
      case "partition-latest":
        filter = { partition_key: key.partitionKey };
        sort = { write_seq: -1 };
        break;
    }
    await this.connect();
    const doc = (key.kind === "partition-latest" && (await this.listedLatest(key.partitionKey))) || (await mapErrors(this.states.findOne(filter, { sort, projection: { _id: 0 } })));
    return doc && toStoredRow(doc);
  }

  /**
   * The partition's latest as ListAppIds orders it: the state of the first app's last write (a
   * point lookup, write_seq is unique). Where updates read, then write the whole document
   * (FerretDB 1.x), saves of one app racing on two servers can leave its entry below its newest
   * write; reading the latest from the entries keeps it the listing's first app all the same.
   * Null when that state is gone (pruned, or being deleted): the states' own order decides then.
   */
  private async listedLatest(partitionKey: string): Promise<StateDocument | null> {
    const first = await mapErrors(this.apps.findOne({ partition_key: partitionKey }, { sort: { last_write: -1 }, projection: { _id: 0, last_write: 1 } }));
    if (!first) return null;
    return mapErrors(this.states.findOne({ partition_key: partitionKey, write_seq: first.last_write }, { projection: { _id: 0 } }));
  }

  async *appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]> {
    await this.connect();
    const cursor = this.apps.find(
      { partition_key: partitionKey },
      { sort: { last_write: -1 }, projection: { _id: 0, app_id: 1 }, batchSize: pageSize },
    );
    try {
      let page: string[] = [];
      for (let doc = await mapErrors(cursor.next()); doc !== null; doc = await mapErrors(cursor.next())) {
        page.push(doc.app_id);
        if (page.length === pageSize) {
          yield page;
          page = [];
        }
      }
      if (page.length > 0) yield page;
    } finally {
      // Closing fails when the connection is gone; the error that matters was already thrown.
      await cursor.close().catch(() => {});
    }
  }

  /**
   * Keyset pages through the app_steps index: each page is one query starting right after the
   * last step of the page before (its sequence_id and write_seq), so saves and deletes meanwhile
   * never shift a page. Without includeState the state is projected out on the server.
   */
  async *stepPages(key: StepsKey, pageSize: number): AsyncIterable<StoredRow[]> {
    await this.connect();
    const app = { partition_key: key.partitionKey, app_id: key.appId };
    const projection = key.includeState ? { _id: 0 } : { _id: 0, state: 0 };
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    let after: { sequence: Int64; write: Int64 } | null = null;
    while (left > 0) {
      const count = Math.min(pageSize, left);
      const filter: Filter<StateDocument> =
        after !== null
          ? { ...app, sequence_id: { $lte: after.sequence }, $or: [{ sequence_id: { $lt: after.sequence } }, { write_seq: { $lt: after.write } }] }
          : key.beforeSequenceId !== null
            ? { ...app, sequence_id: { $lt: toInt64(key.beforeSequenceId) } }
            : app;
      const cursor = this.states.find(filter, { sort: { sequence_id: -1, write_seq: -1 }, projection, limit: count, batchSize: count });
      let seen = 0;
      try {
        let page: StoredRow[] = [];
        let bytes = 0;
        for (let doc = await mapErrors(cursor.next()); doc !== null; doc = await mapErrors(cursor.next())) {
          seen++;
          after = { sequence: toInt64(fromInt64(doc.sequence_id)), write: toInt64(fromInt64(doc.write_seq)) };
          const row = toStoredRow(doc.state ? doc : { ...doc, state: emptyState });
          page.push(row);
          bytes += row.state.byteLength;
          if (bytes >= stepPageBytes) {
            yield page;
            page = [];
            bytes = 0;
          }
        }
        if (page.length > 0) yield page;
      } finally {
        await cursor.close().catch(() => {});
      }
      left -= seen;
      if (seen < count) return;
    }
  }

  /**
   * Deletes the states matching the filter, reading their _ids through one cursor (batch size
   * = batchSize) and removing each batch with one deleteMany by _id. States saved after the
   * cursor passed their place may stay: those saves landed after the delete.
   */
  private async deleteStates(filter: Filter<StateDocument>, batchSize: number, keep?: (doc: StateDocument) => boolean, sort?: Sort): Promise<number> {
    const cursor = this.states.find(filter, {
      projection: keep ? { _id: 1, partition_key: 1, app_id: 1, created_at: 1 } : { _id: 1 },
      batchSize,
      ...(sort ? { sort } : {}),
    });
    let deleted = 0;
    let batch: string[] = [];
    const flush = async () => {
      const ids = batch;
      batch = [];
      if (ids.length > 0) deleted += (await mapErrors(this.states.deleteMany({ _id: { $in: ids } }))).deletedCount;
    };
    try {
      for (let doc = await mapErrors(cursor.next()); doc !== null; doc = await mapErrors(cursor.next())) {
        if (keep?.(doc)) continue;
        batch.push(doc._id);
        if (batch.length >= batchSize) await flush();
      }
      await flush();
    } finally {
      await cursor.close().catch(() => {});
    }
    return deleted;
  }

  /** The app ids (of those given) that have a state in the partition. */
  private async appsWithStates(partitionKey: string, appIds: string[]): Promise<Set<string>> {
    if (appIds.length === 1) {
      const doc = await mapErrors(this.states.findOne({ partition_key: partitionKey, app_id: appIds[0]! }, { projection: { _id: 0, app_id: 1 } }));
      return new Set(doc ? [doc.app_id] : []);
    }
    return new Set(await mapErrors(this.states.distinct("app_id", { partition_key: partitionKey, app_id: { $in: appIds } })));
  }

  /**
   * Removes the `_apps` entries of the apps that have no state left, then checks those apps
   * again: a save that landed meanwhile (its state after our check, its entry before our
   * removal) gets its entry back. Answers how many entries it removed.
   */
  private async dropAppsIfEmpty(partitionKey: string, appIds: string[]): Promise<number> {
    let removed = 0;
    let pending = appIds;
    for (let round = 0; round < maxSettleRounds && pending.length > 0; round++) {
      const busy = await this.appsWithStates(partitionKey, pending);
      const empty = pending.filter((appId) => !busy.has(appId));
      if (empty.length === 0) break;
      const ids = empty.map((appId) => JSON.stringify([partitionKey, appId]));
      removed += (await mapErrors(this.apps.deleteMany({ _id: { $in: ids } }))).deletedCount;
      const late = await this.appsWithStates(partitionKey, empty);
      if (late.size === 0) break;
      const restored: AppDocument[] = [];
      for (const appId of late) {
        // The app's latest step (app_steps index); its save moves the entry further up with $max
        // if it writes the entry after this.
        const newest = await mapErrors(
          this.states.findOne({ partition_key: partitionKey, app_id: appId }, { sort: { sequence_id: -1, write_seq: -1 }, projection: { _id: 0, write_seq: 1 } }),
        );
        if (newest) restored.push({ _id: JSON.stringify([partitionKey, appId]), partition_key: partitionKey, app_id: appId, last_write: newest.write_seq });
      }
      await mapErrors(this.moveAppsUp(restored));
      removed = Math.max(0, removed - restored.length);
      // Their states may be gone again by now (another delete): the next round looks.
      pending = restored.map((app) => app.app_id);
    }
    return removed;
  }

  /** Runs a delete, known to this process's saves while it runs (recordApps). */
  private async deleting<T>(work: () => Promise<T>): Promise<T> {
    this.deletesRunning++;
    this.deletesStarted++;
    try {
      await this.connect();
      return await work();
    } finally {
      this.deletesRunning--;
    }
  }

  deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number> {
    return this.deleting(async () => {
      const deleted = await this.deleteStates({ partition_key: partitionKey, app_id: appId }, batchSize);
      await this.dropAppsIfEmpty(partitionKey, [appId]);
      return deleted;
    });
  }

  deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    return this.deleting(() => this.deletePartitionNow(partitionKey, batchSize));
  }

  private async deletePartitionNow(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    const stepsDeleted = await this.deleteStates({ partition_key: partitionKey }, batchSize);
    let appsDeleted = 0;
    const cursor = this.apps.find({ partition_key: partitionKey }, { projection: { _id: 0, app_id: 1 }, batchSize });
    try {
      let batch: string[] = [];
      for (let doc = await mapErrors(cursor.next()); doc !== null; doc = await mapErrors(cursor.next())) {
        batch.push(doc.app_id);
        if (batch.length >= batchSize) {
          appsDeleted += await this.dropAppsIfEmpty(partitionKey, batch);
          batch = [];
        }
      }
      if (batch.length > 0) appsDeleted += await this.dropAppsIfEmpty(partitionKey, batch);
    } finally {
      await cursor.close().catch(() => {});
    }
    return { stepsDeleted, appsDeleted };
  }

  /**
   * One cursor over the app_steps index in its own order (each app's steps together, newest
   * first), for one app, one partition or the whole collection: the first max(keepLast, 1) steps
   * of each app are kept, so its highest step always is, and of the rest those created before
   * olderThan (all of them without that rule) are deleted in batches by _id. Apps stay listed:
   * each keeps at least its highest step.
   */
  async prune(rule: PruneRule, batchSize: number): Promise<number> {
    await this.connect();
    const keep = Math.max(rule.keepLast ?? 1, 1);
    const cut = rule.olderThan;
    const filter: Filter<StateDocument> =
      rule.partitionKey === null ? {} : rule.appId === null ? { partition_key: rule.partitionKey } : { partition_key: rule.partitionKey, app_id: rule.appId };
    let current: { partition: string; app: string } | null = null;
    let rank = 0;
    return this.deleteStates(
      filter,
      batchSize,
      (doc) => {
        if (current === null || current.partition !== doc.partition_key || current.app !== doc.app_id) {
          current = { partition: doc.partition_key, app: doc.app_id };
          rank = 0;
        }
        return rank++ < keep || (cut !== null && !(doc.created_at < cut));
      },
      appStepsOrder,
    );
  }

  /** The ping command (after connecting): fails after server selection (3 s) while no server answers. */
  async probe(): Promise<void> {
    try {
      await this.connect();
      await mapErrors(this.db.command({ ping: 1 }));
    } catch (error) {
      if (error instanceof PersisterError && error.code === Code.UNAVAILABLE) throw error;
      throw unavailable("MongoDB", error);
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

/** Connects lazily: the server starts even while MongoDB is down and answers UNAVAILABLE until it is back. */
export async function openMongo(url: string): Promise<Backend> {
  const options = parseMongoUrl(url);
  return new MongoBackend(new MongoClient(options.driverUrl, mongoClientOptions(options.driverUrl)), options);
}
