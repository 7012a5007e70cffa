/**
 * What one database module implements. Backends receive only checked, normalized input
 * (see validation.ts) and know nothing of gRPC; they throw PersisterError for the cases the
 * contract names (ALREADY_EXISTS, UNAVAILABLE, FAILED_PRECONDITION) and may throw anything
 * else for real bugs.
 */
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, SaveRow } from "@burr-state/client/protocol";

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
  close(): Promise<void>;
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
