/**
 * The in-flight budget's frame filter: whatever the chunking, grpc-js gets exactly the admitted
 * frames and the stand-ins, and each message's call_ids are picked out. Then the per-stream
 * count: a message's bytes are given back once every one of its calls is answered, never sooner.
 */
import { EventEmitter } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { BatchedPipelineRequestSchema, PipelineRequestSchema, SaveRequestSchema } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { installFilter, StreamTickets, type Decision, type Ticket } from "./inflight";

const frame = (body: Uint8Array, compressed = false) => {
  const header = Buffer.alloc(5);
  header[0] = compressed ? 1 : 0;
  header.writeUInt32BE(body.length, 1);
  return Buffer.concat([header, body]);
};

/** A pipelined Save of `bytes` state bytes; call_id after the save when `idLast` (any order is valid protobuf). */
function pipelined(callId: bigint, bytes: number, idLast: boolean): Buffer {
  const save = toBinary(PipelineRequestSchema, create(PipelineRequestSchema, { call: { case: "save", value: create(SaveRequestSchema, { appId: "a", state: new Uint8Array(bytes).fill(7) }) } }));
  const id = toBinary(PipelineRequestSchema, create(PipelineRequestSchema, { callId }));
  return Buffer.from(idLast ? Buffer.concat([save, id]) : Buffer.concat([id, save]));
}

/** A BatchedPipelineRequest of pipelined Saves, each `[callId, state bytes, idLast]`. */
function batch(calls: Array<[bigint, number, boolean]>): Buffer {
  const field1 = (call: Buffer) => Buffer.concat([Buffer.from([0x0a]), varint(call.length), call]);
  return Buffer.concat(calls.map(([callId, bytes, idLast]) => field1(pipelined(callId, bytes, idLast))));
}

function varint(value: number): Buffer {
  const bytes: number[] = [];
  for (; value >= 0x80; value = Math.floor(value / 128)) bytes.push((value % 128) | 0x80);
  return Buffer.from([...bytes, value]);
}

/** A seeded generator, so a failure can be replayed. */
function random(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

function run(
  chunks: Buffer[],
  options: { scan?: "call" | "batch"; decide: (size: number, index: number) => "admit" | "stand-in" | "drop"; maxMessageBytes?: number; oversizedStandIn?: boolean },
) {
  const stream = new EventEmitter();
  const received: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => received.push(Buffer.from(chunk)));
  /** Each message's call_ids as the filter reported them, in message order. */
  const calls = new Map<Ticket, bigint[]>();
  let index = 0;
  installFilter(stream as never, {
    maxMessageBytes: options.maxMessageBytes ?? 1 << 20,
    scan: options.scan,
    onHeader: (size): Decision => {
      const ticket: Ticket = { bytes: size };
      calls.set(ticket, []);
      const decision = options.decide(size, index++);
      if (decision === "admit") return { admit: true, ticket };
      if (decision === "stand-in") return { admit: false, ticket, standIn: (callIds) => frame(Buffer.from(`stand-in ${callIds.join(",")} ${size}`)) };
      return { admit: false };
    },
    onOversized: (size): Decision | undefined =>
      options.oversizedStandIn ? { admit: false, ticket: { bytes: 0 }, standIn: (callIds) => frame(Buffer.from(`too large ${callIds.join(",")} ${size}`)) } : undefined,
    onCalls: (ticket, callIds) => calls.get(ticket)?.push(...callIds),
  });
  for (const chunk of chunks) stream.emit("data", chunk);
  return { received: Buffer.concat(received), callIds: [...calls.values()] };
}

function split(bytes: Buffer, next: () => number): Buffer[] {
  const chunks: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const n = Math.max(1, Math.floor(next() * (next() < 0.3 ? 8 : 600)));
    chunks.push(bytes.subarray(at, at + n));
    at += n;
  }
  return chunks;
}

test("pipelined messages: admitted ones pass unchanged, refused ones become stand-ins with their call_id, for any chunking", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed);
    const messages = Array.from({ length: 1 + Math.floor(next() * 12) }, (_, i) => pipelined(BigInt(i * 1_000_003 + seed), Math.floor(next() * 700), next() < 0.5));
    const refused = new Set(messages.map((_, i) => i).filter(() => next() < 0.4));
    const expected = Buffer.concat(messages.map((message, i) => (refused.has(i) ? frame(Buffer.from(`stand-in ${BigInt(i * 1_000_003 + seed)} ${message.length}`)) : frame(message))));
    const { received, callIds } = run(split(Buffer.concat(messages.map((message) => frame(message))), next), { scan: "call", decide: (_size, i) => (refused.has(i) ? "stand-in" : "admit") });
    expect(received.equals(expected)).toBe(true);
    expect(callIds).toEqual(messages.map((_, i) => [BigInt(i * 1_000_003 + seed)]));
  }
});

