/**
 * The embedded default store: one SQLite file through better-sqlite3, WAL mode.
 *
 * Rows live in `<table>`; `<table>_apps` keeps each app's latest write so that listing a
 * partition's apps (most recent first) reads an index instead of grouping all states.
 * `write_seq` (the rowid, AUTOINCREMENT so never reused) is the store's monotonic write order.
 */
import Database from "better-sqlite3";
import type { AppIdCursor, Backend, StoredRow, SyncBackend } from "../../../core/backend";
import { duplicate, notInitialized, unavailable } from "../../../core/errors";
import type { Status } from "../../../core/persister";
import type { LoadKey, SaveRow } from "../../../core/validation";
import { checkIdentifier } from "./sql-names";

export interface SqliteOptions {
  /** A file path, or ":memory:". */
  path: string;
  table?: string;
  /** "full" (default) survives power loss; "normal" survives a killed process only. */
  synchronous?: "full" | "normal";
}

/** `sqlite:./file.db?table=t&synchronous=normal`, `sqlite::memory:` */
export function parseSqliteUrl(url: string): SqliteOptions {
  const rest = url.replace(/^sqlite:(\/\/)?/, "");
  const [path, query = ""] = rest.split("?", 2);
  const params = new URLSearchParams(query);
  const synchronous = params.get("synchronous") ?? undefined;
  if (synchronous !== undefined && synchronous !== "full" && synchronous !== "normal") {
    throw new Error(`sqlite synchronous must be "full" or "normal", got ${JSON.stringify(synchronous)}`);
  }
  return { path: path || "./burr_state.db", table: params.get("table") ?? undefined, synchronous };
}

interface Row {
  partition_key: string;
  app_id: string;
  sequence_id: number;
  position: string;
  state: Buffer;
  status: Status;
  created_at: number;
}

const toStored = (row: Row | undefined): StoredRow | null =>
  row
    ? {
        partitionKey: row.partition_key,
        appId: row.app_id,
        sequenceId: row.sequence_id,
        position: row.position,
        state: new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.byteLength),
        status: row.status,
        createdAt: new Date(row.created_at),
      }
    : null;

const isSqliteError = (error: unknown, code: string) =>
  // By name, not instanceof: under jest each test file loads its own copy of the JS class, while
  // the native addon keeps throwing the first one.
  (error as { name?: unknown } | null)?.name === "SqliteError" && String((error as { code?: unknown }).code).startsWith(code);

/** Every statement the store runs (the query-plan test EXPLAINs these very strings). */
export function sqliteQueries(t: string) {
  const columns = "partition_key, app_id, sequence_id, position, state, status, created_at";
  return {
    insert: `INSERT INTO ${t} (partition_key, app_id, sequence_id, position, state, status, created_at)
             VALUES (@partitionKey, @appId, @sequenceId, @position, @state, @status, @createdAt)`,
    touchApp: `INSERT INTO ${t}_apps (partition_key, app_id, last_write) VALUES (?, ?, ?)
               ON CONFLICT (partition_key, app_id) DO UPDATE SET last_write = excluded.last_write`,
    step: `SELECT ${columns} FROM ${t} WHERE partition_key = ? AND app_id = ? AND sequence_id = ?
           ORDER BY write_seq DESC LIMIT 1`,
    appLatest: `SELECT ${columns} FROM ${t} WHERE partition_key = ? AND app_id = ?
                ORDER BY sequence_id DESC, write_seq DESC LIMIT 1`,
    partitionLatest: `SELECT ${columns} FROM ${t} WHERE partition_key = ? ORDER BY write_seq DESC LIMIT 1`,
    firstApps: `SELECT app_id, last_write FROM ${t}_apps WHERE partition_key = ? ORDER BY last_write DESC LIMIT ?`,
    nextApps: `SELECT app_id, last_write FROM ${t}_apps WHERE partition_key = ? AND last_write < ?
               ORDER BY last_write DESC LIMIT ?`,
  };
}

/** Blocking SQLite store: what embedded synchronous users and the async wrapper both drive. */
export class SqliteSyncBackend implements SyncBackend {
  readonly kind = "sqlite";
  readonly db: Database.Database;
  private readonly table: string;
  private statements: ReturnType<SqliteSyncBackend["prepare"]> | null = null;

  constructor(options: SqliteOptions) {
    this.table = checkIdentifier("table name", options.table ?? "burr_state");
    try {
      this.db = new Database(options.path);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
      this.db.pragma("busy_timeout = 5000");
    } catch (error) {
      throw unavailable(`the SQLite database ${options.path}`, error);
    }
  }

