/**
 * The embedded default store: one SQLite file through better-sqlite3, WAL mode.
 *
 * Rows live in `<table>`; `<table>_apps` keeps each app's latest write so that listing a
 * partition's apps (most recent first) reads an index instead of grouping all states.
 * `write_seq` (the rowid, AUTOINCREMENT so never reused) is the store's monotonic write order.
 */
import Database from "better-sqlite3";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { AppIdCursor, Backend, StoredRow, SyncBackend } from "../backend";
import { PersisterError, duplicate, notInitialized, unavailable, type Code } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, SaveRow } from "@burr-state/client/protocol";
import { checkIdentifier } from "../shared/identifiers";
import { checkUrlParams } from "../shared/url";

export interface SqliteOptions {
  /** A file path, or ":memory:". */
  path: string;
  table?: string;
  /** "full" (default) survives power loss; "normal" survives a killed process only. */
  synchronous?: "full" | "normal";
}

/** `sqlite:./file.db?table=t&synchronous=normal`, `sqlite::memory:` */
export function parseSqliteUrl(url: string): SqliteOptions {
  const rest = url.replace(/^sqlite:(\/\/)?/i, "");
  const at = rest.indexOf("?");
  const path = at < 0 ? rest : rest.slice(0, at);
  const params = new URLSearchParams(at < 0 ? "" : rest.slice(at + 1));
  checkUrlParams("sqlite", params, ["table", "synchronous"]);
  const synchronous = params.get("synchronous") ?? undefined;
  if (synchronous !== undefined && synchronous !== "full" && synchronous !== "normal") {
    throw new Error(`sqlite synchronous must be "full" or "normal", got ${JSON.stringify(synchronous)}`);
  }
  return { path: path || "./burr_state.db", table: params.get("table") ?? undefined, synchronous };
}

/** A state row as an array, in the order of sqliteQueries' columns: arrays are cheaper than objects on the hot path. */
type Row = [partitionKey: string, appId: string, sequenceId: number, position: string, state: Buffer, status: Status, createdAt: number];

const toStored = (row: Row | undefined): StoredRow | null =>
  row
    ? {
        partitionKey: row[0],
        appId: row[1],
        sequenceId: row[2],
        position: row[3],
        state: new Uint8Array(row[4].buffer, row[4].byteOffset, row[4].byteLength),
        status: row[5],
        createdAt: new Date(row[6]),
      }
    : null;

const isSqliteError = (error: unknown, code: string) =>
  // By name, not instanceof: under jest each test file loads its own copy of the JS class, while
  // the native addon keeps throwing the first one.
  (error as { name?: unknown } | null)?.name === "SqliteError" && String((error as { code?: unknown }).code).startsWith(code);

/** The states table, under `name`. Any status string is allowed (see migrate()). */
const createStatesTable = (name: string) => `
  CREATE TABLE IF NOT EXISTS ${name} (
    write_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key TEXT NOT NULL,
    app_id TEXT NOT NULL,
    sequence_id INTEGER NOT NULL,
    position TEXT NOT NULL,
    status TEXT NOT NULL,
    state BLOB NOT NULL,
    created_at INTEGER NOT NULL
  );`;

