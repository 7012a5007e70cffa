/**
 * Wire messages to and from the domain types, in both directions: the clients build requests
 * and read answers with it, the server reads requests and builds answers with it, so the two
 * sides cannot disagree on a mapping (a status, an absent field, a timestamp).
 *
 * Requests built here are checked with the server's own rules (minus the size limits, which
 * the server knows), so a bad call fails the same way in-process and remote, before any bytes
 * are sent. Messages are built as complete literals: create() would copy every field through
 * reflection, on the hot path of every call.
 */
import { timestampDate, timestampFromDate, type Timestamp } from "@bufbuild/protobuf/wkt";
import { Code, PersisterError } from "./errors";
import type { DeletePartitionResult, ListStepsQuery, LoadQuery, PersistedState, PruneQuery, SaveInput, Status, StepInfo } from "./persister";
import { checkDeleteApp, checkListSteps, checkLoad, checkPartition, checkPrune, checkSave, type Limits } from "./validation";
import {
  Status as WireStatus,
  type DeleteAppRequest,
  type DeleteAppResponse,
  type DeletePartitionRequest,
  type DeletePartitionResponse,
  type ListStepsRequest,
  type ListStepsResponse,
  type PruneRequest,
  type PruneResponse,
  type ListAppIdsRequest,
  type LoadRequest,
  type LoadResponse,
  type PersistedState as WirePersistedState,
  type SaveRequest,
  type SaveResponse,
} from "./gen/burr/state/v1/state_persister_pb";

const noSizeLimits: Limits = { maxKeyBytes: Number.POSITIVE_INFINITY, maxStateBytes: Number.POSITIVE_INFINITY };

// ---- status: the enum for Burr's two values, the exact string for every other

/** The enum value for a status string: COMPLETED, FAILED, or OTHER (the string travels beside it). */
export function statusToWire(status: Status): WireStatus {
  return status === "completed" ? WireStatus.COMPLETED : status === "failed" ? WireStatus.FAILED : WireStatus.OTHER;
}

/**
 * The status string of a message: its status_text when set, else the enum's meaning. An enum
 * value that names no status (UNSPECIFIED, OTHER without text, a number from a newer contract)
 * gives "", which validation refuses on Save and a reader reports as DATA_LOSS.
 */
export function statusFromWire(status: WireStatus, statusText: string | undefined): Status {
  if (statusText !== undefined) return statusText;
  return status === WireStatus.COMPLETED ? "completed" : status === WireStatus.FAILED ? "failed" : "";
}

/** status_text is sent only for statuses the enum cannot carry, so a Save of Burr's own two stays as small as before. */
const statusTextOf = (status: Status): string | undefined => (status === "completed" || status === "failed" ? undefined : status);

const dateOf = (timestamp: Timestamp | undefined) => (timestamp ? timestampDate(timestamp) : new Date(0));

// ---- client side: domain -> request, answer -> domain

export function saveRequest(input: SaveInput<Uint8Array>): SaveRequest {
  const row = checkSave(input, noSizeLimits);
  return {
    $typeName: "burr.state.v1.SaveRequest",
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: BigInt(row.sequenceId),
    position: row.position,
    state: row.state,
    status: statusToWire(row.status),
    statusText: statusTextOf(row.status),
  };
}

export function loadRequest(query: LoadQuery): LoadRequest {
  const key = checkLoad(query, noSizeLimits);
  return {
    $typeName: "burr.state.v1.LoadRequest",
    partitionKey: key.partitionKey,
    appId: key.kind === "partition-latest" ? undefined : key.appId,
    sequenceId: key.kind === "step" ? BigInt(key.sequenceId) : undefined,
  };
}

export const listRequest = (partitionKey: string | null | undefined): ListAppIdsRequest => ({
  $typeName: "burr.state.v1.ListAppIdsRequest",
  partitionKey: checkPartition(partitionKey, noSizeLimits),
});

export const savedAt = (response: SaveResponse): Date => dateOf(response.createdAt);

/** A stored snapshot as the wire carries it, back in domain terms. */
export function fromWireState(row: WirePersistedState): PersistedState<Uint8Array> {
  // A server older than status_text leaves it empty: the enum then says it all.
  const status = statusFromWire(row.status, row.statusText === "" ? undefined : row.statusText);
  if (status === "") throw new PersisterError(Code.DATA_LOSS, `the server sent a state without a status (status ${row.status})`);
  return {
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: Number(row.sequenceId),
    position: row.position,
    state: row.state,
    status,
    createdAt: dateOf(row.createdAt),
  };
}

export function persistedState(response: LoadResponse): PersistedState<Uint8Array> | null {
  return response.persistedState ? fromWireState(response.persistedState) : null;
}

// ---- server side: request -> domain (checked later by the guard), domain -> answer

export function fromSaveRequest(request: SaveRequest): SaveInput<Uint8Array> {
  return {
    partitionKey: request.partitionKey,
    appId: request.appId,
    sequenceId: Number(request.sequenceId),
    position: request.position,
    state: request.state,
    status: statusFromWire(request.status, request.statusText),
  };
}

export function fromLoadRequest(request: LoadRequest): LoadQuery {
  return {
    partitionKey: request.partitionKey,
    appId: request.appId,
    sequenceId: request.sequenceId === undefined ? undefined : Number(request.sequenceId),
  };
}

