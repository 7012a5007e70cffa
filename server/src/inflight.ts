/**
 * A server-wide budget for request bytes in flight (--max-inflight-bytes).
 *
 * A request is counted at the earliest point there is: the 5-byte gRPC frame header in front of
 * each message, which says how long the message will be before any of it is buffered. The
 * interceptor below puts a filter between each call's HTTP/2 stream and grpc-js's reader:
 *
 * - a message that fits is passed on and counted until the call's answer is sent (a pipelined
 *   call: until the answer carrying its call_id is sent) or the stream ends;
 * - a message that does not fit is not buffered at all: a unary call (Save, Load, ...) is
 *   answered RESOURCE_EXHAUSTED at once; a pipelined call's bytes are skipped (only its call_id
 *   is picked out on the way) and grpc-js gets a stand-in message, which this interceptor marks
 *   so that the Pipeline handler answers that one call RESOURCE_EXHAUSTED and the stream goes on.
 *
 * Refusals are logged with fixed fields, so the logger's summarizing of repeated error lines
 * makes a flood one line per window.
 *
 * Compressed messages count as --max-message-bytes (their inflated size is unknown up front).
 * A pipelined call over --max-message-bytes is skipped the same way and answered
 * RESOURCE_EXHAUSTED on its own: left to grpc-js, it would end the whole stream and lose the
 * answers of the calls running on it. Other messages over the limit (unary, compressed) are left
 * to grpc-js, which refuses them.
 *
 * The filter needs the call's HTTP/2 stream, which grpc-js 1.14 keeps on its innermost call
 * object (`stream`); the interceptor must be the last (outermost) in the server's list so its
 * answers pass the others (metrics see RESOURCE_EXHAUSTED). Without that stream (another grpc-js
 * version) the budget is not applied and this is logged once.
 */
import { randomBytes } from "node:crypto";
import * as http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { refuseCall } from "./grpc/status";
import type { Logger } from "./log";

const pipelinePath = "/burr.state.v1.StatePersister/Pipeline";

/** The field number of the stand-in's marker: the largest protobuf allows, unused by the contract. */
const markerField = 536_870_911;

export interface BudgetOptions {
  /** Request bytes the whole server holds at most. */
  limit: number;
  /** --max-message-bytes: what a compressed message counts as. */
  maxMessageBytes: number;
  log: Logger;
}

export class InflightBudget {
  /** Bytes counted now. */
  used = 0;
  /** The most ever counted at once (for tests and metrics). */
  peak = 0;
  readonly limit: number;
  private readonly maxMessageBytes: number;
  private readonly log: Logger;
  /** Marks this process's stand-in messages; a client cannot know it. */
  private readonly nonce = randomBytes(16);
  private warned = false;

  constructor(options: BudgetOptions) {
    if (options.limit < options.maxMessageBytes) {
      throw new Error(`--max-inflight-bytes (${options.limit}) must be at least --max-message-bytes (${options.maxMessageBytes}), or the largest requests could never be served`);
    }
    this.limit = options.limit;
    this.maxMessageBytes = options.maxMessageBytes;
    this.log = options.log;
  }

  /** Takes `bytes` from the budget; false (and nothing taken) when they do not fit. */
  private take(bytes: number): boolean {
    if (this.used + bytes > this.limit) return false;
    this.used += bytes;
    this.peak = Math.max(this.peak, this.used);
    return true;
  }

  private give(bytes: number): void {
    this.used -= bytes;
  }

  refusal(bytes: number, tooLarge = false): string {
    if (tooLarge) return `this request of ${bytes} bytes is over the server's message limit of ${this.maxMessageBytes} bytes (--max-message-bytes); it was not run`;
    return (
      `the server's in-flight byte budget (${this.limit} bytes, --max-inflight-bytes) is taken by other requests: ` +
      `this request of ${bytes} bytes was refused; retry later`
    );
  }

