/**
 * A server-wide budget for request bytes in flight (--max-inflight-bytes).
 *
 * A request is counted at the earliest point there is: the 5-byte gRPC frame header in front of
 * each message, which says how long the message will be before any of it is buffered. The
 * interceptor below puts a filter between each call's HTTP/2 stream and grpc-js's reader:
 *
 * - a message that fits is passed on and counted until the call's answer is sent (a pipelined
 *   message: until an answer carrying each of its calls' call_ids is sent) or the stream ends;
 * - a message that does not fit is not buffered at all: a unary call (Save, Load, ...) is
 *   answered RESOURCE_EXHAUSTED at once; a pipelined message's bytes are skipped (only its
 *   calls' call_ids are picked out on the way) and grpc-js gets a stand-in message with those
 *   calls, which this interceptor marks so that the handler answers each of them
 *   RESOURCE_EXHAUSTED and the stream goes on.
 *
 * Refusals are logged with fixed fields, so the logger's summarizing of repeated error lines
 * makes a flood one line per window.
 *
 * Compressed messages count as --max-message-bytes (their inflated size is unknown up front; a
 * compressed pipelined message's call_ids are too, so it counts until its stream ends).
 * A pipelined message over --max-message-bytes is skipped the same way and its calls answered
 * RESOURCE_EXHAUSTED: left to grpc-js, it would end the whole stream and lose the answers of the
 * calls running on it. Other messages over the limit (unary, compressed) are left to grpc-js,
 * which refuses them.
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
import { answersOf, batchedPipelinePath, callsOf, isPipelined } from "./grpc/pipelined";
import { refuseCall } from "./grpc/status";
import type { Logger } from "./log";

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

  /**
   * The stand-in for a refused pipelined message: PipelineRequest { call_id }, or
   * BatchedPipelineRequest { calls: [{ call_id }, ...] }, plus the marker (nonce, why, size). A
   * call_id of 0 is left out (the default), so its calls never take more bytes than those they replace.
   */
  private standIn(batched: boolean, callIds: bigint[], bytes: number, tooLarge: boolean): Buffer {
    const payload = Buffer.alloc(this.nonce.length + 5);
    this.nonce.copy(payload);
    payload[this.nonce.length] = tooLarge ? 1 : 0;
    payload.writeUInt32BE(bytes, this.nonce.length + 1);
    const call = (callId: bigint) => (callId === 0n ? Buffer.alloc(0) : Buffer.concat([varint(0x08n), varint(callId)]));
    const calls = batched ? callIds.map((callId) => lengthDelimited(1, call(callId))) : [call(callIds[0] ?? 0n)];
    const body = Buffer.concat([...calls, lengthDelimited(markerField, payload)]);
    const frame = Buffer.alloc(5);
    frame.writeUInt32BE(body.length, 1);
    return Buffer.concat([frame, body]);
  }

  /** The size of the refused message a stand-in replaces, and whether it was over the message limit; undefined for any other message. */
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
    const path = method.path;
    const pipelined = isPipelined(path);
    const batched = path === batchedPipelinePath;
    const tickets = new StreamTickets((bytes) => this.give(bytes));
    /** A refused pipelined message: skipped, and its calls answered on their own. */
    const standInDecision = (bytes: number, tooLarge: boolean): Decision => {
      // A ticket of 0 bytes: the refusals' answers count against it, not against admitted calls that have the same call_ids.
      const ticket: Ticket = { bytes: 0 };
      tickets.add(ticket);
      return { admit: false, ticket, standIn: (callIds) => this.standIn(batched, callIds, bytes, tooLarge) };
    };
    let own: grpc.ServerInterceptingCall | undefined;

    installFilter(stream, {
      maxMessageBytes: this.maxMessageBytes,
      scan: batched ? "batch" : pipelined ? "call" : undefined,
      onHeader: (size, compressed) => {
        const bytes = compressed ? this.maxMessageBytes : size;
        if (this.take(bytes)) {
          const ticket: Ticket = { bytes };
          tickets.add(ticket);
          return { admit: true, ticket };
        }
        const details = this.refused(path, bytes);
        if (pipelined && !compressed) return standInDecision(bytes, false);
        own?.sendStatus({ code: grpc.status.RESOURCE_EXHAUSTED, details, metadata: new grpc.Metadata() });
        // The answer is out; RST_STREAM(NO_ERROR) tells the client to stop sending the rest (RFC 9113 8.1).
        if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_NO_ERROR);
        return { admit: false };
      },
      onOversized: (size, compressed) => {
        if (!pipelined || compressed) return undefined;
        this.refused(path, size, true);
        return standInDecision(size, true);
      },
      onCalls: (ticket, callIds) => tickets.setCalls(ticket, callIds),
    });
    stream.once("close", () => tickets.releaseAll());

    own = new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMessage: (message, forward) => {
            const refused = pipelined ? this.standInFor(message) : undefined;
            if (refused !== undefined) {
              const error = new PersisterError(Code.RESOURCE_EXHAUSTED, this.refusal(refused.bytes, refused.tooLarge));
              for (const refusedCall of callsOf(path, message)) refuseCall(refusedCall, error);
            } else if (!pipelined && method.requestStream) {
              // Other client streams (reflection): a message is done with once delivered.
              tickets.releaseAll();
            }
            forward(message);
          },
        }),
      sendMessage: (message, next) => {
        if (pipelined) for (const answer of answersOf(path, message)) tickets.answered(answer.callId);
        else if (!method.requestStream) tickets.releaseAll();
        next(message);
      },
      sendStatus: (status, next) => {
        tickets.releaseAll();
        next(status);
      },
    });
    return own;
  };
}

