/**
 * The input rules every backend shares, applied before a backend sees a call: a backend only
 * ever receives normalized, checked values.
 */
import { Code, PersisterError } from "./errors";
import type { LoadQuery, SaveInput, Status } from "./persister";

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