  private refused(method: string, bytes: number, tooLarge = false): string {
    // Fixed fields: the logger summarizes repeats of the same line (log.ts), a flood is a line per window.
    const reason = tooLarge ? `over the message limit (--max-message-bytes ${this.maxMessageBytes})` : `the in-flight byte budget (--max-inflight-bytes ${this.limit}) is taken`;
    this.log.error("request_refused", { method, reason });
    return this.refusal(bytes, tooLarge);
  }

  /** The stand-in for a refused pipelined call: PipelineRequest { call_id } plus the marker (nonce, why, size). */
  private standIn(callId: bigint, bytes: number, tooLarge: boolean): Buffer {
    const payload = Buffer.alloc(this.nonce.length + 5);
    this.nonce.copy(payload);
    payload[this.nonce.length] = tooLarge ? 1 : 0;
    payload.writeUInt32BE(bytes, this.nonce.length + 1);
    const body = Buffer.concat([varint(0x08n), varint(callId), varint((BigInt(markerField) << 3n) | 2n), varint(BigInt(payload.length)), payload]);
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(body.length, 1);
    return Buffer.concat([frame, body]);
  }

  /** The size of the refused call a stand-in replaces, and whether it was over the message limit; undefined for any other message. */
  private standInFor(message: unknown): { bytes: number; tooLarge: boolean } | undefined {
    const unknown = (message as { $unknown?: Array<{ no: number; data: Uint8Array }> } | null)?.$unknown;
    for (const field of unknown ?? []) {
      if (field.no !== markerField || field.data.length < this.nonce.length + 5) continue;
      const data = Buffer.from(field.data.buffer, field.data.byteOffset, field.data.byteLength);
      if (data.subarray(-this.nonce.length - 5, -5).equals(this.nonce)) return { bytes: data.readUInt32BE(data.length - 4), tooLarge: data[data.length - 5] === 1 };
    }
    return undefined;
  }

  /** The server interceptor; put it last in the server's list. */
  readonly interceptor: grpc.ServerInterceptor = (method, call) => {
    const stream = baseStream(call);
    if (!stream) {
      if (!this.warned) {
        this.warned = true;
        this.log.error("inflight_budget_unavailable", { reason: "grpc-js does not expose the call's HTTP/2 stream; --max-inflight-bytes is not applied" });
      }
      return new grpc.ServerInterceptingCall(call);
    }
    const pipelined = method.path === pipelinePath;
    const tickets = new Set<Ticket>();
    const release = (ticket: Ticket) => {
      if (tickets.delete(ticket)) this.give(ticket.bytes);
    };
    const releaseAll = () => tickets.forEach(release);
    /** A pipelined answer frees its call: of the calls with that id, the smallest (so the count never falls below the truth). */
    const releaseCall = (callId: unknown) => {
      let smallest: Ticket | undefined;
      for (const ticket of tickets) if (ticket.callId === callId && (!smallest || ticket.bytes < smallest.bytes)) smallest = ticket;
      if (smallest) release(smallest);
    };
    /** A refused pipelined call: skipped, and answered on its own. */
    const standInDecision = (bytes: number, tooLarge: boolean): Decision => {
      // A ticket of 0 bytes: the refusal's answer releases it, not an admitted call's that has the same call_id.
      const ticket: Ticket = { bytes: 0 };
      tickets.add(ticket);
      return { admit: false, ticket, standIn: (callId) => this.standIn(callId, bytes, tooLarge) };
    };
    let own: grpc.ServerInterceptingCall | undefined;

    installFilter(stream, {
      maxMessageBytes: this.maxMessageBytes,
      scanCallIds: pipelined,
      onHeader: (size, compressed) => {
        const bytes = compressed ? this.maxMessageBytes : size;
        if (this.take(bytes)) {
          const ticket: Ticket = { bytes };
          tickets.add(ticket);
          return { admit: true, ticket };
        }
        const details = this.refused(method.path, bytes);
        if (pipelined && !compressed) return standInDecision(bytes, false);
        own?.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details, metadata: new grpc.Metadata() });
        // The answer is out; RST_STREAM(NO_ERROR) tells the client to stop sending the rest (RFC 9113 8.1).
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return { admit: false };
      },
      onOversized: (size, compressed) => {
        if (!pipelined || compressed) return undefined;
        this.refused(method.path, size, true);
        return standInDecision(size, true);
      },
    });
    stream.once("close", releaseAll);

    own = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, forward) => {
            const refused = pipelined ? this.standInFor(message) : undefined;
            if (refused !== undefined) {
              refuseCall(message as object, new PersisterError(Code.RESOURCE_EXHAUSTED, this.refusal(refused.bytes, refused.tooLarge)));
            } else if (!pipelined && method.requestStream) {
              // Other client streams (reflection): a message is done with once delivered.
              releaseAll();
            }
            forward(message);
          },
        }),
      sendMessage: (message, next) => {
        if (pipelined) releaseCall((message as { callId?: unknown }).callId);
        else if (!method.requestStream) releaseAll();
        next(message);
      },
      sendStatus: (status, next) => {
        releaseAll();
        next(status);
      },
    });
    return own;
  };
}

