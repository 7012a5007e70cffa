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
  CallErrorSchema,
  ListAppIdsResponseSchema,
  StatePersister,
  type ListAppIdsRequest,
  type LoadRequest,
  type PipelineRequest,
  type PipelineResponse,
  type SaveRequest,
} from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import type { Logger } from "../log";
import { MalformedRequest, pagedHandler, unaryHandler } from "./handlers";
import { historyHandlers } from "./history";
import { refusalOf, toStatus } from "./status";

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

export interface StateService {
  definition: grpc.ServiceDefinition;
  implementation: grpc.UntypedServiceImplementation;
  /**
   * Shutdown: open pipelines finish their running calls, answer every call they read after this
   * UNAVAILABLE, and end OK once no more arrive, or at half of `graceMs` for a client that keeps sending.
   */
  drain(graceMs?: number): void;
}

/** Reports one call (a pipelined Save or Load, which no interceptor sees): method path, status code, seconds. */
export type CallObserver = (path: string, code: number, seconds: number) => void;

/** Calls one pipeline may have running at once; past this the server stops reading the stream until some finish. */
const pipelineWindow = 256;

export function stateService(persister: GuardedPersister, log: Logger, observe?: CallObserver): StateService {
  const save = async (request: SaveRequest) => saveResponse((await persister.save(fromSaveRequest(request))).createdAt);
  const load = async (request: LoadRequest) => loadResponse(await persister.load(fromLoadRequest(request)));

  const unary = <Req>(method: string, work: (request: Req) => Promise<object>) => unaryHandler(method, log, work);
  const listAppIds = pagedHandler("ListAppIds", log, (request: ListAppIdsRequest) => persister.appIdPages(request.partitionKey), (appIds: string[]) =>
    create(ListAppIdsResponseSchema, { appIds }),
  );

  /** Each open pipeline's reaction to a change of the shutdown phase. */
  const openPipelines = new Set<() => void>();
  let draining = false;
  /** Set half-way through the grace period: draining pipelines end without waiting for a quiet turn. */
  let cutOff = false;

  // Every call a pipeline reads gets exactly one answer before the stream ends. A message that
  // does not decode stops the reading; the calls before it still run and are answered, then the
  // stream ends INVALID_ARGUMENT. On shutdown the running calls finish, every call read after
  // (including those grpc-js holds back while reading is paused) is answered UNAVAILABLE, and the
  // stream ends OK after a turn of the event loop that brought no new call, or, for a client that
  // keeps sending, at half the grace period.
  const pipeline: grpc.handleBidiStreamingCall<PipelineRequest | MalformedRequest, object> = (call) => {
    let running = 0;
    let clientDone = false;
    let ended = false;
    /** The status of a message that did not decode: the stream ends with it once the calls before it are answered. */
    let failed: { code: number; details: string } | null = null;
    /** Messages read so far: a drained stream ends only after a turn of the event loop that read none. */
    let received = 0;
    let quietCheck: NodeJS.Immediate | undefined;
    // Reading stops while the window is full or answers wait for a client that does not read
    // them, so neither running calls nor unsent answers can pile up without bound. While
    // draining, calls are only answered UNAVAILABLE, so the window no longer applies.
    let unread = false;
    const flow = () => (!failed && !unread && (draining || running < pipelineWindow) ? call.resume() : call.pause());
    const end = (quiet = false) => {
      if (ended || running > 0) return;
      // Calls grpc-js holds back reach the handler within the turn that resumes reading (next
      // ticks and promise jobs): a turn that reads nothing means none are left. Past the cut-off
      // the stream ends even with answers backed up: its status follows them.
      const drained = draining && (cutOff || (quiet && !unread));
      if (!failed && !clientDone && !drained) {
        if (draining && !unread && !quietCheck) {
          const seen = received;
          quietCheck = setImmediate(() => {
            quietCheck = undefined;
            end(received === seen);
          });
        }
        return;
      }
      ended = true;
      openPipelines.delete(wake);
      clearImmediate(quietCheck);
      if (call.cancelled) return;
      call.pause();
      if (failed) call.emit("error", failed);
      else call.end();
    };
    const wake = () => {
      flow();
      end();
    };
    openPipelines.add(wake);
    if (draining) end();
    const answer = (callId: bigint, result: PipelineResponse["result"]) => {
      if (ended || call.cancelled) return;
      if (!call.write({ $typeName: "burr.state.v1.PipelineResponse", callId, result } satisfies PipelineResponse) && !unread) {
        unread = true;
        flow();
        call.once("drain", () => {
          unread = false;
          wake();
        });
      }
    };
    const fail = (callId: bigint, status: { code?: number; details?: string }) =>
      answer(callId, { case: "error", value: create(CallErrorSchema, { code: status.code ?? grpc.status.UNKNOWN, message: status.details ?? "" }) });

    call.on("data", (request: PipelineRequest | MalformedRequest) => {
      if (ended || failed) return;
      received++;
      if (request instanceof MalformedRequest) {
        failed = request.status;
        flow();
        return end();
      }
      const { callId, call: which } = request;
      const refuse = (status: { code: number; details: string }) => {
        fail(callId, status);
        end();
      };
      const denied = refusalOf(request);
      if (denied) return refuse({ code: denied.code, details: denied.message });
      if (draining) return refuse({ code: grpc.status.UNAVAILABLE, details: "the server is shutting down; the call was not run" });
      if (which.case === undefined) return refuse({ code: grpc.status.INVALID_ARGUMENT, details: "call is required: a PipelineRequest carries a save or a load" });
      const method = which.case === "save" ? "Save" : "Load";
      const started = process.hrtime.bigint();
      const work: Promise<PipelineResponse["result"]> =
        which.case === "save" ? save(which.value).then((value) => ({ case: "save", value })) : load(which.value).then((value) => ({ case: "load", value }));
      running++;
      flow();
      work
        .then(
          (result) => {
            answer(callId, result);
            return grpc.status.OK;
          },
          (error) => {
            const status = toStatus(error, method, log);
            fail(callId, status);
            return status.code ?? grpc.status.UNKNOWN;
          },
        )
        .then((code) => {
          observe?.(`/${StatePersister.typeName}/${method}`, code, Number(process.hrtime.bigint() - started) / 1e9);
          running--;
          flow();
          end();
        });
    });
    call.on("end", () => {
      clientDone = true;
      end();
    });
    call.on("cancelled", () => {
      ended = true;
      openPipelines.delete(wake);
      clearImmediate(quietCheck);
    });
  };

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
      pipeline,
      ...historyHandlers(persister, log),
    },
    drain: (graceMs = 5000) => {
      draining = true;
      setTimeout(() => {
        cutOff = true;
        for (const wake of [...openPipelines]) wake();
      }, graceMs / 2).unref();
      for (const wake of [...openPipelines]) wake();
    },
  };
}

