/**
 * The persister interface: what every backend offers in-process and what the clients offer
 * over gRPC. Swapping an embedded store for the remote server changes one line.
 */

/**
 * The outcome of the step whose state is saved. Burr writes "completed" or "failed"; like Burr's
 * own persisters, any other non-empty string is stored and returned exactly.
 */
export type Status = "completed" | "failed" | (string & {});

export interface SaveInput<S> {
  /** The partition (for example a user id). Absent, null and "" are the same partition. */
  partitionKey?: string | null;
  appId: string;
  /** Burr's step counter: an integer >= 0 (up to 2^53 - 1 here). */
  sequenceId: number;
  /** The action that just ran. */
  position: string;
  state: S;
  status: Status;
}

export interface LoadQuery {
  partitionKey?: string | null;
  /** Absent: the most recently written state of any app in the partition. */
  appId?: string | null;
  /** Absent: the highest sequence id of the app, whatever its status. */
  sequenceId?: number | null;
}

export interface PersistedState<S> {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  position: string;
  state: S;
  status: Status;
  createdAt: Date;
}

export interface SaveResult {
  createdAt: Date;
}

/** Which steps of an app to list (ListSteps). */
export interface ListStepsQuery {
  partitionKey?: string | null;
  appId: string;
  /** Only steps with a lower sequence id. */
  beforeSequenceId?: number | null;
  /** At most this many steps (absent or 0: all). */
  limit?: number | null;
  /** Include each step's state (default false: `state` is absent). */
  includeState?: boolean;
}

/** One step of an app's history; `state` only when the listing asked for it. */
export type StepInfo<S> = Omit<PersistedState<S>, "state"> & { state?: S };

/** Which steps to prune: those meeting every rule given (at least one). */
export interface PruneQuery {
  /** The partition; undefined: every partition (null or "": the default partition). */
  partitionKey?: string | null;
  /** Only this app (needs a partition). */
  appId?: string | null;
  /** Keep the newest N steps of each app (N >= 1). */
  keepLast?: number | null;
  /** Delete only steps created before this time. */
  olderThan?: Date | null;
}

export interface DeletePartitionResult {
  stepsDeleted: number;
  appsDeleted: number;
}

/** Promise-based persister (Burr's AsyncBaseStatePersister). */
export interface AsyncStatePersister<S> {
  /** Creates what the store needs. Idempotent. */
  initialize(): Promise<void>;
  isInitialized(): Promise<boolean>;
  /** Throws PersisterError ALREADY_EXISTS when the same four keys are stored. */
  save(input: SaveInput<S>): Promise<SaveResult>;
  /** null when nothing matches. */
  load(query: LoadQuery): Promise<PersistedState<S> | null>;
  /** Each app id of the partition once, most recently written first. */
  listAppIds(partitionKey?: string | null): Promise<string[]>;
  /** The same list as an async iterable, read from the store in pages. */
  streamAppIds(partitionKey?: string | null): AsyncIterable<string>;
  /** An app's steps, newest first (sequence id descending, then write order), read in pages. */
  listSteps(query: ListStepsQuery): AsyncIterable<StepInfo<S>>;
  /** Deletes every step of the app; resolves with how many. */
  deleteApp(partitionKey: string | null | undefined, appId: string): Promise<number>;
  /** Deletes every app of the partition. */
  deletePartition(partitionKey: string | null | undefined): Promise<DeletePartitionResult>;
  /** Deletes old steps, never an app's highest; resolves with how many. */
  prune(query: PruneQuery): Promise<number>;
  close(): Promise<void>;
}

/** Blocking persister (Burr's BaseStatePersister), for code that cannot await. */
export interface SyncStatePersister<S> {
  initialize(): void;
  isInitialized(): boolean;
  save(input: SaveInput<S>): SaveResult;
  load(query: LoadQuery): PersistedState<S> | null;
  listAppIds(partitionKey?: string | null): string[];
  listSteps(query: ListStepsQuery): Iterable<StepInfo<S>>;
  deleteApp(partitionKey: string | null | undefined, appId: string): number;
  deletePartition(partitionKey: string | null | undefined): DeletePartitionResult;
  prune(query: PruneQuery): number;
  close(): void;
}
