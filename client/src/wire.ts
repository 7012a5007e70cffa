/**
 * Wire messages to and from the persister types, shared by the async and sync clients. Inputs
 * are checked here with the server's own rules (minus the size limits, which the server
 * knows) so a bad call fails the same way in-process and remote, before any bytes are sent.
 */
import { create } from "@bufbuild/protobuf";
import { timestampDate } from "@bufbuild/protobuf/wkt";
import { Code, PersisterError } from "./errors";
import type { LoadQuery, PersistedState, SaveInput, Status } from "./persister";
import { checkLoad, checkPartition, checkSave, type Limits } from "./validation";
import {
  ListAppIdsRequestSchema,
  Status as WireStatus,
  type LoadRequest,
  type SaveRequest,
  type LoadResponse,
  type SaveResponse,
} from "./gen/burr/state/v1/state_persister_pb";

const noSizeLimits: Limits = { maxKeyBytes: Number.POSITIVE_INFINITY, maxStateBytes: Number.POSITIVE_INFINITY };

export function saveRequest(input: SaveInput<Uint8Array>) {
  const row = checkSave(input, noSizeLimits);
  // A complete literal: create() would copy each field through reflection, on every call.
  return {
    $typeName: "burr.state.v1.SaveRequest",
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: BigInt(row.sequenceId),
    position: row.position,
    state: row.state,
    status: row.status === "completed" ? WireStatus.COMPLETED : WireStatus.FAILED,
  } satisfies SaveRequest;
}

export function loadRequest(query: LoadQuery) {
  const key = checkLoad(query, noSizeLimits);
  return {
    $typeName: "burr.state.v1.LoadRequest",
    partitionKey: key.partitionKey,
    appId: key.kind === "partition-latest" ? undefined : key.appId,
    sequenceId: key.kind === "step" ? BigInt(key.sequenceId) : undefined,
  } satisfies LoadRequest;
}

export const listRequest = (partitionKey: string | null | undefined) =>
  create(ListAppIdsRequestSchema, { partitionKey: checkPartition(partitionKey, noSizeLimits) });

const statusOf = (status: WireStatus): Status => {
  if (status === WireStatus.COMPLETED) return "completed";
  if (status === WireStatus.FAILED) return "failed";
  throw new PersisterError(Code.DATA_LOSS, `the server sent an unknown status ${status}`);
};

export function savedAt(response: SaveResponse): Date {
  return response.createdAt ? timestampDate(response.createdAt) : new Date(0);
}

export function persistedState(response: LoadResponse): PersistedState<Uint8Array> | null {
  const row = response.persistedState;
  if (!row) return null;
  return {
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: Number(row.sequenceId),
    position: row.position,
    state: row.state,
    status: statusOf(row.status),
    createdAt: row.createdAt ? timestampDate(row.createdAt) : new Date(0),
  };
}

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
