/**
 * PostgreSQL store through a `pg` Pool.
 *
 * Rows live in `<schema>.<table>`; `<table>_apps` keeps each app's latest write so that listing
 * a partition's apps (most recent first) reads an index in keyset pages instead of grouping all
 * states. `write_seq` (an identity column) is the store's monotonic write order: "latest in the
 * partition" and the listing order never depend on the clock. States are `bytea`, stored and
 * returned byte for byte.
 *
 * A save is one statement (insert, then the app's last write, in one implicit transaction), and
 * saves that arrive while others are being written share a statement: one round trip and one
 * commit for many concurrent saves, each still answered on its own.
 */
import { DatabaseError, Pool, type PoolConfig } from "pg";
import type { Backend, StoredRow } from "../backend";
import { Code, duplicate, notInitialized, PersisterError, unavailable } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, SaveRow } from "@burr-state/client/protocol";
import { Batcher } from "../shared/batcher";
import { checkIdentifier } from "../shared/identifiers";
import { decodeUrlPart } from "../shared/url";

export interface PostgresOptions {
  /** The URL handed to pg, without this module's own parameters. */
  connectionString: string;
  /** "host:port/database", for error messages (never the password). */
  target: string;
  schema: string;
  table: string;
  poolSize: number;
}

const defaultPoolSize = 10;
const maxPoolSize = 1000;