export interface Ticket {
  bytes: number;
  /** A pipelined call's call_id, once its message is complete. */
  callId?: bigint;
}

export type Decision = { admit: true; ticket: Ticket } | { admit: false; ticket?: Ticket; standIn?: (callId: bigint) => Buffer };

export interface FilterOptions {
  maxMessageBytes: number;
  /** Pick each message's call_id (field 1) out as it passes (Pipeline). */
  scanCallIds: boolean;
  onHeader(size: number, compressed: boolean): Decision;
  /** A message over maxMessageBytes: how to refuse it here, or undefined to pass it to grpc-js (which refuses it). */
  onOversized?(size: number, compressed: boolean): Decision | undefined;
}

/** grpc-js 1.14: the innermost call object holds the HTTP/2 stream; interceptors wrap it through `nextCall`. */
function baseStream(call: grpc.ServerInterceptingCallInterface): http2.ServerHttp2Stream | undefined {
  let current = call as unknown as { stream?: http2.ServerHttp2Stream; nextCall?: unknown } | undefined;
  for (let depth = 0; current && depth < 32; depth++) {
    if (current.stream && typeof current.stream.on === "function") return current.stream;
    current = current.nextCall as typeof current;
  }
  return undefined;
}

/**
 * Replaces the stream's 'data' listeners (grpc-js's reader) with one that passes admitted
 * messages through, drops refused ones, and puts stand-ins in the place of refused pipelined
 * calls. Passed bytes go on as runs of the incoming chunk (one piece per chunk when nothing is
 * refused); only a frame header split across chunks is copied.
 */
