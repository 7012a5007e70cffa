/**
 * The database ceilings: the same operations done directly with the same driver, one database
 * operation per call and nothing shared between concurrent calls (no coalescing), the way
 * Burr's own in-process persisters do them. Each uses the layout of Burr's persister for that
 * database (one row or document per state keyed by partition, app, step and position), plus an
 * index wherever Burr's layout would scan, so that every read is an index search.
 *
 *   SQLite      better-sqlite3, one INSERT committed alone, the store's journal and synchronous settings
 *   PostgreSQL  pg Pool, one INSERT (autocommit) per call
 *   Redis       ioredis, HSET of the state's hash then ZADD of the app (Burr's RedisPersister)
 *   MongoDB     insertOne per call, findOne for loads (Burr's MongoDBPersister)
 */
import Database from "better-sqlite3";
import { Redis } from "ioredis";
import { Binary, MongoClient } from "mongodb";
import { Pool } from "pg";
import type { LoadQuery, PersistedState, SaveInput, Status } from "../../client/src/persister";
import { saveAll, type Surface } from "./workload";

export type BackendName = "sqlite" | "postgres" | "redis" | "mongo";

/** Where a ceiling keeps its data: a database URL whose query names the bench's namespace. */
export interface CeilingSpec {
  backend: BackendName;
  url: string;
}

export interface CeilingStore extends Surface {
  /** Creates the table (or indexes) the ceiling reads and writes. */
  setup(): Promise<void>;
  /** Loads the fixture as fast as the database allows (not measured). */
  preload(rows: Iterable<SaveInput<Uint8Array>>): Promise<void>;
}

const table = "burr_ceiling";

/** The same bound the bench's gRPC calls have (the client's default deadline), so a slow database ends a row instead of stalling the run. */
const callTimeoutMs = 10_000;

interface SqlRow {
  partition_key: string;
  app_id: string;
  sequence_id: number | string;
  position: string;
  state: Buffer;
  status: string;
  created_at: number | Date;
}

const persisted = (row: SqlRow | undefined | null): PersistedState<Uint8Array> | null =>
  row
    ? {
        partitionKey: row.partition_key,
        appId: row.app_id,
        sequenceId: Number(row.sequence_id),
        position: row.position,
        state: row.state,
        status: row.status as Status,
        createdAt: new Date(row.created_at),
      }
    : null;

const columns = "partition_key, app_id, sequence_id, position, state, status, created_at";

export async function openCeiling(spec: CeilingSpec): Promise<CeilingStore> {
  switch (spec.backend) {
    case "sqlite":
      return sqliteCeiling(spec.url);
    case "postgres":
      return postgresCeiling(spec.url);
    case "redis":
      return redisCeiling(spec.url);
    case "mongo":
      return mongoCeiling(spec.url);
  }
}

/** `sqlite:PATH?synchronous=full|normal` */
function sqliteCeiling(url: string): CeilingStore {
  const [path, query = ""] = url.replace(/^sqlite:/, "").split("?", 2);
  const synchronous = new URLSearchParams(query).get("synchronous") === "normal" ? "NORMAL" : "FULL";
  const db = new Database(path);
  db.pragma("journal_mode = WAL");
  db.pragma(`synchronous = ${synchronous}`);
  db.pragma("busy_timeout = 5000");
  let statements: ReturnType<typeof prepare> | null = null;
  const prepare = () => ({
    insert: db.prepare(`INSERT INTO ${table} (${columns}) VALUES (?, ?, ?, ?, ?, ?, ?)`),
    latest: db.prepare(`SELECT ${columns} FROM ${table} WHERE partition_key = ? AND app_id = ? ORDER BY sequence_id DESC LIMIT 1`),
    step: db.prepare(`SELECT ${columns} FROM ${table} WHERE partition_key = ? AND app_id = ? AND sequence_id = ? LIMIT 1`),
    partitionLatest: db.prepare(`SELECT ${columns} FROM ${table} WHERE partition_key = ? ORDER BY created_at DESC LIMIT 1`),
    list: db.prepare(`SELECT app_id FROM ${table} WHERE partition_key = ? GROUP BY app_id ORDER BY max(created_at) DESC`).pluck(),
  });
  const sql = () => (statements ??= prepare());
  const insert = (input: SaveInput<Uint8Array>) =>
    sql().insert.run(input.partitionKey ?? "", input.appId, input.sequenceId, input.position, input.state, input.status, Date.now());
  return {
    setup: async () => {
      db.exec(`
        CREATE TABLE IF NOT EXISTS ${table} (
          partition_key TEXT NOT NULL, app_id TEXT NOT NULL, sequence_id INTEGER NOT NULL, position TEXT NOT NULL,
          status TEXT NOT NULL, state BLOB NOT NULL, created_at INTEGER NOT NULL,
          PRIMARY KEY (partition_key, app_id, sequence_id, position));
        CREATE INDEX IF NOT EXISTS ${table}_recent ON ${table} (partition_key, created_at);`);
    },
    preload: async (rows) => db.transaction(() => [...rows].forEach(insert))(),
    save: async (input) => insert(input),
    load: async (query: LoadQuery) => {
      const partition = query.partitionKey ?? "";
      if (!query.appId) return persisted(sql().partitionLatest.get(partition) as SqlRow | undefined);
      if (query.sequenceId === undefined || query.sequenceId === null) return persisted(sql().latest.get(partition, query.appId) as SqlRow | undefined);
      return persisted(sql().step.get(partition, query.appId, query.sequenceId) as SqlRow | undefined);
    },
    listAppIds: async (partitionKey) => sql().list.all(partitionKey) as string[],
    close: async () => {
      db.close();
    },
  };
}

