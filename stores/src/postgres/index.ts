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
 *
 * History (issue 13): ListSteps reads keyset pages of `_by_app`; deletes and prunes go in
 * batches of at most batchSize rows, one statement (one transaction) each, so saves and loads
 * never wait long behind them. An app leaves `<table>_apps` only in a transaction that locks its
 * row and then finds no step of it (README.md, "History and deletion", says why a save racing a
 * DeleteApp is then either deleted with it or listed after it). Prune never touches `_apps`: it
 * never deletes an app's highest step, and `last_write` stays the app's most recent save.
 */
import { DatabaseError, Pool, type PoolClient, type PoolConfig } from "pg";
import type { Backend, HistoryBackend, StoredRow } from "../backend";
import { Code, duplicate, notInitialized, PersisterError, unavailable } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";
import { Batcher } from "../shared/batcher";
import { checkIdentifier } from "../shared/identifiers";
import { decodeUrlPart, parseStoreUrl } from "../shared/url";

export interface PostgresOptions {
  /** The URL handed to pg, without this module's own parameters. */
  connectionString: string;
  /** "host:port/database", for error messages (never the password). */
  target: string;
  schema: string;
  table: string;
  poolSize: number;
  /** Behind PgBouncer in transaction mode: unnamed statements, and no statement_timeout at connect (README.md, "PostgreSQL behind PgBouncer"). */
  pgbouncer: boolean;
}

const defaultPoolSize = 10;
const maxPoolSize = 1000;

const urlForm = "postgres://user:password@host:port/database?table=burr_state&schema=public&pool=10&pgbouncer=false";

