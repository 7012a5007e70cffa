/**
 * Save and Load calls multiplexed over one BatchedPipeline stream (see the .proto): a call costs
 * a share of one message instead of one HTTP/2 stream. gRPC costs about the same CPU per message
 * whatever its size, so the calls made in one pass of the event loop are queued and sent together
 * at its end (call-batches.ts bounds a message). The stream opens on the first call, ends after a
 * short idle time (an open stream would keep the process alive), and is replaced when it fails;
 * calls it leaves unanswered fail with its status. A server without BatchedPipeline (0.2.0 and
 * older) answers UNIMPLEMENTED: the caller then sends unary calls.
 */
import type * as grpc from "@grpc/grpc-js";
import { takeMessage } from "./call-batches";
import { Code, PersisterError } from "./errors";
import type { BatchedPipelineRequest, BatchedPipelineResponse, PipelineRequest, PipelineResponse } from "./gen/burr/state/v1/state_persister_pb";
import { persisterError } from "./wire";

export type PipelinedCall = PipelineRequest["call"];
export type PipelinedResult = Exclude<PipelineResponse["result"], { case: "error" } | { case: undefined }>;
export type PipelineStream = grpc.ClientDuplexStream<BatchedPipelineRequest, BatchedPipelineResponse>;

/** How long an idle stream stays open for the next call. */
const idleMs = 200;

interface Pending {
  resolve(result: PipelinedResult): void;
  reject(error: PersisterError): void;
  timer: NodeJS.Timeout;
}

/** One open stream, the calls not yet sent, and the calls waiting for its answers. */
class OpenStream {
  /** Every unsettled call, sent or still queued. */
  readonly pending = new Map<number, Pending>();
  /** Calls not yet written, in order. */
  private readonly queue: PipelineRequest[] = [];
  private flushScheduled = false;
  /** The stream's buffer is full: calls wait in the queue (and go out together) until it drains. */
  private awaitingDrain = false;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly stream: PipelineStream,
    private readonly onIdle: (stream: OpenStream) => void,
  ) {}

  settle(callId: number): Pending | undefined {
    const pending = this.pending.get(callId);
    if (!pending) return undefined;
    this.pending.delete(callId);
    clearTimeout(pending.timer);
    if (this.pending.size === 0) {
      this.idleTimer = setTimeout(() => this.onIdle(this), idleMs);
      this.idleTimer.unref();
    }
    return pending;
  }

  /**
   * Queues a call; the first of an event-loop pass schedules the flush at the end of that pass
   * (setImmediate), before the loop waits for I/O again: the calls made by every timer and I/O
   * callback of the pass go out together, where a microtask or nextTick flush would group only
   * the calls of one callback (measured with 64 callers each resuming from its own timer: 60
   * calls a message against 1, a third less CPU per call; one call in flight pays the extra pass,
   * about 5 µs, within the noise of its 0.16 ms).
   */
  add(request: PipelineRequest, pending: Pending): void {
    clearTimeout(this.idleTimer);
    this.pending.set(Number(request.callId), pending);
    this.queue.push(request);
    if (this.flushScheduled || this.awaitingDrain) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush(false);
    });
  }

  /**
   * Writes the queued calls, a message at a time. When write() says the stream's buffer is full,
   * the rest wait for 'drain' (unless `all`: before the stream is ended, everything goes).
   */
  flush(all: boolean): void {
    for (;;) {
      const calls = takeMessage(this.queue, (callId) => this.pending.has(Number(callId)));
      if (calls.length === 0) return;
      const open = this.stream.write({ $typeName: "burr.state.v1.BatchedPipelineRequest", calls } satisfies BatchedPipelineRequest);
      if (!open && !all) {
        this.awaitingDrain = true;
        this.stream.once("drain", () => {
          this.awaitingDrain = false;
          this.flush(false);
        });
        return;
      }
    }
  }

  /** Fails every unanswered call with `error`. */
  failAll(error: PersisterError): void {
    clearTimeout(this.idleTimer);
    this.queue.length = 0;
    for (const [callId, pending] of this.pending) {
      this.pending.delete(callId);
      clearTimeout(pending.timer);
      pending.reject(error);
    }
  }
}

export class CallPipeline {
  private current: OpenStream | null = null;
  private nextCallId = 0;
  /** False once the server answered UNIMPLEMENTED: it predates BatchedPipeline, so calls go unary. */
  supported = true;

  constructor(
    private readonly open: () => PipelineStream,
    private readonly target: string,
  ) {}

  /** Runs one call; rejects with the call's own error, or the stream's when it fails first. */
  call(call: PipelinedCall, deadlineMs: number): Promise<PipelinedResult> {
    const open = this.current ?? this.start();
    const callId = ++this.nextCallId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (open.settle(callId)) reject(new PersisterError(Code.DEADLINE_EXCEEDED, `no answer within ${deadlineMs} ms (server ${this.target})`));
      }, deadlineMs);
      open.add({ $typeName: "burr.state.v1.PipelineRequest", callId: BigInt(callId), call }, { resolve, reject, timer });
    });
  }

  close(): void {
    const open = this.current;
    this.current = null;
    open?.flush(true);
    open?.stream.end();
  }

  private start(): OpenStream {
    const stream = this.open();
    const open = new OpenStream(stream, (idle) => {
      if (this.current === idle) this.close();
    });
    this.current = open;
    stream.on("data", (response: BatchedPipelineResponse) => {
      for (const answer of response.answers) this.answer(open, answer);
    });
    // 'status' comes once, for success and failure alike; 'error' would throw without a listener.
    stream.on("error", () => {});
    stream.on("status", (status: grpc.StatusObject) => {
      if (this.current === open) this.current = null;
      if (status.code === Code.UNIMPLEMENTED) this.supported = false;
      const error =
        status.code === Code.OK
          ? new PersisterError(Code.UNAVAILABLE, `the server ended the pipeline before answering (it is shutting down?) (server ${this.target})`)
          : persisterError(status, this.target);
      open.failAll(error);
    });
    return open;
  }

  private answer(open: OpenStream, answer: PipelineResponse): void {
    const pending = open.settle(Number(answer.callId));
    if (!pending) return;
    const result = answer.result;
    if (result.case === "error") pending.reject(persisterError({ code: result.value.code, details: result.value.message }, this.target));
    else if (result.case === undefined) pending.reject(new PersisterError(Code.DATA_LOSS, `the server answered call ${answer.callId} with nothing (server ${this.target})`));
    else pending.resolve(result);
  }
}
