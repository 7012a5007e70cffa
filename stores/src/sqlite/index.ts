/**
 * The embedded default store: one SQLite file through better-sqlite3, WAL mode.
 *
 * Rows live in `<table>`; `<table>_apps` keeps each app's latest write so that listing a
 * partition's apps (most recent first) reads an index instead of grouping all states.
 * `write_seq` (the rowid, AUTOINCREMENT so never reused) is the store's monotonic write order.
 *
 * History (issue 13): ListSteps reads keyset pages of `<table>_steps`; DeleteApp, DeletePartition
 * and Prune run in batches of at most batchSize rows, each one IMMEDIATE transaction, on the same
 * writer as the saves (the writer thread in the server), so they commit in turn with them. An app
 * leaves `<table>_apps` only in the transaction that finds none of its steps left (README.md,
 * "History and deletion"). Prune never touches `_apps`: it never deletes an app's highest step,
 * and `last_write` stays the app's most recent save.
 */
import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as nodePath from "node:path";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import type { AppIdCursor, Backend, HistoryBackend, StepCursor, StoredRow, SyncBackend, SyncHistoryBackend } from "../backend";
import { PersisterError, duplicate, notInitialized, unavailable, type Code } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";
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

/**
 * `<table>_steps` serves every per-app read: load by step, load latest, ListSteps (its keyset on
 * sequence_id, write_seq), DeleteApp's and Prune's batches. It carries created_at so that ListSteps
 * without states and Prune's older_than never touch the row's record: created_at is stored after
 * the state, and reading it from the row would walk a large state's overflow pages. It replaces
 * version 2's `<table>_app_step (partition_key, app_id, sequence_id)`, of which it is an extension
 * (that index ended in rowid, i.e. write_seq, too), so the old one is dropped.
 */