/** `postgres://...?schema=NAME&pool=N` */
function postgresCeiling(url: string): CeilingStore {
  const parsed = new URL(url);
  const schema = parsed.searchParams.get("schema") ?? "public";
  const poolSize = Number(parsed.searchParams.get("pool") ?? 10);
  parsed.searchParams.delete("schema");
  parsed.searchParams.delete("pool");
  const pool = new Pool({ connectionString: parsed.toString(), max: poolSize, connectionTimeoutMillis: 5000, query_timeout: callTimeoutMs });
  pool.on("error", () => {});
  const t = `"${schema}".${table}`;
  const statement = (name: string, text: string) => ({ name: `ceiling_${name}`, text });
  const sql = {
    insert: statement("insert", `INSERT INTO ${t} (partition_key, app_id, sequence_id, position, state, status) VALUES ($1, $2, $3, $4, $5, $6)`),
    latest: statement("latest", `SELECT ${columns} FROM ${t} WHERE partition_key = $1 AND app_id = $2 ORDER BY sequence_id DESC LIMIT 1`),
    step: statement("step", `SELECT ${columns} FROM ${t} WHERE partition_key = $1 AND app_id = $2 AND sequence_id = $3 LIMIT 1`),
    partitionLatest: statement("partition_latest", `SELECT ${columns} FROM ${t} WHERE partition_key = $1 ORDER BY created_at DESC LIMIT 1`),
    list: statement("list", `SELECT app_id FROM ${t} WHERE partition_key = $1 GROUP BY app_id ORDER BY max(created_at) DESC`),
  };
  const one = async (query: { name: string; text: string }, values: unknown[]) => persisted((await pool.query<SqlRow>({ ...query, values })).rows[0]);
  const save = async (input: SaveInput<Uint8Array>) => {
    await pool.query({ ...sql.insert, values: [input.partitionKey ?? "", input.appId, input.sequenceId, input.position, input.state, input.status] });
  };
  return {
    setup: async () => {
      await pool.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
      await pool.query(`CREATE TABLE IF NOT EXISTS ${t} (
          partition_key text NOT NULL, app_id text NOT NULL, sequence_id bigint NOT NULL, position text NOT NULL,
          status text NOT NULL, state bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
          PRIMARY KEY (partition_key, app_id, sequence_id, position))`);
      await pool.query(`CREATE INDEX IF NOT EXISTS ${table}_recent ON ${t} (partition_key, created_at)`);
    },
    preload: async (rows) => {
      await saveAll({ save }, rows, poolSize);
      await pool.query(`ANALYZE ${t}`);
    },
    save,
    load: async (query) => {
      const partition = query.partitionKey ?? "";
      if (!query.appId) return one(sql.partitionLatest, [partition]);
      if (query.sequenceId === undefined || query.sequenceId === null) return one(sql.latest, [partition, query.appId]);
      return one(sql.step, [partition, query.appId, query.sequenceId]);
    },
    listAppIds: async (partitionKey) => (await pool.query<{ app_id: string }>({ ...sql.list, values: [partitionKey] })).rows.map((row) => row.app_id),
    close: () => pool.end(),
  };
}

