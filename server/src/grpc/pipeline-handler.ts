/**
 * The handlers of the two pipelined methods, Pipeline (a call per message, an answer per
 * message) and BatchedPipeline (calls grouped, answers grouped as they finish): one state
 * machine, two framings.
 *
 * Every call a pipeline reads gets exactly one answer before the stream ends. A message that
 * does not decode stops the reading; the calls before it still run and are answered, then the
 * stream ends INVALID_ARGUMENT. On shutdown the running calls finish, every call read after
 * (including those grpc-js holds back while reading is paused) is answered UNAVAILABLE, and the
 * stream ends OK after a turn of the event loop that brought no new call, or, for a client that
 * keeps sending, at half the grace period.
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import {
  CallErrorSchema,
  StatePersister,
  type BatchedPipelineRequest,
  type BatchedPipelineResponse,
  type LoadRequest,
  type LoadResponse,
  type PipelineRequest,
  type PipelineResponse,
  type SaveRequest,
  type SaveResponse,
} from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import type { Logger } from "../log";
import { MalformedRequest } from "./handlers";
import { batchedPipelinePath, callsOf, pipelinePath } from "./pipelined";
import { refusalOf, toStatus } from "./status";

/** Calls one pipeline may have running at once; past this the server stops reading the stream until some finish. */
const pipelineWindow = 256;

/** A grouped answer message holds at most this many bytes of answers (about; one larger answer goes alone). */
const groupedAnswerBytes = 1024 * 1024;

/** Reports one call (a pipelined Save or Load, which no interceptor sees): method path, status code, seconds. */
export type CallObserver = (path: string, code: number, seconds: number) => void;

export interface PipelineWork {
  save(request: SaveRequest): Promise<SaveResponse>;
  load(request: LoadRequest): Promise<LoadResponse>;
  log: Logger;
  observe?: CallObserver;
  /** --max-message-bytes: a grouped answer message stays well below it. */
  maxMessageBytes: number;
}

/** The shutdown phase, shared by every open pipeline of a server. */
export class PipelineShutdown {
  /** Each open pipeline's reaction to a change of the phase. */
  readonly open = new Set<() => void>();
  draining = false;
  /** Set half-way through the grace period: draining pipelines end without waiting for a quiet turn. */
  cutOff = false;

  drain(graceMs: number): void {
    this.draining = true;
    setTimeout(() => {
      this.cutOff = true;
      this.wakeAll();
    }, graceMs / 2).unref();
    this.wakeAll();
  }

  private wakeAll(): void {
    for (const wake of [...this.open]) wake();
  }
}

type Result = PipelineResponse["result"];

/** An upper estimate of an answer's encoded size, so a grouped message stays under the limit without encoding twice. */
function answerBytes(result: Result): number {
  if (result.case === "load") {
    const state = result.value.persistedState;
    if (!state) return 32;
    return 128 + state.state.byteLength + 3 * (state.partitionKey.length + state.appId.length + state.position.length + (state.statusText?.length ?? 0));
  }
  if (result.case === "error") return 32 + 3 * result.value.message.length;
  return 64;
}

