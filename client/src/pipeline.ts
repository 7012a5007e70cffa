/**
 * Save and Load calls multiplexed over one Pipeline stream (see the .proto): a call costs one
 * message instead of one HTTP/2 stream, several times cheaper in grpc-js on both sides. The
 * stream opens on the first call, ends after a short idle time (an open stream would keep the
 * process alive), and is replaced when it fails; calls it leaves unanswered fail with its status.
 */
import type * as grpc from "@grpc/grpc-js";
import { Code, PersisterError } from "./errors";
import type { PipelineRequest, PipelineResponse } from "./gen/burr/state/v1/state_persister_pb";
import { persisterError } from "./wire";

export type PipelinedCall = PipelineRequest["call"];
export type PipelinedResult = Exclude<PipelineResponse["result"], { case: "error" } | { case: undefined }>;
export type PipelineStream = grpc.ClientDuplexStream<PipelineRequest, PipelineResponse>;

/** How long an idle stream stays open for the next call. */
const idleMs = 200;

interface Pending {
  resolve(result: PipelinedResult): void;
  reject(error: PersisterError): void;
  timer: NodeJS.Timeout;
}

/** One open stream and the calls waiting for its answers. */
class OpenStream {
  readonly pending = new Map<number, Pending>();
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

  add(callId: number, pending: Pending): void {
    clearTimeout(this.idleTimer);
    this.pending.set(callId, pending);
  }

  /** Fails every unanswered call with `error`. */
  failAll(error: PersisterError): void {
    clearTimeout(this.idleTimer);
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
  /** False once the server answered UNIMPLEMENTED: it predates Pipeline, so calls go unary. */
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
      open.add(callId, { resolve, reject, timer });
      open.stream.write({ $typeName: "burr.state.v1.PipelineRequest", callId: BigInt(callId), call } satisfies PipelineRequest);
    });
  }

  close(): void {
    const open = this.current;
    this.current = null;
    open?.stream.end();
  }

  private start(): OpenStream {
    const stream = this.open();
    const open = new OpenStream(stream, (idle) => {
      if (this.current === idle) this.close();
    });
    this.current = open;
    stream.on("data", (response: PipelineResponse) => {
      const pending = open.settle(Number(response.callId));
      if (!pending) return;
      const result = response.result;
      if (result.case === "error") pending.reject(persisterError({ code: result.value.code, details: result.value.message }, this.target));
      else if (result.case === undefined) pending.reject(new PersisterError(Code.DATA_LOSS, `the server answered call ${response.callId} with nothing (server ${this.target})`));
      else pending.resolve(result);
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
}