/** `redis://host:port?prefix=NAME` */
function redisCeiling(url: string): CeilingStore {
  const parsed = new URL(url);
  const prefix = parsed.searchParams.get("prefix") ?? "burr-ceiling";
  parsed.search = "";
  const redis = new Redis(parsed.toString(), { connectTimeout: 5000, commandTimeout: callTimeoutMs, maxRetriesPerRequest: 1 });
  const stateKey = (partition: string, app: string, sequenceId: number | string) => `${prefix}:${partition}:${app}:${sequenceId}`;
  const appsKey = (partition: string) => `${prefix}:${partition}`;
  const read = async (key: string) => {
    const fields = await redis.hgetallBuffer(key);
    if (!fields.state) return null;
    return {
      partitionKey: fields.partition_key!.toString(),
      appId: fields.app_id!.toString(),
      sequenceId: Number(fields.sequence_id!.toString()),
      position: fields.position!.toString(),
      state: fields.state,
      status: fields.status!.toString() as Status,
      createdAt: new Date(Number(fields.created_at!.toString())),
    };
  };
  const save = async (input: SaveInput<Uint8Array>) => {
    const partition = input.partitionKey ?? "";
    await redis.hset(stateKey(partition, input.appId, input.sequenceId), {
      partition_key: partition,
      app_id: input.appId,
      sequence_id: input.sequenceId,
      position: input.position,
      state: Buffer.from(input.state.buffer, input.state.byteOffset, input.state.byteLength),
      status: input.status,
      created_at: Date.now(),
    });
    await redis.zadd(appsKey(partition), input.sequenceId, input.appId);
  };
  return {
    setup: async () => {},
    preload: (rows) => saveAll({ save }, rows, 32),
    save,
    load: async (query) => {
      const partition = query.partitionKey ?? "";
      if (!query.appId) {
        // Burr keeps no write order; its per-partition set's top entry is the nearest equivalent (two round trips, like load latest).
        const [app, sequenceId] = await redis.zrevrange(appsKey(partition), 0, 0, "WITHSCORES");
        return app === undefined ? null : read(stateKey(partition, app, sequenceId!));
      }
      if (query.sequenceId === undefined || query.sequenceId === null) {
        const sequenceId = await redis.zscore(appsKey(partition), query.appId);
        return sequenceId === null ? null : read(stateKey(partition, query.appId, sequenceId));
      }
      return read(stateKey(partition, query.appId, query.sequenceId));
    },
    listAppIds: (partitionKey) => redis.zrevrange(appsKey(partitionKey), 0, -1),
    close: async () => void (await redis.quit()),
  };
}

interface StateDocument {
  _id: string;
  partition_key: string;
  app_id: string;
  sequence_id: number;
  position: string;
  state: Binary;
  status: string;
  created_at: Date;
}

/** `mongodb://host:port/DATABASE` */
async function mongoCeiling(url: string): Promise<CeilingStore> {
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5000 });
  await client.connect();
  const states = client.db().collection<StateDocument>(table);
  // Finds end on the server after the call bound (the driver's client-side timeoutMS has no effect in this version).
  const bounded = { maxTimeMS: callTimeoutMs };
  const fromDocument = (doc: StateDocument | null): PersistedState<Uint8Array> | null =>
    doc && {
      partitionKey: doc.partition_key,
      appId: doc.app_id,
      sequenceId: doc.sequence_id,
      position: doc.position,
      state: doc.state.buffer,
      status: doc.status as Status,
      createdAt: doc.created_at,
    };
  const document = (input: SaveInput<Uint8Array>): StateDocument => {
    const partition = input.partitionKey ?? "";
    return {
      _id: `${partition}-${input.appId}-${input.sequenceId}`,
      partition_key: partition,
      app_id: input.appId,
      sequence_id: input.sequenceId,
      position: input.position,
      state: new Binary(input.state),
      status: input.status,
      created_at: new Date(),
    };
  };
  const save = async (input: SaveInput<Uint8Array>) => void (await states.insertOne(document(input)));
  return {
    setup: async () => {
      await states.createIndex({ partition_key: 1, app_id: 1, sequence_id: -1 });
      await states.createIndex({ partition_key: 1, created_at: -1 });
    },
    preload: (rows) => saveAll({ save }, rows, 32),
    save,
    load: async (query) => {
      const partition = query.partitionKey ?? "";
      if (!query.appId) return fromDocument(await states.findOne({ partition_key: partition }, { sort: { created_at: -1 }, ...bounded }));
      if (query.sequenceId === undefined || query.sequenceId === null) {
        return fromDocument(await states.findOne({ partition_key: partition, app_id: query.appId }, { sort: { sequence_id: -1 }, ...bounded }));
      }
      return fromDocument(await states.findOne({ _id: `${partition}-${query.appId}-${query.sequenceId}` }, bounded));
    },
    // FerretDB refuses maxTimeMS on distinct.
    listAppIds: async (partitionKey) => (await states.distinct("app_id", { partition_key: partitionKey })) as string[],
    close: () => client.close(),
  };
}
