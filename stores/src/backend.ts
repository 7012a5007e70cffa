/**
 * What one database module implements. Backends receive only checked, normalized input
 * (see validation.ts) and know nothing of gRPC; they throw PersisterError for the cases the
 * contract names (ALREADY_EXISTS, UNAVAILABLE, FAILED_PRECONDITION) and may throw anything
 * else for real bugs.
 */
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";

export interface StoredRow {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  position: string;
  state: Uint8Array;
  status: Status;
  createdAt: Date;
}

export interface Backend {
  /** "sqlite", "postgres", ... for logs and errors. */
  readonly kind: string;
  initialize(): Promise<void>;
  isInitialized(): Promise<boolean>;
  /** Stores the row atomically, or throws ALREADY_EXISTS leaving the stored one intact. */
  save(row: SaveRow): Promise<Date>;
  load(key: LoadKey): Promise<StoredRow | null>;
  /**
   * The partition's app ids, most recently written first, each once, in pages of at most
   * pageSize read from the database one at a time (never the whole list in memory).
   */
  appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]>;
  /**
   * Resolves when the store can serve now; throws UNAVAILABLE saying why otherwise. Cheap (one
   * round trip, or a few file checks): the server runs it at start and every few seconds for its
   * health status. PostgreSQL: SELECT 1; Redis: PING; MongoDB: the ping command; SQLite: the
   * database files are still the ones opened, and writable.
   */
  probe(): Promise<void>;
  close(): Promise<void>;
}

/**
 * History and deletion (issue 13). Deletes run in batches of at most `batchSize` rows, each its
 * own transaction (or script), so other calls are never stalled behind one huge statement, and
 * a save racing a delete of its app either lands after it (and stays, with its app listed) or is
 * deleted with it: never a listed app without steps, never a step of an unlisted app.
 */
export interface HistoryBackend {
  /**
   * The app's steps newest first (sequence_id descending, then write order descending), in
   * pages of at most pageSize read one at a time through an index; `state` is empty unless
   * key.includeState. Stops after key.limit rows when it is set.
   */
  stepPages(key: StepsKey, pageSize: number): AsyncIterable<StoredRow[]>;
  /** Deletes every step of the app; the number deleted (0 for an unknown app). */
  deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number>;
  /** Deletes every app of the partition. */
  deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }>;
  /** Deletes the steps that meet every rule, never an app's highest step; the number deleted. */
  prune(rule: PruneRule, batchSize: number): Promise<number>;
}

/** Where a page of steps ended: opaque to everyone but the backend. */
export type StepCursor = unknown;

/** History and deletion, blocking (embedded SQLite). */
export interface SyncHistoryBackend {
  stepPage(key: StepsKey, pageSize: number, after: StepCursor | null): { rows: StoredRow[]; next: StepCursor | null };
  deleteApp(partitionKey: string, appId: string, batchSize: number): number;
  deletePartition(partitionKey: string, batchSize: number): { stepsDeleted: number; appsDeleted: number };
  prune(rule: PruneRule, batchSize: number): number;
}

/** A backend whose database calls block (embedded SQLite): usable from synchronous code. */
export interface SyncBackend {
  readonly kind: string;
  initialize(): void;
  isInitialized(): boolean;
  save(row: SaveRow): Date;
  load(key: LoadKey): StoredRow | null;
  appIdPage(partitionKey: string, pageSize: number, after: AppIdCursor | null): { ids: string[]; next: AppIdCursor | null };
  close(): void;
}

/** Where the previous page of a listing ended; opaque to everyone but the backend. */
export type AppIdCursor = unknown;
