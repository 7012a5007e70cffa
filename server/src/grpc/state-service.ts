/**
 * The StatePersister gRPC service: a thin adapter from wire messages to the persister
 * interface. Rules (validation, defaults, initialization) live in the stores' guard, the
 * message mapping in the client's wire module (shared with the clients), not here.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "@burr-state/stores";
import { fromLoadRequest, fromSaveRequest, loadResponse, saveResponse, serviceDefinition } from "@burr-state/client/protocol";
import {
  ListAppIdsResponseSchema,
  StatePersister,
  type ListAppIdsRequest,
  type LoadRequest,
  type SaveRequest,
} from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import type { Logger } from "../log";
import { MalformedRequest, pagedHandler, unaryHandler } from "./handlers";
import { historyHandlers } from "./history";
import { type CallObserver, pipelineHandler, PipelineShutdown } from "./pipeline-handler";
import { batchedPipelinePath, countCalls, maxCallsPerMessage } from "./pipelined";

/** The generated definition, with decoding failures turned into MalformedRequest values. */
function tolerantDefinition(): grpc.ServiceDefinition {
  const definition = serviceDefinition(StatePersister);
  for (const method of StatePersister.methods) {
    const entry = definition[method.localName]!;
    const decode = entry.requestDeserialize;
    const batched = `/${StatePersister.typeName}/${method.name}` === batchedPipelinePath;
    entry.requestDeserialize = (bytes: Buffer) => {
      try {
        if (batched && countCalls(bytes) > maxCallsPerMessage) {
          return new MalformedRequest(method.input, new Error(`it carries more than ${maxCallsPerMessage} calls, the most one message may carry`));
        }
        return decode(bytes);
      } catch (cause) {
        return new MalformedRequest(method.input, cause);
      }
    };
  }
  return definition;
}

export interface StateService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /**
   * Shutdown: open pipelines finish their running calls, answer every call they read after this
   * UNAVAILABLE, and end OK once no more arrive, or at half of `graceMs` for a client that keeps sending.
   */
  drain(graceMs?: number): void;
}

export interface StateServiceOptions {
  /** --max-message-bytes: grouped pipeline answers stay well below it. */
  maxMessageBytes: number;
  observe?: CallObserver;
}

export function stateService(persister: GuardedPersister, log: Logger, options: StateServiceOptions): StateService {
  const observe = options.observe;
  const save = async (request: SaveRequest) => saveResponse((await persister.save(fromSaveRequest(request))).createdAt);
  const load = async (request: LoadRequest) => loadResponse(await persister.load(fromLoadRequest(request)));

  const unary = <Req>(method: string, work: (request: Req) => Promise<object>) => unaryHandler(method, log, work);
  const listAppIds = pagedHandler("ListAppIds", log, (request: ListAppIdsRequest) => persister.appIdPages(request.partitionKey), (appIds: string[]) =>
    create(ListAppIdsResponseSchema, { appIds }),
  );

  const shutdown = new PipelineShutdown();
  const work = { save, load, log, observe, maxMessageBytes: options.maxMessageBytes };

  return {
    definition: tolerantDefinition(),
    implementation: {
      initialize: unary("Initialize", async () => {
        await persister.initialize();
        return {};
      }),
      isInitialized: unary("IsInitialized", async () => ({ initialized: await persister.isInitialized() })),
      save: unary("Save", save),
      load: unary("Load", load),
      listAppIds,
      pipeline: pipelineHandler(work, shutdown, false),
      batchedPipeline: pipelineHandler(work, shutdown, true),
      ...historyHandlers(persister, log),
    },
    drain: (graceMs = 5000) => shutdown.drain(graceMs),
  };
}

