/**
 * The StatePersister gRPC service: a thin adapter from wire messages to the persister
 * interface. Rules (validation, defaults, initialization) live in core/guard.ts, not here.
 */
import { create, type DescMessage } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "../../../core/guard";
import { serviceDefinition } from "../../../core/grpc-definition";
import type { PersistedState as Persisted, Status } from "../../../core/persister";
import {
  ListAppIdsResponseSchema,
  PersistedStateSchema,
  StatePersister,
  Status as WireStatus,
  type ListAppIdsRequest,
  type LoadRequest,
  type SaveRequest,
} from "../../../gen/ts/burr/state/v1/state_persister_pb";
import type { Logger } from "../log";
import { toStatus } from "./status";

/** What a request that does not decode becomes, so it is answered INVALID_ARGUMENT, not INTERNAL. */
class MalformedRequest {
  constructor(
    readonly schema: DescMessage,
    readonly cause: unknown,
  ) {}

  get status() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause);
    return { code: grpc.status.INVALID_ARGUMENT, details: `the request is not a valid ${this.schema.typeName}: ${reason}` };
  }
}

/** The generated definition, with decoding failures turned into MalformedRequest values. */
function tolerantDefinition(): grpc.ServiceDefinition {
  const definition = serviceDefinition(StatePersister);
  for (const method of StatePersister.methods) {
    const entry = definition[method.localName]!;
    const decode = entry.requestDeserialize;
    entry.requestDeserialize = (bytes: Buffer) => {
      try {
        return decode(bytes);
      } catch (cause) {
        return new MalformedRequest(method.input, cause);
      }
    };
  }
  return definition;
}

const wireStatus: Record<Status, WireStatus> = { completed: WireStatus.COMPLETED, failed: WireStatus.FAILED };
const statusOf = (status: WireStatus): Status =>
  status === WireStatus.COMPLETED ? "completed" : status === WireStatus.FAILED ? "failed" : (WireStatus[status] ?? `${status}`) as Status;

const toWire = (row: Persisted<Uint8Array>) =>
  create(PersistedStateSchema, {
    partitionKey: row.partitionKey,
    appId: row.appId,
    sequenceId: BigInt(row.sequenceId),
    position: row.position,
    state: row.state,
    status: wireStatus[row.status],
    createdAt: timestampFromDate(row.createdAt),
  });

export interface StateService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
}

export function stateService(persister: GuardedPersister, log: Logger): StateService {
  /** A unary handler: decode check, the work, then the answer or the mapped error. */
  const unary =
    <Req>(method: string, work: (request: Req) => Promise<object>): grpc.handleUnaryCall<Req | MalformedRequest, object> =>
    (call, callback) => {
      const request = call.request;
      if (request instanceof MalformedRequest) return callback(request.status);
      work(request).then(
        (response) => callback(null, response),
        (error) => callback(toStatus(error, method, log)),
      );
    };

  const listAppIds: grpc.handleServerStreamingCall<ListAppIdsRequest | MalformedRequest, object> = async (call) => {
    const request = call.request;
    if (request instanceof MalformedRequest) return call.emit("error", request.status);
    try {
      for await (const page of persister.appIdPages(request.partitionKey)) {
        if (call.cancelled) return;
        if (!call.write(create(ListAppIdsResponseSchema, { appIds: page }))) await drainedOrCancelled(call);
      }
      call.end();
    } catch (error) {
      if (!call.cancelled) call.emit("error", toStatus(error, "ListAppIds", log));
    }
  };

  return {
    definition: tolerantDefinition(),
    implementation: {
      initialize: unary("Initialize", async () => {
        await persister.initialize();
        return {};
      }),
      isInitialized: unary("IsInitialized", async () => ({ initialized: await persister.isInitialized() })),
      save: unary("Save", async (request: SaveRequest) => {
        const { createdAt } = await persister.save({
          partitionKey: request.partitionKey,
          appId: request.appId,
          sequenceId: Number(request.sequenceId),
          position: request.position,
          state: request.state,
          status: statusOf(request.status),
        });
        return { createdAt: timestampFromDate(createdAt) };
      }),
      load: unary("Load", async (request: LoadRequest) => {
        const row = await persister.load({
          partitionKey: request.partitionKey,
          appId: request.appId,
          sequenceId: request.sequenceId === undefined ? undefined : Number(request.sequenceId),
        });
        return row ? { persistedState: toWire(row) } : {};
      }),
      listAppIds,
    },
  };
}

function drainedOrCancelled(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}