test("a unary request refused at its header: nothing of it reaches grpc-js, however it is chunked", () => {
  for (let seed = 1; seed <= 50; seed++) {
    const next = random(seed);
    const { received } = run(split(frame(new Uint8Array(5000).fill(1)), next), { decide: () => "drop" });
    expect(received.length).toBe(0);
  }
});

test("messages over the size limit go to grpc-js untouched (it refuses them), as do empty and compressed ones admitted", () => {
  const big = frame(new Uint8Array(3000));
  expect(run([big.subarray(0, 3), big.subarray(3)], { decide: () => "drop", maxMessageBytes: 2000 }).received.equals(big)).toBe(true);
  const empty = frame(new Uint8Array(0));
  const compressed = frame(new Uint8Array(100).fill(9), true);
  const both = Buffer.concat([empty, compressed, empty]);
  expect(run([both], { scan: "call", decide: () => "admit" }).received.equals(both)).toBe(true);
  expect(run([both], { scan: "batch", decide: () => "admit" }).received.equals(both)).toBe(true);
});

test("a pipelined message over the size limit can be skipped for a stand-in: the calls around it pass, for any chunking", () => {
  for (let seed = 1; seed <= 100; seed++) {
    const next = random(seed);
    const before = pipelined(1n, 100, false);
    const huge = pipelined(2n, 5000, next() < 0.5);
    const after = pipelined(3n, 100, false);
    const { received } = run(split(Buffer.concat([frame(before), frame(huge), frame(after)]), next), {
      scan: "call",
      decide: () => "admit",
      maxMessageBytes: 2000,
      oversizedStandIn: true,
    });
    expect(received.equals(Buffer.concat([frame(before), frame(Buffer.from(`too large 2 ${huge.length}`)), frame(after)]))).toBe(true);
  }
});

test("batched messages: admitted ones pass unchanged, refused ones become stand-ins with each call's call_id, for any chunking", () => {
  for (let seed = 1; seed <= 300; seed++) {
    const next = random(seed);
    // 0 to 5 calls a message (an empty batch too), call_id before or after the call, a call_id of 0 now and then.
    const batches = Array.from({ length: 1 + Math.floor(next() * 8) }, (_, i) =>
      Array.from({ length: Math.floor(next() * 6) }, (_, j): [bigint, number, boolean] => [next() < 0.1 ? 0n : BigInt(seed * 1_000_003 + i * 100 + j), Math.floor(next() * 400), next() < 0.5]),
    );
    const messages = batches.map(batch);
    const refused = new Set(messages.map((_, i) => i).filter(() => next() < 0.4));
    const ids = batches.map((calls) => calls.map(([callId]) => callId));
    const expected = Buffer.concat(messages.map((message, i) => (refused.has(i) ? frame(Buffer.from(`stand-in ${ids[i]!.join(",")} ${message.length}`)) : frame(message))));
    const { received, callIds } = run(split(Buffer.concat(messages.map((message) => frame(message))), next), { scan: "batch", decide: (_size, i) => (refused.has(i) ? "stand-in" : "admit") });
    expect(received.equals(expected)).toBe(true);
    expect(callIds).toEqual(ids);
  }
});

test("a batched message over the size limit can be skipped for a stand-in with its calls' call_ids, for any chunking", () => {
  for (let seed = 1; seed <= 100; seed++) {
    const next = random(seed);
    const before = batch([[1n, 100, false]]);
    const huge = batch([[2n, 3000, next() < 0.5], [3n, 10, next() < 0.5], [4n, 3000, next() < 0.5]]);
    const after = batch([[5n, 100, true], [6n, 100, false]]);
    const { received, callIds } = run(split(Buffer.concat([frame(before), frame(huge), frame(after)]), next), {
      scan: "batch",
      decide: () => "admit",
      maxMessageBytes: 2000,
      oversizedStandIn: true,
    });
    expect(received.equals(Buffer.concat([frame(before), frame(Buffer.from(`too large 2,3,4 ${huge.length}`)), frame(after)]))).toBe(true);
    expect(callIds).toEqual([[1n], [5n, 6n]]);
  }
});