export function toWireState(row: PersistedState<Uint8Array>): WirePersistedState {
  return {
    $typeName: "burr.state.v1.PersistedState",
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: BigInt(row.sequenceId),
    position: row.position,
    state: row.state,
    status: statusToWire(row.status),
    createdAt: timestampFromDate(row.createdAt),
    statusText: row.status,
  };
}

export const loadResponse = (row: PersistedState<Uint8Array> | null): LoadResponse => ({
  $typeName: "burr.state.v1.LoadResponse",
  persistedState: row ? toWireState(row) : undefined,
});

export const saveResponse = (createdAt: Date): SaveResponse => ({
  $typeName: "burr.state.v1.SaveResponse",
  createdAt: timestampFromDate(createdAt),
});

// ---- history and deletion

export function listStepsRequest(query: ListStepsQuery): ListStepsRequest {
  const key = checkListSteps(query, noSizeLimits);
  return {
    $typeName: "burr.state.v1.ListStepsRequest",
    partitionKey: key.partitionKey,
    appId: key.appId,
    beforeSequenceId: key.beforeSequenceId === null ? undefined : BigInt(key.beforeSequenceId),
    limit: key.limit ?? 0,
    includeState: key.includeState,
  };
}

export function fromListStepsRequest(request: ListStepsRequest): ListStepsQuery {
  return {
    partitionKey: request.partitionKey,
    appId: request.appId,
    beforeSequenceId: request.beforeSequenceId === undefined ? undefined : Number(request.beforeSequenceId),
    limit: request.limit,
    includeState: request.includeState,
  };
}

/** A step of a listing: the state is left out unless it was asked for. */
export function toWireStep(step: StepInfo<Uint8Array>): WirePersistedState {
  return toWireState({ ...step, state: step.state ?? new Uint8Array(0) });
}

export const stepsResponse = (steps: StepInfo<Uint8Array>[]): ListStepsResponse => ({
  $typeName: "burr.state.v1.ListStepsResponse",
  steps: steps.map(toWireStep),
});

export function fromWireStep(row: WirePersistedState, includeState: boolean): StepInfo<Uint8Array> {
  const { state, ...rest } = fromWireState(row);
  return includeState ? { ...rest, state } : rest;
}

export function deleteAppRequest(partitionKey: string | null | undefined, appId: string): DeleteAppRequest {
  const key = checkDeleteApp(partitionKey, appId, noSizeLimits);
  return { $typeName: "burr.state.v1.DeleteAppRequest", partitionKey: key.partitionKey, appId: key.appId };
}

export const deleteAppResponse = (stepsDeleted: number): DeleteAppResponse => ({
  $typeName: "burr.state.v1.DeleteAppResponse",
  stepsDeleted: BigInt(stepsDeleted),
});

export const deletePartitionRequest = (partitionKey: string | null | undefined): DeletePartitionRequest => ({
  $typeName: "burr.state.v1.DeletePartitionRequest",
  partitionKey: checkPartition(partitionKey, noSizeLimits),
});

export const deletePartitionResponse = (result: DeletePartitionResult): DeletePartitionResponse => ({
  $typeName: "burr.state.v1.DeletePartitionResponse",
  stepsDeleted: BigInt(result.stepsDeleted),
  appsDeleted: BigInt(result.appsDeleted),
});

export const fromDeletePartitionResponse = (response: DeletePartitionResponse): DeletePartitionResult => ({
  stepsDeleted: Number(response.stepsDeleted),
  appsDeleted: Number(response.appsDeleted),
});

export function pruneRequest(query: PruneQuery): PruneRequest {
  const rule = checkPrune(query, noSizeLimits);
  return {
    $typeName: "burr.state.v1.PruneRequest",
    partitionKey: rule.partitionKey ?? undefined,
    appId: rule.appId ?? undefined,
    keepLast: rule.keepLast ?? 0,
    olderThan: rule.olderThan ? timestampFromDate(rule.olderThan) : undefined,
  };
}

export function fromPruneRequest(request: PruneRequest): PruneQuery {
  return {
    partitionKey: request.partitionKey,
    appId: request.appId,
    keepLast: request.keepLast,
    olderThan: request.olderThan ? timestampDate(request.olderThan) : undefined,
  };
}

export const pruneResponse = (stepsDeleted: number): PruneResponse => ({
  $typeName: "burr.state.v1.PruneResponse",
  stepsDeleted: BigInt(stepsDeleted),
});

// ---- errors

/** A grpc-js error (or anything thrown) as the PersisterError every persister throws. */
export function persisterError(error: unknown, target: string): PersisterError {
  if (error instanceof PersisterError) return error;
  const { code, details, message } = (error ?? {}) as { code?: number; details?: string; message?: string };
  if (typeof code === "number" && code > 0 && code <= 16) {
    const where = code === Code.UNAVAILABLE || code === Code.DEADLINE_EXCEEDED ? ` (server ${target})` : "";
    return new PersisterError(code as Code, `${details || message || "no details"}${where}`, { cause: error });
  }
  return new PersisterError(Code.UNKNOWN, `${message ?? String(error)} (server ${target})`, { cause: error });
}