/** The bytes one message is counted for. */
export interface Ticket {
  bytes: number;
}

/**
 * A stream's counted messages. A pipelined message is counted until each of its calls is answered;
 * answers come grouped as they finish, and only their call_ids say which calls they answer.
 */
export class StreamTickets {
  /** The tickets counted now, each with how many of its calls are unanswered (Infinity until they are known). */
  private readonly open = new Map<Ticket, number>();
  /** Per call_id: the ticket of each unanswered call that has it, and how many answers came for them. */
  private readonly calls = new Map<bigint, { tickets: Ticket[]; answers: number }>();

  constructor(private readonly give: (bytes: number) => void) {}

  add(ticket: Ticket): void {
    this.open.set(ticket, Infinity);
  }

  /** A message's call_ids, known once its last byte has gone by: none, and it is done with. */
  setCalls(ticket: Ticket, callIds: bigint[]): void {
    if (!this.open.has(ticket)) return;
    if (callIds.length === 0) return this.release(ticket);
    this.open.set(ticket, callIds.length);
    for (const callId of callIds) {
      const calls = this.calls.get(callId) ?? { tickets: [], answers: 0 };
      calls.tickets.push(ticket);
      this.calls.set(callId, calls);
    }
  }

  /**
   * An answer was sent. Unanswered calls that share a call_id (a client breaking the contract)
   * cannot be told apart, so they count until all of them are answered: the count never falls
   * below the truth. An unknown call_id releases nothing.
   */
  answered(callId: unknown): void {
    const calls = typeof callId === "bigint" ? this.calls.get(callId) : undefined;
    if (!calls || ++calls.answers < calls.tickets.length) return;
    this.calls.delete(callId as bigint);
    for (const ticket of calls.tickets) {
      const unanswered = (this.open.get(ticket) ?? 0) - 1;
      if (unanswered === 0) this.release(ticket);
      else if (unanswered > 0) this.open.set(ticket, unanswered);
    }
  }

  private release(ticket: Ticket): void {
    if (this.open.delete(ticket)) this.give(ticket.bytes);
  }

  releaseAll(): void {
    for (const ticket of [...this.open.keys()]) this.release(ticket);
    this.calls.clear();
  }
}

export type Decision = { admit: true; ticket: Ticket } | { admit: false; ticket?: Ticket; standIn?: (callIds: bigint[]) => Buffer };