/** `postgres://user:pass@host:port/db?table=burr_state&schema=public&pool=10` (other parameters go to pg). */
export function parsePostgresUrl(url: string): PostgresOptions {
  const parsed = new URL(url);
  const param = (name: string) => {
    const value = parsed.searchParams.get(name);
    parsed.searchParams.delete(name);
    return value;
  };
  const table = checkIdentifier("table name", param("table") ?? "burr_state");
  const schema = checkIdentifier("schema name", param("schema") ?? "public");
  const poolText = param("pool");
  const poolSize = poolText === null ? defaultPoolSize : Number(poolText);
  if (!Number.isSafeInteger(poolSize) || poolSize < 1 || poolSize > maxPoolSize) {
    throw new Error(`postgres pool must be an integer from 1 to ${maxPoolSize}, got ${JSON.stringify(poolText)}`);
  }
  const database = decodeUrlPart("database name", parsed.pathname.replace(/^\//, ""));
  const target = `${parsed.hostname || "localhost"}:${parsed.port || "5432"}/${database}`;
  return { connectionString: parsed.toString(), target, schema, table, poolSize };
}

export async function openPostgres(url: string): Promise<Backend> {
  return new PostgresBackend(parsePostgresUrl(url));
}

/** Bounds on every wait, so that a call answers UNAVAILABLE instead of hanging (URL parameters of the same names override the statement and query timeouts). */
const connectTimeoutMs = 3000;
const statementTimeoutMs = 4000;
/** Client-side backstop for a connection that stops answering (the server's own timeout fires first). */
const queryTimeoutMs = 5000;

/** Limits on one shared save statement: rows, and state bytes (a larger state is written alone). */
const maxBatchRows = 64;
const maxBatchStateBytes = 4 * 1024 * 1024;
/** Keys one batched load statement looks up. */
const maxBatchLoads = 256;

/** The next save batch: up to maxBatchRows rows and maxBatchStateBytes of states (a larger state goes alone). */
function takeSaves(queued: number, at: (index: number) => SaveRow): number {
  let bytes = at(0).state.byteLength;
  let count = 1;
  while (count < queued && count < maxBatchRows) {
    bytes += at(count).state.byteLength;
    if (bytes > maxBatchStateBytes) break;
    count++;
  }
  return count;
}

interface Row {
  partition_key: string;
  app_id: string;
  sequence_id: string;
  position: string;
  state: Buffer;
  status: Status;
  created_at: Date;
}

interface SavedRow {
  partition_key: string;
  app_id: string;
  sequence_id: string;
  position: string;
  created_at: Date;
}

const toStored = (row: Row | undefined): StoredRow | null =>
  row
    ? {
        partitionKey: row.partition_key,
        appId: row.app_id,
        sequenceId: Number(row.sequence_id),
        position: row.position,
        state: new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.byteLength),
        status: row.status,
        createdAt: row.created_at,
      }
    : null;

const keyOf = (partitionKey: string, appId: string, sequenceId: number | string, position: string) =>
  JSON.stringify([partitionKey, appId, String(sequenceId), position]);

/** One order for the keys every save statement inserts, in every process: concurrent statements then never wait on each other in a cycle. */
function compareKeys(a: SaveRow, b: SaveRow): number {
  const text = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return text(a.partitionKey, b.partitionKey) || text(a.appId, b.appId) || a.sequenceId - b.sequenceId || text(a.position, b.position);
}

/** SQLSTATE classes that mean the database cannot serve now: connection exception, insufficient resources, operator intervention (shutdown, statement timeout), invalid authorization. */
const unavailableClasses = new Set(["08", "53", "57", "28"]);
/** Failures of the connection itself, raised by pg or Node rather than by the server. */
const connectionFailure = /Connection terminated|timeout exceeded when trying to connect|Query read timeout|not queryable|Connection ended/i;

function isConnectionError(error: unknown): boolean {
  if (error instanceof DatabaseError) return unavailableClasses.has(error.code?.slice(0, 2) ?? "") || error.code === "3D000";
  if (!(error instanceof Error)) return false;
  const code = (error as NodeJS.ErrnoException).code;
  return (typeof code === "string" && /^E[A-Z]+$/.test(code)) || connectionFailure.test(error.message);
}

/** Node's connect errors can have an empty message (AggregateError): name the cause anyway. */
function withMessage(error: Error): Error {
  if (error.message) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const inner = error instanceof AggregateError ? error.errors.map((e: Error) => e.message).join("; ") : "";
  return new Error(inner || code || error.name, { cause: error });
}

export class PostgresBackend implements Backend {
  readonly kind = "postgres";
  private readonly pool: Pool;
  private readonly sql: ReturnType<typeof postgresStatements>;
  private readonly saveTexts = new Map<number, string>();
  private readonly saves: Batcher<SaveRow, Date>;
  private readonly loads: { [K in LoadKey["kind"]]: Batcher<Extract<LoadKey, { kind: K }>, StoredRow | null> };
  private closing: Promise<void> | null = null;

  constructor(private readonly options: PostgresOptions) {
    const config: PoolConfig = {
      connectionString: options.connectionString,
      max: options.poolSize,
      connectionTimeoutMillis: connectTimeoutMs,
      statement_timeout: statementTimeoutMs,
      query_timeout: queryTimeoutMs,
      keepAlive: true,
      application_name: "burr-state-persister",
    };
    this.pool = new Pool(config);
    // An idle connection that breaks (database restart, network) is dropped by the pool; the
    // next call reconnects or answers UNAVAILABLE. Without a listener the process would crash.
    this.pool.on("error", () => {});
    this.sql = postgresStatements(options.schema, options.table);
    this.saves = new Batcher({ maxInFlight: options.poolSize, take: takeSaves, run: (rows) => this.write(rows) });
    const loads = <K extends LoadKey["kind"]>(one: (key: Extract<LoadKey, { kind: K }>) => Promise<StoredRow | null>, many: (keys: Array<Extract<LoadKey, { kind: K }>>) => Promise<Array<StoredRow | null>>) =>
      new Batcher<Extract<LoadKey, { kind: K }>, StoredRow | null>({
        maxInFlight: options.poolSize,
        take: (queued) => Math.min(queued, maxBatchLoads),
        run: (keys) => (keys.length === 1 ? one(keys[0]!).then((row) => [row]) : many(keys)),
      });
    const sql = this.sql;
    this.loads = {
      step: loads<"step">(
        (key) => this.first(sql.step, [key.partitionKey, key.appId, key.sequenceId]),
        (keys) => this.each(sql.steps, [keys.map((key) => key.partitionKey), keys.map((key) => key.appId), keys.map((key) => key.sequenceId)], keys.length),
      ),
      "app-latest": loads<"app-latest">(
        (key) => this.first(sql.appLatest, [key.partitionKey, key.appId]),
        (keys) => this.each(sql.appLatests, [keys.map((key) => key.partitionKey), keys.map((key) => key.appId)], keys.length),
      ),
      "partition-latest": loads<"partition-latest">(
        (key) => this.first(sql.partitionLatest, [key.partitionKey]),
        (keys) => this.each(sql.partitionLatests, [keys.map((key) => key.partitionKey)], keys.length),
      ),
    };
  }

  async initialize(): Promise<void> {
    if (await this.isInitialized()) return this.upgraded();
    // CREATE SCHEMA needs the CREATE privilege on the database even when the schema exists: only ask for it when it is missing.
    const [{ exists }] = await this.query<{ exists: boolean }>(this.sql.schemaExists, [this.options.schema]);
    // One simple-protocol query runs as one transaction: the advisory lock serializes servers
    // initializing at once (CREATE ... IF NOT EXISTS alone can still collide in the catalogs).
    const ddl = [initializeLock];
    if (!exists) ddl.push(`CREATE SCHEMA IF NOT EXISTS ${quote(this.options.schema)}`);
    ddl.push(...this.sql.createTables);
    await this.query({ text: ddl.join(";\n") }, []);
  }

  /** Set once the tables are known to be of this version (see upgrade()). */
  private upgrade: Promise<void> | null = null;

  /** Resolves once tables made by an older version are brought up to date; retried after a failure. */
  private upgraded(): Promise<void> {
    this.upgrade ??= this.upgradeTables().catch((error: unknown) => {
      this.upgrade = null;
      throw error;
    });
    return this.upgrade;
  }

  /**
   * Version 1 tables allowed only the statuses "completed" and "failed" (a CHECK constraint);
   * any string is allowed now. The constraint is dropped when present (under the same lock as
   * Initialize, so servers starting together do it once).
   */
  private async upgradeTables(): Promise<void> {
    const [{ present }] = await this.query<{ present: boolean }>(this.sql.legacyStatusCheck, [this.sql.tableNames[0], this.sql.legacyStatusCheckName]);
    if (!present) return;
    await this.query({ text: [initializeLock, this.sql.dropLegacyStatusCheck].join(";\n") }, []);
  }

  async isInitialized(): Promise<boolean> {
    const [{ ready }] = await this.query<{ ready: boolean }>(this.sql.tablesExist, this.sql.tableNames);
    return ready;
  }

  save(row: SaveRow): Promise<Date> {
    return this.saves.add(row);
  }

  /** One statement for the batch; when it fails for a reason that may belong to one row, each row alone. */
  private async write(rows: SaveRow[]): Promise<Array<Date | Error>> {
    try {
      return await this.insert(rows);
    } catch (error) {
      if (rows.length === 1 || error instanceof PersisterError) throw error;
      return Promise.all(rows.map((row) => this.insert([row]).then(([outcome]) => outcome!, (failure: Error) => failure)));
    }
  }

  /** Inserts the rows in one statement; a row whose key is already stored (or repeated earlier in the batch) is a duplicate. */
  private async insert(rows: SaveRow[]): Promise<Array<Date | PersisterError>> {
    await this.upgraded();
    const sorted = [...rows].sort(compareKeys);
    const values = sorted.flatMap((row) => [row.partitionKey, row.appId, row.sequenceId, row.position, row.state, row.status]);
    const saved = await this.query<SavedRow>(this.saveStatement(rows.length), values);
    const createdAt = new Map(saved.map((row) => [keyOf(row.partition_key, row.app_id, row.sequence_id, row.position), row.created_at]));
    return rows.map((row) => {
      const key = keyOf(row.partitionKey, row.appId, row.sequenceId, row.position);
      const at = createdAt.get(key);
      if (at === undefined) return duplicate(row);
      createdAt.delete(key);
      return at;
    });
  }

  private saveStatement(rows: number) {
    let text = this.saveTexts.get(rows);
    if (text === undefined) {
      text = this.sql.save(rows);
      this.saveTexts.set(rows, text);
    }
    return { name: `save_${rows}`, text };
  }

  load(key: LoadKey): Promise<StoredRow | null> {
    return (this.loads[key.kind] as Batcher<LoadKey, StoredRow | null>).add(key);
  }

  private async first(statement: { name: string; text: string }, values: unknown[]): Promise<StoredRow | null> {
    return toStored((await this.query<Row>(statement, values))[0]);
  }

  /** A batched load: rows tagged with their key's 1-based position; keys that match nothing have none. */
  private async each(statement: { name: string; text: string }, values: unknown[], count: number): Promise<Array<StoredRow | null>> {
    const found: Array<StoredRow | null> = new Array(count).fill(null);
    for (const row of await this.query<Row & { i: string }>(statement, values)) found[Number(row.i) - 1] = toStored(row);
    return found;
  }

  async *appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]> {
    let after: string | null = null;
    do {
      const rows: Array<{ app_id: string; last_write: string }> =
        after === null
          ? await this.query(this.sql.firstApps, [partitionKey, pageSize])
          : await this.query(this.sql.nextApps, [partitionKey, after, pageSize]);
      if (rows.length > 0) yield rows.map((row) => row.app_id);
      after = rows.length === pageSize ? rows[rows.length - 1]!.last_write : null;
    } while (after !== null);
  }

  /** One round trip on a pooled connection: a refused connection, a wrong password or a database that does not answer fails it. */
  async probe(): Promise<void> {
    try {
      await this.query({ text: "SELECT 1" }, []);
    } catch (error) {
      if (error instanceof PersisterError && error.code === Code.UNAVAILABLE) throw error;
      throw unavailable(`PostgreSQL at ${this.options.target}`, withMessage(error as Error));
    }
  }

  /** Saves already accepted are written before the pool goes away. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await this.saves.idle();
      await this.pool.end();
    })();
    return this.closing;
  }

  /** Runs one statement on a pooled connection (a failed one is discarded, never reused), mapping failures onto the contract's codes. */
  private async query<R>(statement: { name?: string; text: string }, values: unknown[]): Promise<R[]> {
    try {
      return (await this.pool.query({ ...statement, values })).rows as R[];
    } catch (error) {
      if (error instanceof DatabaseError && (error.code === "42P01" || error.code === "3F000")) throw notInitialized();
      if (isConnectionError(error)) throw unavailable(`PostgreSQL at ${this.options.target}`, withMessage(error as Error));
      throw error;
    }
  }
}