/** Pipeline's handler (`batched` false) or BatchedPipeline's (`batched` true). */
export function pipelineHandler(
  work: PipelineWork,
  shutdown: PipelineShutdown,
  batched: boolean,
): grpc.handleBidiStreamingCall<PipelineRequest | BatchedPipelineRequest | MalformedRequest, object> {
  const groupBytes = Math.min(groupedAnswerBytes, Math.floor(work.maxMessageBytes / 2));
  const path = batched ? batchedPipelinePath : pipelinePath;

  return (call) => {
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
    const flow = () => (!failed && !unread && (shutdown.draining || running < pipelineWindow) ? call.resume() : call.pause());

    /** BatchedPipeline: the answers of this turn, sent together at its end (or sooner, when large). */
    let group: PipelineResponse[] = [];
    let groupSize = 0;
    let groupFlush: NodeJS.Immediate | undefined;

    const write = (message: object) => {
      if (!call.write(message) && !unread) {
        unread = true;
        flow();
        call.once("drain", () => {
          unread = false;
          wake();
        });
      }
    };
    const flushGroup = () => {
      clearImmediate(groupFlush);
      groupFlush = undefined;
      if (group.length === 0 || call.cancelled) return;
      const answers = group;
      group = [];
      groupSize = 0;
      write({ $typeName: "burr.state.v1.BatchedPipelineResponse", answers } satisfies BatchedPipelineResponse);
    };

    const end = (quiet = false) => {
      if (ended || running > 0) return;
      // Calls grpc-js holds back reach the handler within the turn that resumes reading (next
      // ticks and promise jobs): a turn that reads nothing means none are left. Past the cut-off
      // the stream ends even with answers backed up: its status follows them.
      const drained = shutdown.draining && (shutdown.cutOff || (quiet && !unread));
      if (!failed && !clientDone && !drained) {
        if (shutdown.draining && !unread && !quietCheck) {
          const seen = received;
          quietCheck = setImmediate(() => {
            quietCheck = undefined;
            end(received === seen);
          });
        }
        return;
      }
      flushGroup();
      ended = true;
      shutdown.open.delete(wake);
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
    shutdown.open.add(wake);
    if (shutdown.draining) end();

    /** `last`: no other call is running, so none can join this answer. */
    const answer = (callId: bigint, result: Result, last = false) => {
      if (ended || call.cancelled) return;
      const response = { $typeName: "burr.state.v1.PipelineResponse", callId, result } satisfies PipelineResponse;
      if (!batched) return write(response);
      if (last && group.length === 0) return write({ $typeName: "burr.state.v1.BatchedPipelineResponse", answers: [response] } satisfies BatchedPipelineResponse);
      const size = answerBytes(result);
      if (groupSize + size > groupBytes) flushGroup();
      group.push(response);
      groupSize += size;
      groupFlush ??= setImmediate(flushGroup);
    };
    const fail = (callId: bigint, status: { code?: number; details?: string }, last = false) =>
      answer(callId, { case: "error", value: create(CallErrorSchema, { code: status.code ?? grpc.status.UNKNOWN, message: status.details ?? "" }) }, last);

    const run = (request: PipelineRequest) => {
      const { callId, call: which } = request;
      const denied = refusalOf(request);
      if (denied) return fail(callId, { code: denied.code, details: denied.message });
      if (shutdown.draining) return fail(callId, { code: grpc.status.UNAVAILABLE, details: "the server is shutting down; the call was not run" });
      if (which.case === undefined) return fail(callId, { code: grpc.status.INVALID_ARGUMENT, details: "call is required: a PipelineRequest carries a save or a load" });
      const method = which.case === "save" ? "Save" : "Load";
      const started = process.hrtime.bigint();
      const result: Promise<Result> =
        which.case === "save" ? work.save(which.value).then((value) => ({ case: "save", value })) : work.load(which.value).then((value) => ({ case: "load", value }));
      running++;
      result
        .then(
          (value) => {
            answer(callId, value, running === 1);
            return grpc.status.OK;
          },
          (error) => {
            const status = toStatus(error, method, work.log);
            fail(callId, status, running === 1);
            return status.code ?? grpc.status.UNKNOWN;
          },
        )
        .then((code) => {
          work.observe?.(`/${StatePersister.typeName}/${method}`, code, Number(process.hrtime.bigint() - started) / 1e9);
          running--;
          // The last running call: nothing else can join its answer this turn, so it goes now.
          if (running === 0) flushGroup();
          flow();
          end();
        });
    };

    call.on("data", (message: PipelineRequest | BatchedPipelineRequest | MalformedRequest) => {
      if (ended || failed) return;
      received++;
      if (message instanceof MalformedRequest) {
        failed = message.status;
        flow();
        return end();
      }
      for (const request of callsOf(path, message)) run(request);
      flow();
      end();
    });
    call.on("end", () => {
      clientDone = true;
      end();
    });
    call.on("cancelled", () => {
      ended = true;
      shutdown.open.delete(wake);
      clearImmediate(quietCheck);
      clearImmediate(groupFlush);
    });
  };
}