const createStatesIndexes = (t: string) => `
  CREATE UNIQUE INDEX IF NOT EXISTS ${t}_key ON ${t} (partition_key, app_id, sequence_id, position);
  -- rowid (write_seq) ends every index, so these also order ties by write order.
  CREATE INDEX IF NOT EXISTS ${t}_app_step ON ${t} (partition_key, app_id, sequence_id);
  CREATE INDEX IF NOT EXISTS ${t}_partition_recent ON ${t} (partition_key);`;

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

  constructor(readonly options: SqliteOptions) {
    this.table = checkIdentifier("table name", options.table ?? "burr_state");
    try {
      this.db = new Database(options.path);
      this.db.pragma("journal_mode = WAL");
      this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
      this.db.pragma("busy_timeout = 5000");
      this.migrate();
    } catch (error) {
      throw unavailable(`the SQLite database ${options.path}`, error);
    }
  }

  initialize(): void {
    const t = this.table;
    this.db.exec(`
      ${createStatesTable(t)}
      ${createStatesIndexes(t)}
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

  /**
   * Brings a table made by an older version up to date. Version 1 allowed only the statuses
   * "completed" and "failed" (a CHECK constraint); any string is allowed now. SQLite cannot drop
   * a constraint, so the table is rebuilt in one transaction (write_seq values kept).
   */
  private migrate(): void {
    const t = this.table;
    const found = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) as { sql: string } | undefined;
    if (!found || !/CHECK \(status IN/.test(found.sql)) return;
    const columns = "write_seq, partition_key, app_id, sequence_id, position, status, state, created_at";
    this.db.transaction(() => {
      this.db.exec(`
        ${createStatesTable(`${t}__rebuilt`)}
        INSERT INTO ${t}__rebuilt (${columns}) SELECT ${columns} FROM ${t};
        DROP TABLE ${t};
        ALTER TABLE ${t}__rebuilt RENAME TO ${t};
        ${createStatesIndexes(t)}
      `);
    }).immediate();
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
      // Inside a transaction: a duplicate fails the insert statement alone, which SQLite undoes by
      // itself, so a batch needs no savepoint per row.
      insertRow: (row: SaveRow, createdAt: number) => {
        const { lastInsertRowid } = insert.run({ ...row, createdAt });
        touchApp.run(row.partitionKey, row.appId, lastInsertRowid);
      },
      step: this.db.prepare(sql.step).raw(),
      appLatest: this.db.prepare(sql.appLatest).raw(),
      partitionLatest: this.db.prepare(sql.partitionLatest).raw(),
      // Rows as [app_id, last_write] arrays: a listing reads 100,000s of them, and arrays are cheaper than objects.
      firstApps: this.db.prepare(sql.firstApps).raw(),
      nextApps: this.db.prepare(sql.nextApps).raw(),
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
    const [outcome] = this.saveMany([row]);
    if (outcome instanceof Error) throw outcome;
    return outcome!;
  }

  /**
   * Saves many rows in one transaction (one commit). A duplicate fails its row alone; any other
   * failure fails the whole batch, rolled back, so nothing is half-written.
   */
  saveMany(rows: SaveRow[]): Array<Date | Error> {
    return this.run(() =>
      this.db.transaction(() => {
        const { insertRow } = this.sql;
        return rows.map((row) => {
          const createdAt = Date.now();
          try {
            insertRow(row, createdAt);
            return new Date(createdAt);
          } catch (error) {
            if (isSqliteError(error, "SQLITE_CONSTRAINT_UNIQUE")) return duplicate(row);
            throw error;
          }
        });
      })(),
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
      ) as Array<[appId: string, lastWrite: number]>;
      return {
        ids: rows.map(([appId]) => appId),
        next: rows.length === pageSize ? rows[rows.length - 1]![1] : null,
      };
    });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}

/** A save's outcome as it crosses from the writer thread: when it was stored, or what to throw. */
type WriteOutcome = { at: number } | { code: Code; message: string } | { failure: string };

function toOutcome(result: Date | Error): WriteOutcome {
  if (result instanceof Date) return { at: result.getTime() };
  if (result instanceof PersisterError) return { code: result.code, message: result.message };
  return { failure: result.message };
}

function fromOutcome(outcome: WriteOutcome): Date | Error {
  if ("at" in outcome) return new Date(outcome.at);
  if ("code" in outcome) return new PersisterError(outcome.code, outcome.message);
  return new Error(outcome.failure);
}

/** Marks the worker this module starts for itself (see the end of the file). */
const writerRole = "burr-sqlite-writer";

/**
 * A thread that commits batches of saves on a connection of its own, so that the commit's
 * fsync (and SQLite's WAL checkpoints, which run on commit) never block the event loop that
 * serves every other call. Reads stay on the caller's connection: WAL lets them run while a
 * commit is in flight, and a save is answered only once its commit is done, so a load that
 * follows it sees it.
 */
class WriterThread {
  private worker: Worker | null = null;
  private inFlight: { resolve: (outcomes: WriteOutcome[]) => void; reject: (error: unknown) => void } | null = null;

  constructor(private readonly options: SqliteOptions) {}

  private start(): Worker {
    // Under tsx or ts-jest this module is TypeScript: the thread needs the same loader.
    const worker = new Worker(__filename, {
      workerData: { role: writerRole, options: this.options },
      execArgv: __filename.endsWith(".ts") ? ["--require", "tsx/cjs"] : [],
    });
    worker.on("message", (outcomes: WriteOutcome[]) => {
      const waiting = this.inFlight;
      this.inFlight = null;
      worker.unref();
      waiting?.resolve(outcomes);
    });
    const lost = (error: unknown) => {
      if (this.worker === worker) this.worker = null;
      const waiting = this.inFlight;
      this.inFlight = null;
      waiting?.reject(unavailable("the SQLite writer thread", error));
    };
    worker.on("error", lost);
    worker.on("exit", (code) => lost(new Error(`it exited with code ${code}`)));
    return worker;
  }

  /** Commits the rows in one transaction; one batch at a time. */
  write(rows: SaveRow[]): Promise<WriteOutcome[]> {
    return new Promise((resolve, reject) => {
      this.worker ??= this.start();
      this.inFlight = { resolve, reject };
      // Referenced only while a batch is out, so an idle store never keeps the process alive.
      this.worker.ref();
      // A state is often a view into a larger buffer (the request's network read): posting the
      // view would copy all of that buffer. Each state goes as a copy of its own bytes, moved
      // (not copied again) to the thread. `new Uint8Array(view)` copies; a Buffer's slice() would
      // not, and moving its memory would empty the caller's buffer.
      const states = rows.map((row) => new Uint8Array(row.state));
      this.worker.postMessage(
        rows.map((row, i) => ({ ...row, state: states[i] })),
        states.map((state) => state.buffer),
      );
    });
  }

  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = null;
    await worker?.terminate();
  }
}

/** The writer thread's side: saves each batch it is sent with the blocking store, answers outcomes. */
function serveWrites(options: SqliteOptions): void {
  const store = new SqliteSyncBackend(options);
  parentPort!.on("message", (rows: SaveRow[]) => {
    let outcomes: WriteOutcome[];
    try {
      outcomes = store.saveMany(rows).map(toOutcome);
    } catch (error) {
      const outcome = toOutcome(error instanceof Error ? error : new Error(String(error)));
      outcomes = rows.map(() => outcome);
    }
    parentPort!.postMessage(outcomes);
  });
}

/**
 * The same store for async callers (the server). Saves that arrive while a batch is being
 * committed are committed together next, in one transaction: one fsync for many concurrent
 * saves. A file store commits on its writer thread; an in-memory one (which a second
 * connection cannot open) commits on this thread.
 */
export class SqliteBackend implements Backend {
  readonly kind = "sqlite";
  private pending: Array<{ row: SaveRow; resolve: (date: Date) => void; reject: (error: unknown) => void }> = [];
  private flushing: Promise<void> | null = null;
  private readonly writer: WriterThread | null;

  constructor(readonly sync: SqliteSyncBackend) {
    const path = sync.options.path;
    const inMemory = path === "" || path === ":memory:" || path.startsWith("file::memory:") || /[?&]mode=memory\b/.test(path);
    this.writer = inMemory ? null : new WriterThread(sync.options);
  }

  async initialize() {
    this.sync.initialize();
  }

  async isInitialized() {
    return this.sync.isInitialized();
  }

  save(row: SaveRow): Promise<Date> {
    return new Promise((resolve, reject) => {
      this.pending.push({ row, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  /** Commits what is pending, batch after batch, until nothing is left. */
  private async flush(): Promise<void> {
    // One turn of the event loop first, so the saves decoded in this turn join the batch.
    await new Promise((resolve) => setImmediate(resolve));
    while (this.pending.length > 0) {
      const batch = this.pending;
      this.pending = [];
      let results: Array<Date | Error>;
      try {
        const rows = batch.map((item) => item.row);
        results = this.writer ? (await this.writer.write(rows)).map(fromOutcome) : this.sync.saveMany(rows);
      } catch (error) {
        results = batch.map(() => error as Error);
      }
      results.forEach((result, i) => (result instanceof Error ? batch[i]!.reject(result) : batch[i]!.resolve(result)));
    }
    this.flushing = null;
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

  /** Saves already accepted are committed first. */
  async close() {
    while (this.flushing) await this.flushing;
    await this.writer?.close();
    this.sync.close();
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === writerRole) {
  serveWrites((workerData as { options: SqliteOptions }).options);
}

export async function openSqlite(url: string): Promise<Backend> {
  return new SqliteBackend(new SqliteSyncBackend(parseSqliteUrl(url)));
}