  initialize(): void {
    const t = this.table;
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS ${t} (
        write_seq INTEGER PRIMARY KEY AUTOINCREMENT,
        partition_key TEXT NOT NULL,
        app_id TEXT NOT NULL,
        sequence_id INTEGER NOT NULL,
        position TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
        state BLOB NOT NULL,
        created_at INTEGER NOT NULL
      );
      CREATE UNIQUE INDEX IF NOT EXISTS ${t}_key ON ${t} (partition_key, app_id, sequence_id, position);
      -- rowid (write_seq) ends every index, so these also order ties by write order.
      CREATE INDEX IF NOT EXISTS ${t}_app_step ON ${t} (partition_key, app_id, sequence_id);
      CREATE INDEX IF NOT EXISTS ${t}_partition_recent ON ${t} (partition_key);
      CREATE TABLE IF NOT EXISTS ${t}_apps (
        partition_key TEXT NOT NULL,
        app_id TEXT NOT NULL,
        last_write INTEGER NOT NULL,
        PRIMARY KEY (partition_key, app_id)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS ${t}_apps_recent ON ${t}_apps (partition_key, last_write);
    `);
    this.statements = null;
  }

  isInitialized(): boolean {
    const found = this.db
      .prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table' AND name IN (?, ?)")
      .get(this.table, `${this.table}_apps`) as { n: number };
    return found.n === 2;
  }

  private prepare() {
    const sql = sqliteQueries(this.table);
    const insert = this.db.prepare(sql.insert);
    const touchApp = this.db.prepare(sql.touchApp);
    return {
      save: this.db.transaction((row: SaveRow, createdAt: number) => {
        const { lastInsertRowid } = insert.run({ ...row, createdAt });
        touchApp.run(row.partitionKey, row.appId, lastInsertRowid);
      }),
      step: this.db.prepare(sql.step),
      appLatest: this.db.prepare(sql.appLatest),
      partitionLatest: this.db.prepare(sql.partitionLatest),
      firstApps: this.db.prepare(sql.firstApps),
      nextApps: this.db.prepare(sql.nextApps),
    };
  }

  /** Prepared statements, made on first use (the tables must exist to prepare them). */
  private get sql() {
    if (this.statements) return this.statements;
    try {
      this.statements = this.prepare();
    } catch (error) {
      if (isSqliteError(error, "SQLITE_ERROR") && /no such table/.test(String(error))) throw notInitialized();
      throw error;
    }
    return this.statements;
  }

  /** Runs a statement, mapping the database's failures onto the contract's codes. */
  private run<T>(work: () => T): T {
    try {
      return work();
    } catch (error) {
      if (/no such table/.test(String(error))) {
        this.statements = null;
        throw notInitialized();
      }
      if (isSqliteError(error, "SQLITE_BUSY") || isSqliteError(error, "SQLITE_IOERR") || isSqliteError(error, "SQLITE_FULL")) {
        throw unavailable("the SQLite database", error);
      }
      throw error;
    }
  }

  save(row: SaveRow): Date {
    const createdAt = Date.now();
    this.run(() => {
      try {
        this.sql.save(row, createdAt);
      } catch (error) {
        if (isSqliteError(error, "SQLITE_CONSTRAINT_UNIQUE")) throw duplicate(row);
        throw error;
      }
    });
    return new Date(createdAt);
  }

  /** Saves many rows in one transaction (one commit); each row succeeds or fails alone. */
  saveMany(rows: SaveRow[]): Array<Date | Error> {
    return this.run(() =>
      this.db.transaction(() =>
        rows.map((row) => {
          try {
            return this.save(row);
          } catch (error) {
            return error as Error;
          }
        }),
      )(),
    );
  }

  load(key: LoadKey): StoredRow | null {
    return this.run(() => {
      switch (key.kind) {
        case "step":
          return toStored(this.sql.step.get(key.partitionKey, key.appId, key.sequenceId) as Row | undefined);
        case "app-latest":
          return toStored(this.sql.appLatest.get(key.partitionKey, key.appId) as Row | undefined);
        case "partition-latest":
          return toStored(this.sql.partitionLatest.get(key.partitionKey) as Row | undefined);
      }
    });
  }

  appIdPage(partitionKey: string, pageSize: number, after: AppIdCursor | null) {
    return this.run(() => {
      const rows = (
        after === null
          ? this.sql.firstApps.all(partitionKey, pageSize)
          : this.sql.nextApps.all(partitionKey, after as number, pageSize)
      ) as Array<{ app_id: string; last_write: number }>;
      return {
        ids: rows.map((row) => row.app_id),
        next: rows.length === pageSize ? rows[rows.length - 1]!.last_write : null,
      };
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/**
 * The same store for async callers (the server). Saves that arrive while one is being written
 * are committed together in one transaction: one fsync for many concurrent saves.
 */
export class SqliteBackend implements Backend {
  readonly kind = "sqlite";
  private pending: Array<{ row: SaveRow; resolve: (date: Date) => void; reject: (error: unknown) => void }> = [];

  constructor(readonly sync: SqliteSyncBackend) {}

  async initialize() {
    this.sync.initialize();
  }

  async isInitialized() {
    return this.sync.isInitialized();
  }

  save(row: SaveRow): Promise<Date> {
    return new Promise((resolve, reject) => {
      if (this.pending.push({ row, resolve, reject }) === 1) setImmediate(() => this.flush());
    });
  }

  private flush() {
    const batch = this.pending;
    this.pending = [];
    try {
      const results = batch.length === 1 ? [this.attempt(batch[0]!.row)] : this.sync.saveMany(batch.map((item) => item.row));
      results.forEach((result, i) => (result instanceof Error ? batch[i]!.reject(result) : batch[i]!.resolve(result)));
    } catch (error) {
      for (const item of batch) item.reject(error);
    }
  }

  private attempt(row: SaveRow): Date | Error {
    try {
      return this.sync.save(row);
    } catch (error) {
      return error as Error;
    }
  }

  async load(key: LoadKey) {
    return this.sync.load(key);
  }

  async *appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]> {
    let cursor: AppIdCursor | null = null;
    do {
      const page = this.sync.appIdPage(partitionKey, pageSize, cursor);
      if (page.ids.length > 0) yield page.ids;
      cursor = page.next;
    } while (cursor !== null);
  }

  async close() {
    this.sync.close();
  }
}