test("call_ids are read whatever else the message holds: unknown fields, groups, a call_id given twice (the last counts)", () => {
  // field 9 as a group holding a field 1 (not the call's), then call_id 7; field 3 fixed64, call_id 8 given last.
  const call = Buffer.from([0x4b, 0x08, 0x05, 0x4c, 0x08, 0x07, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x08, 0x08]);
  expect(run([frame(call)], { scan: "call", decide: () => "admit" }).callIds).toEqual([[8n]]);
  const batched = Buffer.concat([Buffer.from([0x0a, call.length]), call, Buffer.from([0x12, 0x02, 0x08, 0x09, 0x0a, 0x00])]);
  expect(run([frame(batched)], { scan: "batch", decide: () => "admit" }).callIds).toEqual([[8n, 0n]]);
  // The largest call_id there is.
  const largest = toBinary(PipelineRequestSchema, create(PipelineRequestSchema, { callId: 2n ** 64n - 1n }));
  const wrapped = toBinary(BatchedPipelineRequestSchema, create(BatchedPipelineRequestSchema, { calls: [create(PipelineRequestSchema, { callId: 2n ** 64n - 1n })] }));
  expect(run([frame(largest)], { scan: "call", decide: () => "admit" }).callIds).toEqual([[2n ** 64n - 1n]]);
  expect(run([frame(wrapped)], { scan: "batch", decide: () => "admit" }).callIds).toEqual([[2n ** 64n - 1n]]);
});

describe("a stream's count", () => {
  const counted = () => {
    let given = 0;
    const tickets = new StreamTickets((bytes) => (given += bytes));
    const message = (bytes: number, callIds: bigint[]) => {
      const ticket = { bytes };
      tickets.add(ticket);
      tickets.setCalls(ticket, callIds);
    };
    return { tickets, message, given: () => given };
  };

  test("a batch is given back once each of its calls is answered, however the answers are grouped", () => {
    const { tickets, message, given } = counted();
    message(100, [1n, 2n, 3n]);
    message(10, [4n, 5n]);
    message(1, []); // nothing to answer: given back at once
    expect(given()).toBe(1);
    for (const callId of [1n, 4n, 2n]) tickets.answered(callId);
    expect(given()).toBe(1);
    tickets.answered(5n);
    expect(given()).toBe(11);
    tickets.answered(99n); // unknown: nothing
    tickets.answered(undefined);
    expect(given()).toBe(11);
    tickets.answered(3n);
    expect(given()).toBe(111);
    tickets.answered(3n); // answered twice: nothing more
    tickets.releaseAll();
    expect(given()).toBe(111);
  });

  test("calls sharing a call_id are given back when all of them are answered; the stream's end gives back the rest", () => {
    const { tickets, message, given } = counted();
    message(100, [7n, 8n]);
    message(10, [7n]);
    tickets.answered(7n);
    tickets.answered(8n);
    expect(given()).toBe(0);
    tickets.answered(7n);
    expect(given()).toBe(110);
    message(5, [9n]);
    message(6, [10n]);
    tickets.answered(9n);
    tickets.releaseAll();
    expect(given()).toBe(121);
  });

  test("never below the truth: random batches, call_ids reused, answers in random order", () => {
    for (let seed = 1; seed <= 300; seed++) {
      const next = random(seed);
      const { tickets, message, given } = counted();
      /** What the server really holds: each message's calls not yet answered. */
      const pending = new Map<number, bigint[]>();
      let total = 0;
      const sizes: number[] = [];
      for (let i = 0; i < 30; i++) {
        if (next() < 0.6) {
          const bytes = 1 + Math.floor(next() * 1000);
          const callIds = Array.from({ length: Math.floor(next() * 4) }, () => BigInt(Math.floor(next() * 6)));
          sizes.push(bytes);
          total += bytes;
          if (callIds.length > 0) pending.set(sizes.length - 1, callIds);
          message(bytes, callIds);
        } else if (pending.size > 0) {
          // Answer one pending call, of any message.
          const [index, callIds] = [...pending][Math.floor(next() * pending.size)]!;
          const [callId] = callIds.splice(Math.floor(next() * callIds.length), 1);
          if (callIds.length === 0) pending.delete(index);
          tickets.answered(callId);
        }
        const truth = [...pending.keys()].reduce((sum, index) => sum + sizes[index]!, 0);
        expect(total - given()).toBeGreaterThanOrEqual(truth);
      }
      for (const callIds of pending.values()) for (const callId of callIds.splice(0)) tickets.answered(callId);
      expect(given()).toBe(total);
    }
  });
});