const createStatesIndexes = (t: string) => `
  CREATE UNIQUE INDEX IF NOT EXISTS ${t}_key ON ${t} (partition_key, app_id, sequence_id, position);
  -- rowid (write_seq) ends every index, so these also order ties by write order.
  CREATE INDEX IF NOT EXISTS ${t}_steps ON ${t} (partition_key, app_id, sequence_id, write_seq, created_at);
  DROP INDEX IF EXISTS ${t}_app_step;
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

    // ListSteps: newest first, keyset pages on (sequence_id, write_seq) through <table>_steps; a
    // before_sequence_id B starts the keyset at (B, 0) (write_seq is never 0). Without states the
    // state column is not named (X'' stands in), so its bytes are never read.
    stepsFirst: stepList(t, "", false),
    stepsNext: stepList(t, "AND (sequence_id, write_seq) < (?, ?)", false),
    stepsFirstWithState: stepList(t, "", true),
    stepsNextWithState: stepList(t, "AND (sequence_id, write_seq) < (?, ?)", true),

    // Deletes. Each runs inside one IMMEDIATE transaction of at most a batch of rows, oldest first.
    /** The newest write_seq of a partition: rows above it were written after a delete began and are not its to delete. */
    partitionBound: `SELECT write_seq FROM ${t} WHERE partition_key = ? ORDER BY write_seq DESC LIMIT 1`,
    deleteAppRows: `DELETE FROM ${t} WHERE write_seq IN (
                      SELECT write_seq FROM ${t} WHERE partition_key = ? AND app_id = ?
                      AND (sequence_id, write_seq) > (?, ?) AND write_seq <= ?
                      ORDER BY sequence_id, write_seq LIMIT ?)
                    RETURNING sequence_id, write_seq`,
    deletePartitionRows: `DELETE FROM ${t} WHERE write_seq IN (
                            SELECT write_seq FROM ${t} WHERE partition_key = ? AND write_seq > ? AND write_seq <= ?
                            ORDER BY write_seq LIMIT ?)
                          RETURNING write_seq, app_id`,
    /** Removes an app from the listing only when none of its steps is left (in the transaction that made it so). */
    forgetApp: `DELETE FROM ${t}_apps WHERE partition_key = ? AND app_id = ?
                AND NOT EXISTS (SELECT 1 FROM ${t} WHERE partition_key = ? AND app_id = ?)`,
    partitionApps: `SELECT app_id FROM ${t}_apps WHERE partition_key = ? AND app_id > ? ORDER BY app_id LIMIT ?`,
    /** The next app of every partition (Prune without a partition), in primary key order. */
    anyApps: `SELECT partition_key, app_id FROM ${t}_apps WHERE (partition_key, app_id) > (?, ?)
              ORDER BY partition_key, app_id LIMIT ?`,
    /** The app's step that Prune keeps last: the keep_last-th newest (OFFSET keep_last - 1; the highest for older_than alone). */
    pruneCutoff: `SELECT sequence_id, write_seq FROM ${t} WHERE partition_key = ? AND app_id = ?
                  ORDER BY sequence_id DESC, write_seq DESC LIMIT 1 OFFSET ?`,
    /** The next steps below the cutoff, newest first, with created_at from the index. */
    pruneCandidates: `SELECT sequence_id, write_seq, created_at FROM ${t} WHERE partition_key = ? AND app_id = ?
                      AND (sequence_id, write_seq) < (?, ?) ORDER BY sequence_id DESC, write_seq DESC LIMIT ?`,
    deleteRow: `DELETE FROM ${t} WHERE write_seq = ?`,
  };
}

function stepList(t: string, after: string, withState: boolean): string {
  return `SELECT partition_key, app_id, sequence_id, position, ${withState ? "state" : "X'' AS state"}, status, created_at, write_seq
          FROM ${t} WHERE partition_key = ? AND app_id = ? ${after}
          ORDER BY sequence_id DESC, write_seq DESC LIMIT ?`;
}

/** A step's place in an app's history order: [sequence_id, write_seq]. */
type StepKey = [sequenceId: number, writeSeq: number];

const compareStepKeys = (a: StepKey, b: StepKey) => a[0] - b[0] || a[1] - b[1];

/** A listed step: the state row's columns, then its write_seq (the keyset's second half). */
type ListedRow = [...Row, writeSeq: number];

/** Where Prune stands: the app it is in (and below which step it goes on), null before the first. */
export interface PruneCursor {
  partitionKey: string;
  appId: string;
  /** Steps below this one are still to be examined; null: the app's cutoff is not known yet. */
  below: StepKey | null;
}

/**
 * The history calls' batches, each one transaction: what the async store sends to its writer
 * thread (so they are serialized with the saves) and the blocking store runs itself.
 */
export type HistoryBatch =
  | { op: "deleteApp"; partitionKey: string; appId: string; bound: number | null; after: StepKey; batchSize: number }
  | { op: "deletePartition"; partitionKey: string; bound: number | null; after: number; batchSize: number }
  | { op: "forgetApps"; partitionKey: string; after: string; batchSize: number }
  | { op: "prune"; rule: PruneRule; cursor: PruneCursor | null; batchSize: number };

export interface BatchOutcome {
  deleted: number;
  /** Apps that left the listing (DeletePartition). */
  forgotten?: number;
  /** Where the next batch starts; null: the call is done. */
  next: unknown;
  /** The write_seq bound the call fixed in its first batch. */
  bound?: number;
}

/**
 * DeleteApp, DeletePartition and Prune as sequences of batches (yielded; each batch's outcome is
 * sent back). The blocking store runs them in a loop; the async one sends each to the writer.
 */
function* deleteAppPlan(partitionKey: string, appId: string, batchSize: number): Generator<HistoryBatch, number, BatchOutcome> {
  let total = 0;
  let bound: number | null = null;
  let after: StepKey = [-1, 0];
  for (;;) {
    const outcome: BatchOutcome = yield { op: "deleteApp", partitionKey, appId, bound, after, batchSize };
    total += outcome.deleted;
    bound = outcome.bound ?? bound;
    if (outcome.next === null) return total;
    after = outcome.next as StepKey;
  }
}

function* deletePartitionPlan(partitionKey: string, batchSize: number): Generator<HistoryBatch, { stepsDeleted: number; appsDeleted: number }, BatchOutcome> {
  let stepsDeleted = 0;
  let appsDeleted = 0;
  let bound: number | null = null;
  let after = 0;
  for (;;) {
    const outcome: BatchOutcome = yield { op: "deletePartition", partitionKey, bound, after, batchSize };
    stepsDeleted += outcome.deleted;
    appsDeleted += outcome.forgotten ?? 0;
    bound = outcome.bound ?? bound;
    if (outcome.next === null) break;
    after = outcome.next as number;
  }
  // Apps listed with no step in the partition at all (none of this store's doing), a page at a time.
  let afterApp = "";
  for (;;) {
    const outcome: BatchOutcome = yield { op: "forgetApps", partitionKey, after: afterApp, batchSize };
    appsDeleted += outcome.deleted;
    if (outcome.next === null) return { stepsDeleted, appsDeleted };
    afterApp = outcome.next as string;
  }
}

function* prunePlan(rule: PruneRule, batchSize: number): Generator<HistoryBatch, number, BatchOutcome> {
  let total = 0;
  let cursor: PruneCursor | null = null;
  for (;;) {
    const outcome: BatchOutcome = yield { op: "prune", rule, cursor, batchSize };
    total += outcome.deleted;
    if (outcome.next === null) return total;
    cursor = outcome.next as PruneCursor;
  }
}

/** Runs a plan to its end, each batch at once (the blocking store). */
function runPlan<T>(plan: Generator<HistoryBatch, T, BatchOutcome>, apply: (batch: HistoryBatch) => BatchOutcome): T {
  let step = plan.next(undefined as never);
  while (!step.done) step = plan.next(apply(step.value));
  return step.value;
}

/** The three files of a database in WAL mode. */
type FileRole = "db" | "wal" | "shm";
const roles: FileRole[] = ["db", "wal", "shm"];

/** Each file's device and inode ("dev:ino") as a connection found them when it opened. */
export type FileIdentities = Partial<Record<FileRole, string>>;

/** How a connection watches its files (see SqliteSyncBackend.checkFiles). */
export interface FileWatch {
  /** The identities another connection of this process found: this one must open the same files. */
  expected?: FileIdentities;
  /**
   * On finding its files deleted or replaced, copy the database as this connection still sees it
   * (every commit made) to PATH.salvaged-TIME, next to the path. Default true.
   */
  salvage?: boolean;
  /** Open only an existing file: a second connection must not create a new one where the first was deleted. */
  mustExist?: boolean;
}

/** Reads re-check the files' identities at most this often (3 stat calls); the -shm's writability on every read (1 access call). */
const readCheckMs = 10;

/** The paths to watch, or null for a database that has no files (in memory, or a URI SQLite resolves itself). */
function watchedFiles(path: string): Record<FileRole, string> | null {
  if (path === "" || path === ":memory:" || path.startsWith("file:")) return null;
  // SQLite names the -wal and -shm files after the real path (symbolic links resolved).
  let real = path;
  try {
    real = fs.realpathSync(path);
  } catch {
    // Not there yet: SQLite creates it where the path says.
  }
  return { db: path, wal: `${real}-wal`, shm: `${real}-shm` };
}

const identityOf = (file: string): string | null => {
  const found = fs.statSync(file, { bigint: true, throwIfNoEntry: false });
  return found ? `${found.dev}:${found.ino}` : null;
};

/** Why the file cannot be written (the error code: "EACCES", "EPERM", "EROFS"), or null when it can (or is absent). */
function unwritable(file: string): string | null {
  try {
    fs.accessSync(file, fs.constants.W_OK);
    return null;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return null;
    return code ?? String(error);
  }
}

/** Errors that mean "the store's files are gone for good": remembered, and never cleared by a later check. */
const lostErrors = new WeakSet<Error>();
export const isFilesLost = (error: unknown) => error instanceof Error && lostErrors.has(error);

/** Blocking SQLite store: what embedded synchronous users and the async wrapper both drive. */
export class SqliteSyncBackend implements SyncBackend, SyncHistoryBackend {
  readonly kind = "sqlite";
  readonly db: Database.Database;
  private readonly table: string;
  private statements: ReturnType<SqliteSyncBackend["prepare"]> | null = null;
  private readonly files: Record<FileRole, string> | null;
  private readonly identities: FileIdentities = {};
  private readonly salvages: boolean;
  /** Set once the files are found deleted or replaced: every later call throws it. */
  private lost: PersisterError | null = null;
  private readCheckedAt = 0;
  /** Set at the end of the constructor: a connection that opened the wrong file has nothing to salvage. */
  private opened = false;

  constructor(
    readonly options: SqliteOptions,
    watch: FileWatch = {},
  ) {
    this.table = checkIdentifier("table name", options.table ?? "burr_state");
    this.files = watchedFiles(options.path);
    this.salvages = watch.salvage ?? true;
    try {
      // SQLite opens a file it cannot write read-only without a word, and its saves would fail
      // later: refuse now, saying which file.
      this.checkIdentities(watch.expected ?? {});
      this.checkWritable(roles);
      this.db = new Database(options.path, { fileMustExist: watch.mustExist ?? false });
      try {
        this.db.pragma("journal_mode = WAL");
        this.db.pragma(`synchronous = ${options.synchronous === "normal" ? "NORMAL" : "FULL"}`);
        this.db.pragma("busy_timeout = 5000");
        this.migrate();
        // The -wal and -shm files exist from the first read on.
        this.checkIdentities(watch.expected ?? {});
        this.checkWritable(roles);
        this.opened = true;
      } catch (error) {
        this.db.close();
        throw error;
      }
    } catch (error) {
      if (error instanceof PersisterError) throw error;
      throw unavailable(this.what, this.explained(error));
    }
  }

  private get what() {
    return `the SQLite database ${this.options.path}`;
  }

  /** The files' identities as this connection found them at open, for another connection to compare with. */
  fileIdentities(): FileIdentities {
    return { ...this.identities };
  }

  /**
   * Throws UNAVAILABLE when the store's files are not the ones this connection opened (deleted, or
   * another file moved to the path: remembered, see lose()) or cannot be written (not remembered:
   * fixing the permissions or attributes brings the store back). "write" checks every file
   * (before a commit; the database, -wal and -shm are written); "read" checks the -shm (readers
   * write to it: a write to a mapped -shm made immutable ends the process with SIGBUS, so it is
   * checked before every read) and the identities (at most every readCheckMs); "probe" checks all.
   */
  checkFiles(kind: "write" | "read" | "probe"): void {
    if (this.lost) throw this.lost;
    if (!this.files) return;
    if (kind === "read") {
      this.checkWritable(["shm"]);
      const now = Date.now();
      if (now - this.readCheckedAt < readCheckMs) return;
      this.checkIdentities();
      this.readCheckedAt = now;
      return;
    }
    this.checkIdentities();
    this.checkWritable(roles);
  }

  /** Each file must still be the one first seen (learning files seen for the first time, or the expected ones). */
  private checkIdentities(expected: FileIdentities = {}): void {
    if (this.lost) throw this.lost;
    if (!this.files) return;
    for (const role of roles) {
      const file = this.files[role];
      const known = this.identities[role] ?? expected[role];
      const found = identityOf(file);
      if (found === null) {
        if (known) this.lose(file, "deleted");
      } else if (!known) {
        this.identities[role] = found;
      } else if (found !== known) {
        this.lose(file, "replaced by another file");
      } else {
        this.identities[role] = found;
      }
    }
  }

  private checkWritable(which: FileRole[]): void {
    if (!this.files) return;
    for (const role of which) {
      const file = this.files[role];
      const why = unwritable(file);
      if (why) throw unavailable(this.what, `${file} cannot be written (${why})`);
    }
  }

  /**
   * The files this connection has open are no longer at their paths: nothing written from now on
   * would survive a restart, so nothing more is written or read. What the open files hold (every
   * commit, acknowledged or not) is copied next to the path first, when this connection salvages.
   */
  private lose(file: string, how: string): never {
    let message = `${file} was ${how} while the database was open: no save is acknowledged from now on`;
    if (this.salvages && this.opened && this.db.open) {
      const copy = `${this.options.path}.salvaged-${new Date().toISOString().replace(/[-:.]/g, "")}`;
      try {
        this.db.prepare("VACUUM INTO ?").run(copy);
        message += `; the database as last committed was copied to ${copy} (to keep its states, move that file to ${this.options.path}, with no -wal or -shm file beside it, before the restart)`;
      } catch (error) {
        message += `; copying the database as last committed to ${copy} failed (${(error as Error).message}): its states are lost when the server stops`;
      }
    }
    this.removeStaleCompanions();
    const error = unavailable(this.what, `${message}; restart the server`);
    lostErrors.add(error);
    this.lost = error;
    throw error;
  }

  /**
   * When the database file itself was deleted or replaced, SQLite will not checkpoint or remove
   * its -wal and -shm at close (the database "moved"). Left at the path, a new database there
   * would take that -wal's pages for its own and be corrupted: remove them, as long as they are
   * still the ones this connection opened (this process keeps them open; the copy holds their data).
   */
  private removeStaleCompanions(): void {
    if (!this.files || identityOf(this.files.db) === this.identities.db) return;
    for (const role of ["wal", "shm"] as const) {
      const file = this.files[role];
      if (this.identities[role] && identityOf(file) === this.identities[role]) fs.rmSync(file, { force: true });
    }
  }

  /** The error, with what the files say about it (which one cannot be written, a directory that cannot take new files). */
  private explained(error: unknown): Error {
    const original = error instanceof Error ? error : new Error(String(error));
    if (!this.files) return original;
    const notes: string[] = [];
    for (const role of roles) {
      const why = unwritable(this.files[role]);
      if (why) notes.push(`${this.files[role]} cannot be written: ${why}`);
    }
    if (!fs.existsSync(this.files.wal) || !fs.existsSync(this.files.db)) {
      const dir = nodePath.dirname(this.files.wal);
      const why = fs.existsSync(dir) ? unwritable(dir) : "ENOENT";
      if (why) notes.push(`the directory ${dir} cannot take new files: ${why}`);
    }
    return notes.length === 0 ? original : new Error(`${original.message} (${notes.join("; ")})`, { cause: error });
  }

  /**
   * The store can serve now: its files are the ones opened and writable, a read answers, and
   * (with `writeLock`, on the connection that writes) no other process holds the write lock for
   * longer than the busy timeout.
   */
  probe(writeLock = true): void {
    this.checkFiles("probe");
    this.run(() => {
      this.db.prepare("SELECT count(*) FROM sqlite_master").get();
      // Taken and released at once: waits (up to the busy timeout) while another connection writes.
      if (writeLock) this.db.exec("BEGIN IMMEDIATE; ROLLBACK");
    });
  }

  initialize(): void {
    this.checkFiles("write");
    const t = this.table;
    this.run(() => this.db.exec(`
      ${createStatesTable(t)}
      ${createStatesIndexes(t)}
      CREATE TABLE IF NOT EXISTS ${t}_apps (
        partition_key TEXT NOT NULL,
        app_id TEXT NOT NULL,
        last_write INTEGER NOT NULL,
        PRIMARY KEY (partition_key, app_id)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS ${t}_apps_recent ON ${t}_apps (partition_key, last_write);
    `));
    this.statements = null;
  }

  /**
   * Brings a table made by an older version up to date. Version 1 allowed only the statuses
   * "completed" and "failed" (a CHECK constraint); any string is allowed now. SQLite cannot drop
   * a constraint, so the table is rebuilt in one transaction (write_seq values kept). Version 2
   * had no `<table>_steps` index: it is built (and `<table>_app_step`, which it extends, dropped)
   * in one transaction; Initialize does the same with IF NOT EXISTS.
   */
  private migrate(): void {
    const t = this.table;
    const found = this.db.prepare("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?").get(t) as { sql: string } | undefined;
    if (!found) return;
    if (!/CHECK \(status IN/.test(found.sql)) {
      // Version 2 tables lack <table>_steps (History): made once, by the first connection that opens them.
      const indexed = this.db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'index' AND name = ?").get(`${t}_steps`) as { n: number };
      if (indexed.n === 0) this.db.transaction(() => this.db.exec(createStatesIndexes(t))).immediate();
      return;
    }
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
    this.checkFiles("read");
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
      stepsFirst: this.db.prepare(sql.stepsFirst).raw(),
      stepsNext: this.db.prepare(sql.stepsNext).raw(),
      stepsFirstWithState: this.db.prepare(sql.stepsFirstWithState).raw(),
      stepsNextWithState: this.db.prepare(sql.stepsNextWithState).raw(),
      partitionBound: this.db.prepare(sql.partitionBound).pluck(),
      deleteAppRows: this.db.prepare(sql.deleteAppRows).raw(),
      deletePartitionRows: this.db.prepare(sql.deletePartitionRows).raw(),
      forgetApp: this.db.prepare(sql.forgetApp),
      partitionApps: this.db.prepare(sql.partitionApps).pluck(),
      anyApps: this.db.prepare(sql.anyApps).raw(),
      pruneCutoff: this.db.prepare(sql.pruneCutoff).raw(),
      pruneCandidates: this.db.prepare(sql.pruneCandidates).raw(),
      deleteRow: this.db.prepare(sql.deleteRow),
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
      if (["SQLITE_BUSY", "SQLITE_IOERR", "SQLITE_FULL", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM"].some((code) => isSqliteError(error, code))) {
        throw unavailable(this.what, this.explained(error));
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
    this.checkFiles("write");
    const outcomes = this.run(() =>
      this.db.transaction(() => {
        const { insertRow } = this.sql;
        return rows.map((row) => {
          const createdAt = row.createdAt?.getTime() ?? Date.now();
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
    // Committed, not yet acknowledged: if the files went away meanwhile, the commit went with
    // them, and no caller may be told it is stored.
    this.checkIdentities();
    return outcomes;
  }

  load(key: LoadKey): StoredRow | null {
    this.checkFiles("read");
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
    this.checkFiles("read");
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

  /** A page of the app's steps, newest first, from after the [sequence_id, write_seq] key `after`. */
  stepPage(key: StepsKey, pageSize: number, after: StepCursor | null): { rows: StoredRow[]; next: StepCursor | null } {
    this.checkFiles("read");
    return this.run(() => {
      const sql = this.sql;
      const from = (after as StepKey | null) ?? (key.beforeSequenceId === null ? null : [key.beforeSequenceId, 0]);
      const rows = (
        from === null
          ? (key.includeState ? sql.stepsFirstWithState : sql.stepsFirst).all(key.partitionKey, key.appId, pageSize)
          : (key.includeState ? sql.stepsNextWithState : sql.stepsNext).all(key.partitionKey, key.appId, from[0], from[1], pageSize)
      ) as ListedRow[];
      const last = rows[rows.length - 1];
      return {
        rows: rows.map((row) => toStored(row as unknown as Row)!),
        next: rows.length === pageSize && last ? ([last[2], last[7]] satisfies StepKey) : null,
      };
    });
  }

  deleteApp(partitionKey: string, appId: string, batchSize: number): number {
    return runPlan(deleteAppPlan(partitionKey, appId, batchSize), (batch) => this.applyBatch(batch));
  }

  deletePartition(partitionKey: string, batchSize: number): { stepsDeleted: number; appsDeleted: number } {
    return runPlan(deletePartitionPlan(partitionKey, batchSize), (batch) => this.applyBatch(batch));
  }

  prune(rule: PruneRule, batchSize: number): number {
    return runPlan(prunePlan(rule, batchSize), (batch) => this.applyBatch(batch));
  }

  /**
   * One batch of DeleteApp, DeletePartition or Prune, in one IMMEDIATE transaction: it holds the
   * write lock from its first statement, so no save (of this or any other connection) commits
   * between its statements, and it deletes at most batch.batchSize rows.
   */
  applyBatch(batch: HistoryBatch): BatchOutcome {
    this.checkFiles("write");
    const outcome = this.run(() => this.db.transaction(() => this.batchWork(batch)).immediate());
    // As for saves: a commit into files that went away is not reported done.
    this.checkIdentities();
    return outcome;
  }

  private batchWork(batch: HistoryBatch): BatchOutcome {
    const sql = this.sql;
    switch (batch.op) {
      case "deleteApp": {
        const { partitionKey, appId, batchSize } = batch;
        // Fixed by the first batch: steps written after the delete began are not its to delete.
        const bound = batch.bound ?? ((sql.partitionBound.get(partitionKey) as number | undefined) ?? 0);
        const rows = sql.deleteAppRows.all(partitionKey, appId, batch.after[0], batch.after[1], bound, batchSize) as StepKey[];
        // In this same transaction (no save commits in between), the app leaves the listing if no
        // step of it is left (a save that landed during the delete keeps it listed): no commit
        // ever shows it listed without steps. An index probe, cheap enough for every batch.
        const forgotten = sql.forgetApp.run(partitionKey, appId, partitionKey, appId).changes > 0;
        if (rows.length < batchSize || forgotten) return { deleted: rows.length, next: null, bound };
        return { deleted: rows.length, next: rows.reduce((a, b) => (compareStepKeys(a, b) >= 0 ? a : b)), bound };
      }
      case "deletePartition": {
        const bound = batch.bound ?? ((sql.partitionBound.get(batch.partitionKey) as number | undefined) ?? 0);
        const deleted = sql.deletePartitionRows.all(batch.partitionKey, batch.after, bound, batch.batchSize) as Array<[writeSeq: number, appId: string]>;
        // As for DeleteApp: each app whose last step went leaves the listing in the same transaction.
        let forgotten = 0;
        for (const appId of new Set(deleted.map(([, appId]) => appId))) forgotten += sql.forgetApp.run(batch.partitionKey, appId, batch.partitionKey, appId).changes;
        const last = deleted.reduce((max, [writeSeq]) => Math.max(max, writeSeq), 0);
        return { deleted: deleted.length, forgotten, next: deleted.length < batch.batchSize ? null : last, bound };
      }
      case "forgetApps": {
        // The partition's apps, a page at a time by primary key: each leaves the listing if it has no step left.
        const apps = sql.partitionApps.all(batch.partitionKey, batch.after, batch.batchSize) as string[];
        let forgotten = 0;
        for (const appId of apps) forgotten += sql.forgetApp.run(batch.partitionKey, appId, batch.partitionKey, appId).changes;
        return { deleted: forgotten, next: apps.length < batch.batchSize ? null : apps[apps.length - 1]! };
      }
      case "prune":
        return this.pruneWork(batch.rule, batch.cursor, batch.batchSize);
    }
  }

  /**
   * Prune, app after app (in primary key order of <table>_apps): each app's cutoff is its
   * keep_last-th newest step (its highest for older_than alone), and the steps below it are
   * examined newest first, those created before older_than deleted. Examining a step or finding a
   * cutoff costs one unit of the batch size, so one transaction does bounded work even where
   * nothing is deleted; it stops mid-app, and the cursor says where to go on.
   */
  private pruneWork(rule: PruneRule, cursor: PruneCursor | null, batchSize: number): BatchOutcome {
    const sql = this.sql;
    const offset = (rule.keepLast ?? 1) - 1;
    const olderThan = rule.olderThan === null ? Number.POSITIVE_INFINITY : rule.olderThan.getTime();
    let budget = batchSize;
    let deleted = 0;
    let at: PruneCursor | null = cursor ?? this.nextPruneApp(rule, null);
    while (at !== null && budget > 0) {
      let below = at.below;
      if (below === null) {
        budget--;
        below = (sql.pruneCutoff.get(at.partitionKey, at.appId, offset) as StepKey | undefined) ?? null;
        // Fewer steps than keep_last (or just one): nothing of this app goes.
        if (below === null) {
          at = this.nextPruneApp(rule, at);
          continue;
        }
        at = { ...at, below };
        if (budget === 0) break;
      }
      const asked = budget;
      const rows = sql.pruneCandidates.all(at.partitionKey, at.appId, below[0], below[1], asked) as Array<[sequenceId: number, writeSeq: number, createdAt: number]>;
      for (const [, writeSeq, createdAt] of rows) if (createdAt < olderThan) deleted += sql.deleteRow.run(writeSeq).changes;
      budget -= rows.length;
      const last = rows[rows.length - 1];
      at = rows.length < asked || !last ? this.nextPruneApp(rule, at) : { ...at, below: [last[0], last[1]] };
    }
    return { deleted, next: at };
  }

  /** The app after `at` in the rule's scope (one app, one partition's, or every partition's), null after the last. */
  private nextPruneApp(rule: PruneRule, at: PruneCursor | null): PruneCursor | null {
    if (rule.appId !== null) return at === null ? { partitionKey: rule.partitionKey ?? "", appId: rule.appId, below: null } : null;
    if (rule.partitionKey !== null) {
      const appId = this.sql.partitionApps.get(rule.partitionKey, at?.appId ?? "", 1) as string | undefined;
      return appId === undefined ? null : { partitionKey: rule.partitionKey, appId, below: null };
    }
    const next = this.sql.anyApps.get(at?.partitionKey ?? "", at?.appId ?? "", 1) as [string, string] | undefined;
    return next ? { partitionKey: next[0], appId: next[1], below: null } : null;
  }

  close(): void {
    if (this.db.open) this.db.close();
    if (this.lost) this.removeStaleCompanions();
  }
}

/** A save's outcome as it crosses from the writer thread: when it was stored, or what to throw. */
type WriteOutcome = { at: number } | { code: Code; message: string; lost?: true } | { failure: string };

function toOutcome(result: Date | Error): WriteOutcome {
  if (result instanceof Date) return { at: result.getTime() };
  if (result instanceof PersisterError) return isFilesLost(result) ? { code: result.code, message: result.message, lost: true } : { code: result.code, message: result.message };
  return { failure: result.message };
}

function fromOutcome(outcome: WriteOutcome): Date | Error {
  if ("at" in outcome) return new Date(outcome.at);
  if ("code" in outcome) {
    const error = new PersisterError(outcome.code, outcome.message);
    if (outcome.lost) lostErrors.add(error);
    return error;
  }
  return new Error(outcome.failure);
}

/** What the writer thread is asked (in order) and answers (in the same order). */
type WriterRequest = { kind: "write"; rows: SaveRow[] } | { kind: "probe" } | { kind: "history"; batch: HistoryBatch };
type WriterReply = { outcomes: WriteOutcome[] } | { probe: WriteOutcome | null } | { history: BatchOutcome } | { historyFailed: WriteOutcome };

/** Marks the worker this module starts for itself (see the end of the file). */
const writerRole = "burr-sqlite-writer";

interface WriterData {
  role: typeof writerRole;
  options: SqliteOptions;
  /** The files as the caller's connection opened them: the thread's connection must open the same. */
  identities: FileIdentities;
}

/**
 * A thread that commits batches of saves on a connection of its own, so that the commit's
 * fsync (and SQLite's WAL checkpoints, which run on commit) never block the event loop that
 * serves every other call. Reads stay on the caller's connection: WAL lets them run while a
 * commit is in flight, and a save is answered only once its commit is done, so a load that
 * follows it sees it.
 */
class WriterThread {
  private current: { worker: Worker; waiting: Array<{ resolve: (reply: WriterReply) => void; reject: (error: unknown) => void }> } | null = null;

  constructor(
    private readonly options: SqliteOptions,
    private readonly identities: FileIdentities,
  ) {}

  private start() {
    // Under tsx or ts-jest this module is TypeScript: the thread needs the same loader.
    const data: WriterData = { role: writerRole, options: this.options, identities: this.identities };
    const worker = new Worker(__filename, { workerData: data, execArgv: __filename.endsWith(".ts") ? ["--require", "tsx/cjs"] : [] });
    const thread = { worker, waiting: [] as Array<{ resolve: (reply: WriterReply) => void; reject: (error: unknown) => void }> };
    worker.on("message", (reply: WriterReply) => {
      const next = thread.waiting.shift();
      // Referenced only while something is asked, so an idle store never keeps the process alive.
      if (thread.waiting.length === 0) worker.unref();
      next?.resolve(reply);
    });
    const lost = (error: unknown) => {
      if (this.current === thread) this.current = null;
      const waiting = thread.waiting.splice(0);
      for (const request of waiting) request.reject(unavailable("the SQLite writer thread", error));
    };
    worker.on("error", lost);
    worker.on("exit", (code) => lost(new Error(`it exited with code ${code}`)));
    return thread;
  }

  private ask(request: WriterRequest, transfer: ArrayBuffer[] = []): Promise<WriterReply> {
    return new Promise((resolve, reject) => {
      this.current ??= this.start();
      this.current.waiting.push({ resolve, reject });
      this.current.worker.ref();
      this.current.worker.postMessage(request, transfer);
    });
  }

  /** Commits the rows in one transaction. */
  async write(rows: SaveRow[]): Promise<WriteOutcome[]> {
    // A state is often a view into a larger buffer (the request's network read): posting the
    // view would copy all of that buffer. Each state goes as a copy of its own bytes, moved
    // (not copied again) to the thread. `new Uint8Array(view)` copies; a Buffer's slice() would
    // not, and moving its memory would empty the caller's buffer.
    const states = rows.map((row) => new Uint8Array(row.state));
    const reply = await this.ask(
      { kind: "write", rows: rows.map((row, i) => ({ ...row, state: states[i]! })) },
      states.map((state) => state.buffer as ArrayBuffer),
    );
    return (reply as { outcomes: WriteOutcome[] }).outcomes;
  }

  /** Runs one batch of a delete or prune, in its turn among the saves (the thread serves requests in order). */
  async history(batch: HistoryBatch): Promise<BatchOutcome> {
    const reply = (await this.ask({ kind: "history", batch })) as { history: BatchOutcome } | { historyFailed: WriteOutcome };
    if ("historyFailed" in reply) throw fromOutcome(reply.historyFailed);
    return reply.history;
  }

  /** The thread's connection can write: its files are the ones opened and writable, the write lock can be taken. */
  async probe(): Promise<void> {
    const reply = (await this.ask({ kind: "probe" })) as { probe: WriteOutcome | null };
    if (reply.probe) throw fromOutcome(reply.probe);
  }

  async close(): Promise<void> {
    const thread = this.current;
    this.current = null;
    await thread?.worker.terminate();
  }
}

/** The writer thread's side: saves each batch it is sent with the blocking store, answers outcomes. */
function serveWrites(data: WriterData): void {
  // Opened on the first request, and again after a failed open (a file that could not be written
  // then may be writable now). Never creates the file: the caller's connection did.
  let store: SqliteSyncBackend | null = null;
  parentPort!.on("message", (request: WriterRequest) => {
    let reply: WriterReply;
    try {
      store ??= new SqliteSyncBackend(data.options, { expected: data.identities, mustExist: true, salvage: true });
      if (request.kind === "probe") {
        store.probe();
        reply = { probe: null };
      } else if (request.kind === "history") {
        reply = { history: store.applyBatch(request.batch) };
      } else {
        reply = { outcomes: store.saveMany(request.rows).map(toOutcome) };
      }
    } catch (error) {
      const outcome = toOutcome(error instanceof Error ? error : new Error(String(error)));
      reply =
        request.kind === "probe" ? { probe: outcome } : request.kind === "history" ? { historyFailed: outcome } : { outcomes: request.rows.map(() => outcome) };
    }
    parentPort!.postMessage(reply);
  });
}

/**
 * The same store for async callers (the server). Saves that arrive while a batch is being
 * committed are committed together next, in one transaction: one fsync for many concurrent
 * saves. A file store commits on its writer thread; an in-memory one (which a second
 * connection cannot open) commits on this thread.
 */
export class SqliteBackend implements Backend, HistoryBackend {
  readonly kind = "sqlite";
  private pending: Array<{ row: SaveRow; resolve: (date: Date) => void; reject: (error: unknown) => void }> = [];
  private flushing: Promise<void> | null = null;
  private readonly writer: WriterThread | null;
  /** Set once the writer thread found the files deleted or replaced (its message names the salvaged copy). */
  private lost: Error | null = null;
  /** Deletes and prunes under way (see readerTurn()). */
  private deleting = 0;
  /** The writer thread's current batch of a delete or prune, which close() lets finish. */
  private batchInFlight: Promise<unknown> | null = null;
  private closing = false;

  constructor(readonly sync: SqliteSyncBackend) {
    const path = sync.options.path;
    const inMemory = path === "" || path === ":memory:" || path.startsWith("file::memory:") || /[?&]mode=memory\b/.test(path);
    this.writer = inMemory ? null : new WriterThread(sync.options, sync.fileIdentities());
  }

  async initialize() {
    this.sync.initialize();
  }

  async isInitialized() {
    if (this.lost) throw this.lost;
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
      this.lost ??= results.find(isFilesLost) as Error | undefined ?? null;
      results.forEach((result, i) => (result instanceof Error ? batch[i]!.reject(result) : batch[i]!.resolve(result)));
    }
    this.flushing = null;
  }

  async load(key: LoadKey) {
    await this.readerTurn();
    if (this.lost) throw this.lost;
    return this.sync.load(key);
  }

  /**
   * Reads run on this thread at once (no I/O to wait for), so a caller that reads in a loop
   * would only ever wait on promises already resolved, and the writer thread's answers (events)
   * would never be handled: a delete would wait forever. While a delete or prune runs, each read
   * first lets the event loop turn.
   */
  private async readerTurn(): Promise<void> {
    if (this.deleting > 0) await new Promise((resolve) => setImmediate(resolve));
  }

  async *appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]> {
    let cursor: AppIdCursor | null = null;
    do {
      await this.readerTurn();
      if (this.lost) throw this.lost;
      const page = this.sync.appIdPage(partitionKey, pageSize, cursor);
      if (page.ids.length > 0) yield page.ids;
      cursor = page.next;
    } while (cursor !== null);
  }

  /** Read on this thread's connection, a page at a time (WAL: never blocked by the writer). */
  async *stepPages(key: StepsKey, pageSize: number): AsyncIterable<StoredRow[]> {
    let cursor: StepCursor | null = null;
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    do {
      await this.readerTurn();
      if (this.lost) throw this.lost;
      const page = this.sync.stepPage(key, Math.min(pageSize, left), cursor);
      if (page.rows.length > 0) yield page.rows;
      left -= page.rows.length;
      cursor = page.next;
    } while (cursor !== null && left > 0);
  }

  deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number> {
    return this.runBatches(deleteAppPlan(partitionKey, appId, batchSize));
  }

  deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    return this.runBatches(deletePartitionPlan(partitionKey, batchSize));
  }

  prune(rule: PruneRule, batchSize: number): Promise<number> {
    return this.runBatches(prunePlan(rule, batchSize));
  }

  /**
   * Each batch goes to the writer thread like a batch of saves, so deletes and saves commit one
   * transaction at a time, in the order asked; between two batches of a delete the saves that
   * arrived meanwhile commit, and reads never wait (WAL). An in-memory store runs each batch on
   * this thread, one per turn of the event loop.
   */
  private async runBatches<T>(plan: Generator<HistoryBatch, T, BatchOutcome>): Promise<T> {
    this.deleting++;
    try {
      return await this.runEachBatch(plan);
    } finally {
      this.deleting--;
    }
  }

  private async runEachBatch<T>(plan: Generator<HistoryBatch, T, BatchOutcome>): Promise<T> {
    let step = plan.next(undefined as never);
    while (!step.done) {
      if (this.lost) throw this.lost;
      if (this.closing) throw unavailable("the SQLite database", new Error("the store was closed"));
      let outcome: BatchOutcome;
      try {
        if (this.writer) {
          const asked = this.writer.history(step.value);
          this.batchInFlight = asked;
          outcome = await asked;
        } else {
          await new Promise((resolve) => setImmediate(resolve));
          outcome = this.sync.applyBatch(step.value);
        }
      } catch (error) {
        if (isFilesLost(error)) this.lost ??= error as Error;
        throw error;
      }
      step = plan.next(outcome);
    }
    return step.value;
  }

  /** Both connections: the writer thread's (which copies the database away if its files are gone) first, then this one's. */
  async probe(): Promise<void> {
    if (this.lost) throw this.lost;
    try {
      await this.writer?.probe();
    } catch (error) {
      if (isFilesLost(error)) this.lost ??= error as Error;
      throw error;
    }
    // This thread must never wait for the write lock: its connection only reads (unless in memory).
    this.sync.probe(!this.writer);
  }

  /** Saves already accepted are committed first. */
  async close() {
    this.closing = true;
    while (this.flushing) await this.flushing;
    // A delete or prune under way ends after its current batch (UNAVAILABLE), never mid-batch.
    await this.batchInFlight?.catch(() => {});
    await this.writer?.close();
    this.sync.close();
  }
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === writerRole) {
  serveWrites(workerData as WriterData);
}

export async function openSqlite(url: string): Promise<Backend> {
  // The writer thread copies the database away if its files go (see SqliteSyncBackend.lose); this connection only reads.
  return new SqliteBackend(new SqliteSyncBackend(parseSqliteUrl(url), { salvage: false }));
}