/** Serializes servers that initialize or upgrade one database at once (held until the statement's transaction ends). */
const initializeLock = "SELECT pg_advisory_xact_lock(hashtext('burr-state-persister initialize'))";

/** Names are checked by checkIdentifier (letters, digits, _), so quoting cannot be escaped. */
const quote = (name: string) => `"${name}"`;

/** Every statement the store runs (exported so tests can EXPLAIN exactly these). */
export function postgresStatements(schema: string, table: string) {
  const states = `${quote(schema)}.${quote(table)}`;
  const apps = `${quote(schema)}.${quote(`${table}_apps`)}`;
  const keyConstraint = quote(`${table}_key`);
  const columns = "partition_key, app_id, sequence_id, position, state, status, created_at";
  return {
    tableNames: [states, apps],
    // PostgreSQL's name for version 1's CHECK on status (table names are at most 48 characters, so it is never truncated).
    legacyStatusCheckName: `${table}_status_check`,
    legacyStatusCheck: {
      name: "legacy_status_check",
      text: "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = to_regclass($1) AND conname = $2) AS present",
    },
    dropLegacyStatusCheck: `ALTER TABLE ${states} DROP CONSTRAINT IF EXISTS ${quote(`${table}_status_check`)}`,
    tablesExist: { name: "tables_exist", text: "SELECT to_regclass($1) IS NOT NULL AND to_regclass($2) IS NOT NULL AS ready" },
    schemaExists: { name: "schema_exists", text: "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1) AS exists" },
    // Keys use the "C" collation: they are only ever compared for equality, and byte order is
    // cheapest. write_seq is unique by construction and has no index of its own on purpose: a
    // bare write_seq index tempts the planner into scanning every newer row of other partitions
    // for "latest in partition"; (partition_key, write_seq) answers it exactly.
    createTables: [
      `CREATE TABLE IF NOT EXISTS ${states} (
        write_seq bigint GENERATED ALWAYS AS IDENTITY,
        partition_key text COLLATE "C" NOT NULL,
        app_id text COLLATE "C" NOT NULL,
        sequence_id bigint NOT NULL CHECK (sequence_id >= 0),
        position text COLLATE "C" NOT NULL,
        status text COLLATE "C" NOT NULL,
        state bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        CONSTRAINT ${keyConstraint} PRIMARY KEY (partition_key, app_id, sequence_id, position)
      )`,
      // Serves load-by-step and app-latest: both read the first entry of this index.
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_by_app`)} ON ${states} (partition_key, app_id, sequence_id DESC, write_seq DESC)`,
      // Serves partition-latest.
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_by_write`)} ON ${states} (partition_key, write_seq DESC)`,
      `CREATE TABLE IF NOT EXISTS ${apps} (
        partition_key text COLLATE "C" NOT NULL,
        app_id text COLLATE "C" NOT NULL,
        last_write bigint NOT NULL,
        PRIMARY KEY (partition_key, app_id)
      )`,
      // Serves the listing: keyset pages on last_write (unique, as each write belongs to one app).
      `CREATE INDEX IF NOT EXISTS ${quote(`${table}_apps_by_write`)} ON ${apps} (partition_key, last_write DESC)`,
    ],
    /**
     * Inserts `rows` saves (parameters in compareKeys order) and moves each inserted app's last
     * write forward, in one statement. A key already stored is skipped (it returns no row), so a
     * duplicate neither aborts the others nor leaves the connection in a failed transaction.
     * GREATEST keeps last_write monotonic when two statements write one app at once; apps are
     * updated in key order so concurrent statements lock them in the same order.
     */
    save: (rows: number) => {
      const tuples = Array.from({ length: rows }, (_, i) => {
        const n = i * 6;
        return `($${n + 1}::text, $${n + 2}::text, $${n + 3}::bigint, $${n + 4}::text, $${n + 5}::bytea, $${n + 6}::text)`;
      });
      return `WITH inserted AS (
          INSERT INTO ${states} (partition_key, app_id, sequence_id, position, state, status)
          VALUES ${tuples.join(", ")}
          ON CONFLICT ON CONSTRAINT ${keyConstraint} DO NOTHING
          RETURNING write_seq, partition_key, app_id, sequence_id, position, created_at
        ), touched AS (
          INSERT INTO ${apps} AS app (partition_key, app_id, last_write)
          SELECT partition_key, app_id, max(write_seq) FROM inserted
          GROUP BY partition_key, app_id ORDER BY partition_key, app_id
          ON CONFLICT (partition_key, app_id) DO UPDATE SET last_write = GREATEST(app.last_write, excluded.last_write)
        )
        SELECT partition_key, app_id, sequence_id, position, created_at FROM inserted`;
    },
    step: {
      name: "load_step",
      text: `SELECT ${columns} FROM ${states} WHERE partition_key = $1 AND app_id = $2 AND sequence_id = $3
             ORDER BY write_seq DESC LIMIT 1`,
    },
    appLatest: {
      name: "load_app_latest",
      text: `SELECT ${columns} FROM ${states} WHERE partition_key = $1 AND app_id = $2
             ORDER BY sequence_id DESC, write_seq DESC LIMIT 1`,
    },
    partitionLatest: {
      name: "load_partition_latest",
      text: `SELECT ${columns} FROM ${states} WHERE partition_key = $1 ORDER BY write_seq DESC LIMIT 1`,
    },
    // The same three loads for many keys at once (arrays of keys, one row per key that matches,
    // tagged with the key's position i): the single-key query per key, as a lateral join.
    steps: {
      name: "load_steps",
      text: `SELECT k.i, s.* FROM unnest($1::text[], $2::text[], $3::bigint[]) WITH ORDINALITY AS k (partition_key, app_id, sequence_id, i)
             CROSS JOIN LATERAL (SELECT ${columns} FROM ${states} t
               WHERE t.partition_key = k.partition_key COLLATE "C" AND t.app_id = k.app_id COLLATE "C" AND t.sequence_id = k.sequence_id
               ORDER BY t.write_seq DESC LIMIT 1) s`,
    },
    appLatests: {
      name: "load_app_latests",
      text: `SELECT k.i, s.* FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k (partition_key, app_id, i)
             CROSS JOIN LATERAL (SELECT ${columns} FROM ${states} t
               WHERE t.partition_key = k.partition_key COLLATE "C" AND t.app_id = k.app_id COLLATE "C"
               ORDER BY t.sequence_id DESC, t.write_seq DESC LIMIT 1) s`,
    },
    partitionLatests: {
      name: "load_partition_latests",
      text: `SELECT k.i, s.* FROM unnest($1::text[]) WITH ORDINALITY AS k (partition_key, i)
             CROSS JOIN LATERAL (SELECT ${columns} FROM ${states} t
               WHERE t.partition_key = k.partition_key COLLATE "C" ORDER BY t.write_seq DESC LIMIT 1) s`,
    },
    firstApps: {
      name: "apps_first",
      text: `SELECT app_id, last_write FROM ${apps} WHERE partition_key = $1 ORDER BY last_write DESC LIMIT $2`,
    },
    nextApps: {
      name: "apps_next",
      text: `SELECT app_id, last_write FROM ${apps} WHERE partition_key = $1 AND last_write < $2
             ORDER BY last_write DESC LIMIT $3`,
    },
  };
}