/** `postgres://user:pass@host:port/db?table=burr_state&schema=public&pool=10&pgbouncer=false` (other parameters go to pg). */
export function parsePostgresUrl(url: string): PostgresOptions {
  const parsed = parseStoreUrl("postgres", url, urlForm);
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
  const pgbouncerText = param("pgbouncer");
  if (pgbouncerText !== null && pgbouncerText !== "true" && pgbouncerText !== "false") {
    throw new Error(`postgres pgbouncer must be true or false, got ${JSON.stringify(pgbouncerText)}`);
  }
  const database = decodeUrlPart("database name", parsed.pathname.replace(/^\//, ""));
  const target = `${parsed.hostname || "localhost"}:${parsed.port || "5432"}/${database}`;
  return { connectionString: parsed.toString(), target, schema, table, poolSize, pgbouncer: pgbouncerText === "true" };
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

/**
 * What PgBouncer in transaction mode answers a store without pgbouncer=true: it refuses
 * statement_timeout at connect (08P01), and a named statement prepared on one server connection
 * is missing (26000) or already there (42P05) on the next. Neither happens on a direct connection.
 */
function behindPgBouncer(error: DatabaseError): boolean {
  return error.code === "26000" || error.code === "42P05" || (error.code === "08P01" && /unsupported startup parameter/.test(error.message));
}

/** Node's connect errors can have an empty message (AggregateError): name the cause anyway. */
function withMessage(error: Error): Error {
  if (error.message) return error;
  const code = (error as NodeJS.ErrnoException).code;
  const inner = error instanceof AggregateError ? error.errors.map((e: Error) => e.message).join("; ") : "";
  return new Error(inner || code || error.name, { cause: error });
}

export class PostgresBackend implements Backend, HistoryBackend {
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
      // PgBouncer refuses statement_timeout as a startup parameter: behind it, the role or PgBouncer sets it (README.md).
      statement_timeout: options.pgbouncer ? undefined : statementTimeoutMs,
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
    try {
      return await this.initializeOnce();
    } catch (error) {
      // A connection that waited for the lock can still see the catalogs as they were before the
      // DDL it waited for (PostgreSQL takes in others' catalog changes when a transaction starts
      // or a table is locked, not after an advisory lock), so CREATE SCHEMA IF NOT EXISTS collides
      // with the schema just made. A new transaction sees the schema and its tables.
      if (error instanceof DatabaseError && error.code === "23505") return this.initializeOnce();
      throw error;
    }
  }

  private async initializeOnce(): Promise<void> {
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
    const values = sorted.flatMap((row) => [row.partitionKey, row.appId, row.sequenceId, row.position, row.state, row.status, row.createdAt ?? null]);
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

  async *stepPages(key: StepsKey, pageSize: number): AsyncIterable<StoredRow[]> {
    const sql = this.sql;
    let after: [sequenceId: string, writeSeq: string] | null = key.beforeSequenceId === null ? null : [String(key.beforeSequenceId), "0"];
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    while (left > 0) {
      const size = Math.min(pageSize, left);
      const rows: Array<Row & { write_seq: string }> =
        after === null
          ? await this.query(key.includeState ? sql.stepsFirstWithState : sql.stepsFirst, [key.partitionKey, key.appId, size])
          : await this.query(key.includeState ? sql.stepsNextWithState : sql.stepsNext, [key.partitionKey, key.appId, after[0], after[1], size]);
      if (rows.length > 0) yield rows.map((row) => toStored(row)!);
      const last = rows[rows.length - 1];
      if (rows.length < size || !last) return;
      left -= rows.length;
      after = [last.sequence_id, last.write_seq];
    }
  }

  /**
   * Batches of the app's steps, oldest first, up to the partition's newest write_seq when the
   * delete began (so that it ends however fast saves come). Each batch is one statement that
   * deletes only while a step is seen beyond it; the rest goes in one transaction that first
   * locks the app's row of <table>_apps, then deletes the rest, then (a new statement, so a new
   * snapshot) deletes the app's row if no step of it is left. A save inserts its step and
   * updates that row in one statement: one holding the row is waited for and its step seen;
   * one coming later waits, and makes the row again once it is gone. So a save is either deleted
   * with the app or listed after it, and no commit shows the app listed without steps.
   */
  async deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number> {
    const bound = (await this.partitionBound(partitionKey)) ?? "0";
    type Batch = { deleted: number; seen: number; last_seq: string | null; last_ws: string | null };
    const batch = (run: <R>(statement: { name: string; text: string }, values: unknown[]) => Promise<R[]>, after: string[], last: boolean) =>
      run<Batch>(this.sql.deleteAppRows, [partitionKey, appId, after[0], after[1], bound, batchSize, last]).then((rows) => rows[0]!);
    const alone = <R>(statement: { name: string; text: string }, values: unknown[]) => this.query<R>(statement, values);
    let deleted = 0;
    let after = ["-1", "0"];
    for (;;) {
      const done = await batch(alone, after, false);
      deleted += done.deleted;
      if (done.seen <= batchSize) break;
      after = [done.last_seq!, done.last_ws!];
    }
    return this.transaction(async (run) => {
      const locked = await run<{ ctid: string }>(this.sql.lockApp, [partitionKey, appId]);
      deleted += (await batch(run, after, true)).deleted;
      if (locked.length > 0) await run(this.sql.forgetApps, [locked.map((row) => row.ctid)]);
      return deleted;
    });
  }

  /**
   * Batches of the partition's steps in write order (up to its newest when the delete began),
   * each one transaction: the steps read, their apps' rows locked (in app_id order), the steps
   * deleted, then the apps left with no step forgotten, as at the end of DeleteApp. Last, apps
   * listed with no step at all, a page at a time.
   */
  async deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    const bound = await this.partitionBound(partitionKey);
    let stepsDeleted = 0;
    let appsDeleted = 0;
    let after = "0";
    while (bound !== null) {
      const batch = await this.transaction(async (run) => {
        const rows = await run<{ ctid: string; app_id: string; write_seq: string }>(this.sql.partitionRows, [partitionKey, after, bound, batchSize]);
        if (rows.length === 0) return { seen: 0, deleted: 0, forgotten: 0, last: after };
        const appIds = [...new Set(rows.map((row) => row.app_id))].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b)));
        const locked = await run<{ ctid: string }>(this.sql.lockAppsOf, [partitionKey, appIds]);
        const [{ deleted }] = await run<{ deleted: number }>(this.sql.deleteRows, [rows.map((row) => row.ctid), rows.map((row) => row.write_seq)]);
        const [{ forgotten }] = locked.length > 0 ? await run<{ forgotten: number }>(this.sql.forgetApps, [locked.map((row) => row.ctid)]) : [{ forgotten: 0 }];
        return { seen: rows.length, deleted: deleted!, forgotten: forgotten!, last: rows[rows.length - 1]!.write_seq };
      });
      stepsDeleted += batch.deleted;
      appsDeleted += batch.forgotten;
      if (batch.seen < batchSize) break;
      after = batch.last;
    }
    let afterApp = "";
    for (;;) {
      // Locked rows come in app_id order (a lock wait re-reads only last_write): the last one is the page's end.
      const page = await this.transaction(async (run) => {
        const locked = await run<{ app_id: string; ctid: string }>(this.sql.lockApps, [partitionKey, afterApp, batchSize]);
        const [{ forgotten }] = locked.length > 0 ? await run<{ forgotten: number }>(this.sql.forgetApps, [locked.map((row) => row.ctid)]) : [{ forgotten: 0 }];
        return { locked, forgotten: forgotten! };
      });
      appsDeleted += page.forgotten;
      if (page.locked.length < batchSize) break;
      afterApp = page.locked[page.locked.length - 1]!.app_id;
    }
    return { stepsDeleted, appsDeleted };
  }

  /**
   * Apps in primary key order, a page at a time (few enough that finding their cutoffs reads at
   * most about batchSize index entries), then batches over the page: each examines at most
   * batchSize / (apps left) steps of every app left, below its cutoff and newest first, and
   * deletes those created before older_than. An app that yields fewer than it was asked for is
   * done; the others go on below the last step examined. No batch deletes more than batchSize.
   */
  async prune(rule: PruneRule, batchSize: number): Promise<number> {
    const offset = (rule.keepLast ?? 1) - 1;
    const perPage = Math.max(1, Math.floor(batchSize / (offset + 1)));
    let deleted = 0;
    let after: { partition_key: string; app_id: string } | null = null;
    for (;;) {
      const page: Array<{ partition_key: string; app_id: string }> =
        rule.appId !== null
          ? [{ partition_key: rule.partitionKey ?? "", app_id: rule.appId }]
          : rule.partitionKey !== null
            ? await this.query(this.sql.partitionApps, [rule.partitionKey, after?.app_id ?? "", perPage])
            : await this.query(this.sql.anyApps, [after?.partition_key ?? "", after?.app_id ?? "", perPage]);
      if (page.length > 0) deleted += await this.prunePage(page, offset, rule.olderThan, batchSize);
      if (rule.appId !== null || page.length < perPage) return deleted;
      after = page[page.length - 1]!;
    }
  }

  private async prunePage(page: Array<{ partition_key: string; app_id: string }>, offset: number, olderThan: Date | null, batchSize: number): Promise<number> {
    const cutoffs = await this.query<{ i: string; sequence_id: string; write_seq: string }>(this.sql.pruneCutoffs, [
      page.map((app) => app.partition_key),
      page.map((app) => app.app_id),
      offset,
    ]);
    let left = cutoffs.map((cutoff) => ({ ...page[Number(cutoff.i) - 1]!, below: [BigInt(cutoff.sequence_id), BigInt(cutoff.write_seq)] as [bigint, bigint] }));
    let deleted = 0;
    while (left.length > 0) {
      const examine = Math.max(1, Math.floor(batchSize / left.length));
      const [batch] = await this.query<{ deleted: number; apps: string[] | null; sequence_ids: string[] | null; write_seqs: string[] | null }>(this.sql.pruneRows, [
        left.map((app) => app.partition_key),
        left.map((app) => app.app_id),
        left.map((app) => String(app.below[0])),
        left.map((app) => String(app.below[1])),
        examine,
        olderThan,
      ]);
      deleted += batch!.deleted;
      // Per app: how many steps were examined, and the lowest of them (where it goes on).
      const seen = new Map<number, { count: number; lowest: [bigint, bigint] }>();
      (batch!.apps ?? []).forEach((i, at) => {
        const key: [bigint, bigint] = [BigInt(batch!.sequence_ids![at]!), BigInt(batch!.write_seqs![at]!)];
        const app = seen.get(Number(i));
        if (!app) seen.set(Number(i), { count: 1, lowest: key });
        else {
          app.count++;
          if (key[0] < app.lowest[0] || (key[0] === app.lowest[0] && key[1] < app.lowest[1])) app.lowest = key;
        }
      });
      left = left.flatMap((app, index) => {
        const progress = seen.get(index + 1);
        return progress && progress.count >= examine ? [{ ...app, below: progress.lowest }] : [];
      });
    }
    return deleted;
  }

  private async partitionBound(partitionKey: string): Promise<string | null> {
    const [row] = await this.query<{ write_seq: string }>(this.sql.partitionBound, [partitionKey]);
    return row?.write_seq ?? null;
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
      return (await this.pool.query({ ...this.prepared(statement), values })).rows as R[];
    } catch (error) {
      throw this.failure(error);
    }
  }

  /**
   * Named statements are prepared once per connection. Behind PgBouncer in transaction mode the
   * next statement may run on another server connection, which does not know the name (or knows
   * it already): there every statement is unnamed, parsed where it runs.
   */
  private prepared(statement: { name?: string; text: string }): { name?: string; text: string } {
    return this.options.pgbouncer ? { text: statement.text } : statement;
  }

  /** A database failure as the contract's code (or as it is, for a bug). */
  private failure(error: unknown): unknown {
    if (error instanceof PersisterError) return error;
    if (error instanceof DatabaseError && (error.code === "42P01" || error.code === "3F000")) return notInitialized();
    if (!this.options.pgbouncer && error instanceof DatabaseError && behindPgBouncer(error)) {
      const hint = "the store's connections go through PgBouncer in transaction mode: add pgbouncer=true to the store URL";
      if (isConnectionError(error)) return unavailable(`PostgreSQL at ${this.options.target}`, new Error(`${error.message} (${hint})`, { cause: error }));
      return new PersisterError(Code.FAILED_PRECONDITION, `PostgreSQL at ${this.options.target}: ${error.message} (${hint})`, { cause: error });
    }
    if (isConnectionError(error)) return unavailable(`PostgreSQL at ${this.options.target}`, withMessage(error as Error));
    return error;
  }

  /**
   * Runs `work` in one transaction on a connection of its own (READ COMMITTED: each statement
   * sees what was committed before it began). A failed transaction's connection is discarded.
   */
  private async transaction<T>(work: (run: <R>(statement: { name: string; text: string }, values: unknown[]) => Promise<R[]>) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await this.pool.connect();
    } catch (error) {
      throw this.failure(error);
    }
    let failed: Error | undefined;
    try {
      await client.query("BEGIN");
      const result = await work(async <R>(statement: { name: string; text: string }, values: unknown[]) => (await client.query({ ...this.prepared(statement), values })).rows as R[]);
      await client.query("COMMIT");
      return result;
    } catch (error) {
      failed = error instanceof Error ? error : new Error(String(error));
      throw this.failure(error);
    } finally {
      client.release(failed);
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
        const n = i * 7;
        // A given creation time (an imported row) or the store's own.
        return `($${n + 1}::text, $${n + 2}::text, $${n + 3}::bigint, $${n + 4}::text, $${n + 5}::bytea, $${n + 6}::text, COALESCE($${n + 7}::timestamptz, now()))`;
      });
      return `WITH inserted AS (
          INSERT INTO ${states} (partition_key, app_id, sequence_id, position, state, status, created_at)
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

    // ListSteps: newest first, keyset pages on (sequence_id, write_seq) through _by_app (a
    // before_sequence_id B starts the keyset at (B, 0): write_seq is never 0). Without states the
    // state column is not named (an empty bytea stands in), so a TOASTed state is never read.
    stepsFirst: stepList(states, "steps_first", "", false),
    stepsNext: stepList(states, "steps_next", "AND (sequence_id, write_seq) < ($3, $4)", false),
    stepsFirstWithState: stepList(states, "steps_first_state", "", true),
    stepsNextWithState: stepList(states, "steps_next_state", "AND (sequence_id, write_seq) < ($3, $4)", true),

    // Deletes: each batch is one statement (its own transaction) deleting at most $n rows, found
    // through an index in keyset order and deleted by ctid (a TID scan, which visits them in
    // physical order: two deletes over the same rows lock them in the same order).
    /** The partition's newest write_seq: a delete leaves alone what was written after it began. */
    partitionBound: {
      name: "partition_bound",
      text: `SELECT write_seq FROM ${states} WHERE partition_key = $1 ORDER BY write_seq DESC LIMIT 1`,
    },
    /**
     * The app's next steps, oldest first, after ($3, $4) and up to the bound $5: when more than
     * $6 are left, the first $6 are deleted (one is seen beyond them: the app keeps a step);
     * otherwise the rest are deleted only when $7 (the last batch, in the transaction that
     * also forgets the app), and none when not. last_* is the last step deleted.
     */
    deleteAppRows: {
      name: "delete_app_rows",
      text: `WITH seen AS MATERIALIZED (
               SELECT ctid, sequence_id, write_seq FROM ${states}
               WHERE partition_key = $1 AND app_id = $2 AND (sequence_id, write_seq) > ($3, $4) AND write_seq <= $5
               ORDER BY sequence_id, write_seq LIMIT $6 + 1
             ), top AS (
               SELECT count(*)::int AS seen, max(sequence_id) AS s FROM seen
             ), top_key AS (
               SELECT top.seen, top.s, (SELECT max(write_seq) FROM seen WHERE sequence_id = top.s) AS w FROM top
             ), doomed AS MATERIALIZED (
               SELECT seen.ctid, seen.sequence_id, seen.write_seq FROM seen, top_key
               WHERE CASE WHEN top_key.seen > $6 THEN (seen.sequence_id, seen.write_seq) < (top_key.s, top_key.w) ELSE $7::boolean END
             ), gone AS (
               DELETE FROM ${states} WHERE ctid = ANY (ARRAY(SELECT ctid FROM doomed)) RETURNING 1
             ), last AS (
               SELECT max(sequence_id) AS s FROM doomed
             )
             SELECT (SELECT count(*) FROM gone)::int AS deleted, top_key.seen, last.s AS last_seq,
               (SELECT max(write_seq) FROM doomed WHERE sequence_id = last.s) AS last_ws
             FROM top_key, last`,
    },
    /** The partition's next steps in write order, after $2 and up to the bound $3 (read, then their apps locked, then deleted). */
    partitionRows: {
      name: "partition_rows",
      text: `SELECT ctid, app_id, write_seq FROM ${states} WHERE partition_key = $1 AND write_seq > $2 AND write_seq <= $3
             ORDER BY write_seq LIMIT $4`,
    },
    /**
     * Rows read earlier in the transaction, by ctid (a TID scan) and write_seq: between two
     * statements a row could go and its slot be reused, and write_seq, never reused, tells.
     */
    deleteRows: {
      name: "delete_rows",
      text: `WITH gone AS (
               DELETE FROM ${states} WHERE ctid = ANY ($1::tid[]) AND write_seq = ANY ($2::bigint[]) RETURNING 1
             )
             SELECT count(*)::int AS deleted FROM gone`,
    },
    // An app leaves the listing in a transaction of two statements: lock its apps row, then (in
    // a new snapshot, which sees every save committed before the lock was granted) delete it if
    // no step of it is left. A save updates the apps row in the statement that inserts its
    // step, so it cannot commit between the two; one that comes after inserts the row again.
    lockApp: {
      name: "lock_app",
      text: `SELECT app_id, ctid FROM ${apps} WHERE partition_key = $1 AND app_id = $2 FOR UPDATE`,
    },
    /**
     * The rows of these apps, before their steps are deleted: one primary key search per app, in
     * the order given (byte order, which is "C" order: the order saves lock them in).
     */
    lockAppsOf: {
      name: "lock_apps_of",
      text: `SELECT a.app_id, a.ctid FROM unnest($2::text[]) AS k (app_id)
             CROSS JOIN LATERAL (SELECT app_id, ctid FROM ${apps} WHERE partition_key = $1 AND app_id = k.app_id COLLATE "C" FOR UPDATE) a`,
    },
    lockApps: {
      name: "lock_apps",
      text: `SELECT app_id, ctid FROM ${apps} WHERE partition_key = $1 AND app_id > $2 ORDER BY app_id LIMIT $3 FOR UPDATE`,
    },
    /** The rows locked (by ctid: a locked row cannot move), those of apps with no step left. */
    forgetApps: {
      name: "forget_apps",
      text: `WITH gone AS (
               DELETE FROM ${apps} a WHERE a.ctid = ANY ($1::tid[])
               AND NOT EXISTS (SELECT FROM ${states} s WHERE s.partition_key = a.partition_key AND s.app_id = a.app_id)
               RETURNING 1
             )
             SELECT count(*)::int AS forgotten FROM gone`,
    },
    // Prune: apps a page at a time (primary key order), each page's cutoffs (the keep_last-th
    // newest step; the highest for older_than alone), then batches that examine at most $5
    // steps per app below its cutoff, newest first, deleting those created before $6.
    partitionApps: {
      name: "prune_partition_apps",
      text: `SELECT partition_key, app_id FROM ${apps} WHERE partition_key = $1 AND app_id > $2 ORDER BY app_id LIMIT $3`,
    },
    anyApps: {
      name: "prune_any_apps",
      text: `SELECT partition_key, app_id FROM ${apps} WHERE (partition_key, app_id) > ($1, $2)
             ORDER BY partition_key, app_id LIMIT $3`,
    },
    pruneCutoffs: {
      name: "prune_cutoffs",
      text: `SELECT k.i, c.sequence_id, c.write_seq FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k (partition_key, app_id, i)
             CROSS JOIN LATERAL (SELECT t.sequence_id, t.write_seq FROM ${states} t
               WHERE t.partition_key = k.partition_key COLLATE "C" AND t.app_id = k.app_id COLLATE "C"
               ORDER BY t.sequence_id DESC, t.write_seq DESC OFFSET $3 LIMIT 1) c`,
    },
    pruneRows: {
      name: "prune_rows",
      text: `WITH seen AS MATERIALIZED (
               SELECT k.i, s.ctid, s.sequence_id, s.write_seq, s.created_at
               FROM unnest($1::text[], $2::text[], $3::bigint[], $4::bigint[]) WITH ORDINALITY AS k (partition_key, app_id, sequence_id, write_seq, i)
               CROSS JOIN LATERAL (SELECT t.ctid, t.sequence_id, t.write_seq, t.created_at FROM ${states} t
                 WHERE t.partition_key = k.partition_key COLLATE "C" AND t.app_id = k.app_id COLLATE "C"
                 AND (t.sequence_id, t.write_seq) < (k.sequence_id, k.write_seq)
                 ORDER BY t.sequence_id DESC, t.write_seq DESC LIMIT $5) s
             ), gone AS (
               DELETE FROM ${states} WHERE ctid = ANY (ARRAY(SELECT ctid FROM seen WHERE $6::timestamptz IS NULL OR created_at < $6))
               RETURNING 1
             )
             SELECT (SELECT count(*) FROM gone)::int AS deleted, array_agg(i) AS apps, array_agg(sequence_id) AS sequence_ids, array_agg(write_seq) AS write_seqs
             FROM seen`,
    },
  };
}

/** A ListSteps page statement; `after` adds the keyset condition ($3, $4), and LIMIT is the last parameter. */
function stepList(states: string, name: string, after: string, withState: boolean) {
  const limit = after ? "$5" : "$3";
  return {
    name,
    text: `SELECT partition_key, app_id, sequence_id, position, ${withState ? "state" : "''::bytea AS state"}, status, created_at, write_seq
           FROM ${states} WHERE partition_key = $1 AND app_id = $2 ${after}
           ORDER BY sequence_id DESC, write_seq DESC LIMIT ${limit}`,
  };
}