export interface FilterOptions {
  maxMessageBytes: number;
  /** Pick call_ids out of each message as it passes: a PipelineRequest's ("call") or each of a BatchedPipelineRequest's calls ("batch"). */
  scan?: "call" | "batch";
  onHeader(size: number, compressed: boolean): Decision;
  /** A message over maxMessageBytes: how to refuse it here, or undefined to pass it to grpc-js (which refuses it). */
  onOversized?(size: number, compressed: boolean): Decision | undefined;
  /** A scanned (uncompressed) message's call_ids, once its last byte has gone by: before grpc-js has all of it, or before its stand-in. */
  onCalls?(ticket: Ticket, callIds: bigint[]): void;
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
 * messages. Passed bytes go on as runs of the incoming chunk (one piece per chunk when nothing is
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
  let standIn: ((callIds: bigint[]) => Buffer) | undefined;

  stream.on("data", (chunk: Buffer) => {
    let at = 0;
    /** Where the run of bytes being passed on began in this chunk; -1: none. */
    let run = mode === "pass" || mode === "through" || (mode === "header" && headerLength === 0) ? 0 : -1;
    const cut = (end: number) => {
      if (run >= 0 && end > run) deliver(chunk.subarray(run, end));
      run = -1;
    };
    const endMessage = () => {
      const callIds = scanner?.callIds() ?? [];
      if (ticket && scanner) options.onCalls?.(ticket, callIds);
      if (mode === "skip") {
        if (standIn) deliver(standIn(callIds));
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
          scanner = options.scan && !compressed ? new CallIdScanner(options.scan === "batch") : undefined;
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
 * Follows a protobuf message's fields as its bytes go by, skipping everything but call_ids
 * without buffering it: a PipelineRequest's call_id is the last varint in its field 1; a
 * BatchedPipelineRequest's calls are its field 1, each followed by a scanner of its own.
 */
class CallIdScanner {
  private callId = 0n;
  /** A batch's call_ids so far, a call's once its last byte has gone by. */
  private readonly calls: bigint[] = [];
  /** The call being read, in a batch. */
  private call: CallIdScanner | undefined;
  private state: "tag" | "varint" | "length" | "skip" | "lost" = "tag";
  private value = 0n;
  private shift = 0n;
  private field = 0n;
  private skip = 0;
  /** Groups open (a deprecated wire format an unknown field may still use): the fields in them are not the call's. */
  private groups = 0;

  constructor(private readonly batched: boolean) {}

  /** The message's call_ids: its own, or a batch's calls' in order. */
  callIds(): bigint[] {
    return this.batched ? this.calls : [this.callId];
  }

  push(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length && this.state !== "lost") {
      if (this.state === "skip") {
        const n = Math.min(this.skip, bytes.length - at);
        this.call?.push(bytes.subarray(at, at + n));
        this.skip -= n;
        at += n;
        if (this.skip === 0) this.endField();
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
      const topLevelField1 = this.field === 1n && this.groups === 0;
      if (this.state === "tag") {
        this.field = value >> 3n;
        const wireType = Number(value & 7n);
        if (wireType === 0) this.state = "varint";
        else if (wireType === 2) this.state = "length";
        else if (wireType === 1 || wireType === 5) (this.skip = wireType === 1 ? 8 : 4), (this.state = "skip");
        else if (wireType === 3) this.groups++;
        else if (wireType === 4 && this.groups > 0) this.groups--;
        else this.state = "lost"; // not protobuf: the decoder will say what is wrong
      } else if (this.state === "varint") {
        if (topLevelField1) this.callId = BigInt.asUintN(64, value);
        this.state = "tag";
      } else {
        if (this.batched && topLevelField1) this.call = new CallIdScanner(false);
        this.skip = Number(value);
        this.state = "skip";
        if (this.skip === 0) this.endField();
      }
    }
  }

  private endField(): void {
    if (this.call) this.calls.push(this.call.callId);
    this.call = undefined;
    this.state = "tag";
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

function lengthDelimited(field: number, data: Buffer): Buffer {
  return Buffer.concat([varint((BigInt(field) << 3n) | 2n), varint(BigInt(data.length)), data]);
}