export function installFilter(stream: Pick<http2.ServerHttp2Stream, "listeners" | "removeAllListeners" | "on">, options: FilterOptions): void {
  const readers = stream.listeners("data") as Array<(chunk: Buffer) => void>;
  stream.removeAllListeners("data");
  const deliver = (chunk: Buffer) => {
    for (const reader of readers) reader.call(stream, chunk);
  };

  const header = Buffer.alloc(5);
  let headerLength = 0;
  /** header: reading a frame header; pass/skip: a message body; through: everything to grpc-js; drop: nothing. */
  let mode: "header" | "pass" | "skip" | "through" | "drop" = "header";
  let remaining = 0;
  let scanner: CallIdScanner | undefined;
  let ticket: Ticket | undefined;
  let standIn: ((callId: bigint) => Buffer) | undefined;

  stream.on("data", (chunk: Buffer) => {
    let at = 0;
    /** Where the run of bytes being passed on began in this chunk; -1: none. */
    let run = mode === "pass" || mode === "through" || (mode === "header" && headerLength === 0) ? 0 : -1;
    const cut = (end: number) => {
      if (run >= 0 && end > run) deliver(chunk.subarray(run, end));
      run = -1;
    };
    const endMessage = () => {
      if (ticket && scanner) ticket.callId = scanner.callId;
      if (mode === "skip") {
        if (standIn) deliver(standIn(scanner?.callId ?? 0n));
        run = at;
      }
      mode = "header";
      ticket = undefined;
      standIn = undefined;
      scanner = undefined;
    };
    while (at < chunk.length) {
      if (mode === "through" || mode === "drop") break;
      if (mode === "header") {
        const startedHere = headerLength === 0;
        const start = at;
        const n = Math.min(5 - headerLength, chunk.length - at);
        chunk.copy(header, headerLength, at, at + n);
        headerLength += n;
        at += n;
        if (headerLength < 5) {
          // The rest of the header comes with the next chunk: hold these bytes back until then.
          if (startedHere) cut(start);
          break;
        }
        headerLength = 0;
        const compressed = header[0] !== 0;
        const size = header.readUInt32BE(1);
        let passed: boolean;
        const decision = size > options.maxMessageBytes ? options.onOversized?.(size, compressed) : options.onHeader(size, compressed);
        if (!decision) {
          // grpc-js refuses it by size, with its own message.
          mode = "through";
          passed = true;
        } else {
          scanner = options.scanCallIds && !compressed ? new CallIdScanner() : undefined;
          remaining = size;
          ticket = decision.ticket;
          passed = decision.admit;
          mode = decision.admit ? "pass" : decision.standIn ? "skip" : "drop";
          if (!decision.admit) standIn = decision.standIn;
        }
        if (passed && !startedHere) {
          // A header split across chunks: pass on the whole of it, then this chunk from after it.
          deliver(Buffer.from(header));
          run = at;
        } else if (!passed) cut(startedHere ? start : at);
        if (mode === "pass" || mode === "skip") {
          if (remaining === 0) endMessage();
        }
        continue;
      }
      // A message body: passed on (within the run) or skipped, its call_id picked out either way.
      const n = Math.min(remaining, chunk.length - at);
      scanner?.push(chunk.subarray(at, at + n));
      at += n;
      remaining -= n;
      if (remaining === 0) endMessage();
    }
    cut(chunk.length);
  });
}

/**
 * Follows a protobuf message's top-level fields as bytes go by, keeping the last varint seen in
 * field 1 (PipelineRequest.call_id), skipping everything else without buffering it.
 */
class CallIdScanner {
  callId = 0n;
  private state: "tag" | "varint" | "skip" | "length" | "lost" = "tag";
  private value = 0n;
  private shift = 0n;
  private field = 0n;
  private skip = 0;

  push(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length && this.state !== "lost") {
      if (this.state === "skip") {
        const n = Math.min(this.skip, bytes.length - at);
        this.skip -= n;
        at += n;
        if (this.skip === 0) this.state = "tag";
        continue;
      }
      const byte = bytes[at++]!;
      this.value |= BigInt(byte & 0x7f) << this.shift;
      this.shift += 7n;
      if (byte & 0x80) {
        if (this.shift > 63n) this.state = "lost";
        continue;
      }
      const value = this.value;
      this.value = 0n;
      this.shift = 0n;
      if (this.state === "tag") {
        this.field = value >> 3n;
        const wireType = Number(value & 7n);
        if (wireType === 0) this.state = "varint";
        else if (wireType === 2) this.state = "length";
        else if (wireType === 1 || wireType === 5) (this.skip = wireType === 1 ? 8 : 4), (this.state = "skip");
        else this.state = "lost"; // groups: not in this contract; the decoder will say what is wrong
      } else if (this.state === "varint") {
        if (this.field === 1n) this.callId = BigInt.asUintN(64, value);
        this.state = "tag";
      } else {
        this.skip = Number(value);
        this.state = this.skip === 0 ? "tag" : "skip";
      }
    }
  }
}

function varint(value: bigint): Buffer {
  const bytes: number[] = [];
  let rest = BigInt.asUintN(64, value);
  do {
    const low = Number(rest & 0x7fn);
    rest >>= 7n;
    bytes.push(rest ? low | 0x80 : low);
  } while (rest);
  return Buffer.from(bytes);
}
