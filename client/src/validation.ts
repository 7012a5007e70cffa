/**
 * The input rules every backend shares, applied before a backend sees a call: a backend only
 * ever receives normalized, checked values.
 */
import { Code, PersisterError } from "./errors";
import type { ListStepsQuery, LoadQuery, PruneQuery, SaveInput, Status } from "./persister";

export interface Limits {
  /** Longest partition_key, app_id, position or status, in UTF-8 bytes. */
  maxKeyBytes: number;
  /** Largest state, in bytes. */
  maxStateBytes: number;
}

export const defaultLimits: Limits = {
  maxKeyBytes: 1024,
  maxStateBytes: 16 * 1024 * 1024 - 16 * 1024,
};

/** A save as backends receive it: partition "" for the default, everything checked. */
export interface SaveRow {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  position: string;
  state: Uint8Array;
  status: Status;
  /**
   * When the step was written, for rows copied from elsewhere (the import command); absent, the
   * store stamps its own time. Not on the wire: clients always get the store's time.
   */
  createdAt?: Date;
}

/** A load as backends receive it: exactly one of the three shapes Burr uses. */
export type LoadKey =
  | { kind: "step"; partitionKey: string; appId: string; sequenceId: number }
  | { kind: "app-latest"; partitionKey: string; appId: string }
  | { kind: "partition-latest"; partitionKey: string };

const invalid = (message: string) => new PersisterError(Code.INVALID_ARGUMENT, message);

function checkKey(field: string, value: unknown, limits: Limits, required: boolean): string {
  if (value === undefined || value === null) value = "";
  if (typeof value !== "string") throw invalid(`${field} must be a string`);
  if (required && value === "") throw invalid(`${field} must not be empty`);
  if (value.includes("\u0000")) throw invalid(`${field} must not contain NUL characters`);
  if (!value.isWellFormed()) throw invalid(`${field} must be valid Unicode (it has a lone surrogate)`);
  const bytes = Buffer.byteLength(value, "utf8");
  if (bytes > limits.maxKeyBytes) {
    throw invalid(`${field} is ${bytes} bytes long; the limit is ${limits.maxKeyBytes}`);
  }
  return value;
}

function checkSequenceId(value: unknown): number {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    throw invalid(`sequence_id must be an integer, got ${String(value)}`);
  }
  if (value < 0) throw invalid(`sequence_id must be >= 0, got ${value}`);
  if (!Number.isSafeInteger(value)) {
    throw invalid(`sequence_id must be at most ${Number.MAX_SAFE_INTEGER}, got ${value}`);
  }
  return value;
}

/** Any string a key may be: Burr's persisters store whatever status they are given. */
function checkStatus(value: unknown, limits: Limits): Status {
  if (typeof value !== "string") throw invalid(`status must be a string such as "completed" or "failed", got ${String(value)}`);
  return checkKey("status", value, limits, true);
}

function checkState(value: unknown, limits: Limits): Uint8Array {
  if (!(value instanceof Uint8Array)) throw invalid("state must be bytes");
  if (value.byteLength > limits.maxStateBytes) {
    throw new PersisterError(
      Code.RESOURCE_EXHAUSTED,
      `state is ${value.byteLength} bytes; the limit is ${limits.maxStateBytes}`,
    );
  }
  return value;
}

export function checkSave(input: SaveInput<Uint8Array>, limits: Limits = defaultLimits): SaveRow {
  if (input === null || typeof input !== "object") throw invalid("save needs a request object");
  return {
    partitionKey: checkKey("partition_key", input.partitionKey, limits, false),
    appId: checkKey("app_id", input.appId, limits, true),
    sequenceId: checkSequenceId(input.sequenceId),
    position: checkKey("position", input.position, limits, true),
    state: checkState(input.state, limits),
    status: checkStatus(input.status, limits),
  };
}

export function checkLoad(query: LoadQuery, limits: Limits = defaultLimits): LoadKey {
  if (query === null || typeof query !== "object") throw invalid("load needs a query object");
  const partitionKey = checkKey("partition_key", query.partitionKey, limits, false);
  const appId = checkKey("app_id", query.appId, limits, false);
  const hasStep = query.sequenceId !== undefined && query.sequenceId !== null;
  if (appId === "") {
    if (hasStep) throw invalid("sequence_id needs an app_id: a step belongs to one app");
    return { kind: "partition-latest", partitionKey };
  }
  if (!hasStep) return { kind: "app-latest", partitionKey, appId };
  return { kind: "step", partitionKey, appId, sequenceId: checkSequenceId(query.sequenceId) };
}

export function checkPartition(partitionKey: unknown, limits: Limits = defaultLimits): string {
  return checkKey("partition_key", partitionKey, limits, false);
}

/** A ListSteps as stores receive it. */
export interface StepsKey {
  partitionKey: string;
  appId: string;
  /** Only steps below this sequence id; null: from the newest. */
  beforeSequenceId: number | null;
  /** At most this many steps; null: all. */
  limit: number | null;
  includeState: boolean;
}

/** A Prune as stores receive it: at least one rule, never an app's highest step. */
export interface PruneRule {
  /** null: every partition. */
  partitionKey: string | null;
  /** null: every app in scope. */
  appId: string | null;
  /** Keep the newest N of each app (N >= 1); null: no count rule. */
  keepLast: number | null;
  /** Delete only steps created before this; null: no age rule. */
  olderThan: Date | null;
}

/** The steps a ListSteps or Prune may name: counts are whole numbers from 0 (or 1) to 2^31 - 1. */
function checkCount(field: string, value: unknown, min: number): number | null {
  if (value === undefined || value === null || value === 0) return null;
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > 2 ** 31 - 1) {
    throw invalid(`${field} must be a whole number from ${min} to ${2 ** 31 - 1}, got ${String(value)}`);
  }
  return value;
}

export function checkListSteps(query: ListStepsQuery, limits: Limits = defaultLimits): StepsKey {
  if (query === null || typeof query !== "object") throw invalid("listSteps needs a query object");
  const before = query.beforeSequenceId;
  return {
    partitionKey: checkKey("partition_key", query.partitionKey, limits, false),
    appId: checkKey("app_id", query.appId, limits, true),
    beforeSequenceId: before === undefined || before === null ? null : checkSequenceId(before),
    limit: checkCount("limit", query.limit, 1),
    includeState: query.includeState === true,
  };
}

export function checkDeleteApp(partitionKey: unknown, appId: unknown, limits: Limits = defaultLimits): { partitionKey: string; appId: string } {
  return { partitionKey: checkKey("partition_key", partitionKey, limits, false), appId: checkKey("app_id", appId, limits, true) };
}

export function checkPrune(query: PruneQuery, limits: Limits = defaultLimits): PruneRule {
  if (query === null || typeof query !== "object") throw invalid("prune needs a query object");
  const partitionKey = query.partitionKey === undefined ? null : checkKey("partition_key", query.partitionKey, limits, false);
  const appId = query.appId === undefined || query.appId === null || query.appId === "" ? null : checkKey("app_id", query.appId, limits, true);
  if (appId !== null && partitionKey === null) throw invalid("prune of one app_id needs its partition_key (\"\" for the default partition)");
  const keepLast = checkCount("keep_last", query.keepLast, 1);
  const olderThan = query.olderThan ?? null;
  if (olderThan !== null && !(olderThan instanceof Date && Number.isFinite(olderThan.getTime()))) throw invalid("older_than must be a valid time");
  if (keepLast === null && olderThan === null) throw invalid("prune needs keep_last or older_than (or both): without a rule it would delete nothing");
  return { partitionKey, appId, keepLast, olderThan };
}
