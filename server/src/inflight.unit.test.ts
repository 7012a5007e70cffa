/** The in-flight budget's frame filter: whatever the chunking, grpc-js gets exactly the admitted frames and the stand-ins. */
import { EventEmitter } from "node:events";
import { create, toBinary } from "@bufbuild/protobuf";
import { PipelineRequestSchema, SaveRequestSchema } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { installFilter, type Decision, type Ticket } from "./inflight";

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

/** A seeded generator, so a failure can be replayed. */
function random(seed: number) {
  return () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
}

function run(
  chunks: Buffer[],
  options: { scanCallIds: boolean; decide: (size: number, index: number) => "admit" | "stand-in" | "drop"; maxMessageBytes?: number; oversizedStandIn?: boolean },
) {
  const stream = new EventEmitter();
  const received: Buffer[] = [];
  stream.on("data", (chunk: Buffer) => received.push(Buffer.from(chunk)));
  const tickets: Ticket[] = [];
  let index = 0;
  installFilter(stream as never, {
    maxMessageBytes: options.maxMessageBytes ?? 1 << 20,
    scanCallIds: options.scanCallIds,
    onHeader: (size): Decision => {
      const ticket: Ticket = { bytes: size };
      tickets.push(ticket);
      const decision = options.decide(size, index++);
      if (decision === "admit") return { admit: true, ticket };
      if (decision === "stand-in") return { admit: false, ticket, standIn: (callId) => frame(Buffer.from(`stand-in ${callId} ${size}`)) };
      return { admit: false };
    },
    onOversized: (size): Decision | undefined =>
      options.oversizedStandIn ? { admit: false, ticket: { bytes: 0 }, standIn: (callId) => frame(Buffer.from(`too large ${callId} ${size}`)) } : undefined,
  });
  for (const chunk of chunks) stream.emit("data", chunk);
  return { received: Buffer.concat(received), tickets };
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
    const { received, tickets } = run(split(Buffer.concat(messages.map((message) => frame(message))), next), { scanCallIds: true, decide: (_size, i) => (refused.has(i) ? "stand-in" : "admit") });
    expect(received.equals(expected)).toBe(true);
    expect(tickets.map((ticket) => ticket.callId)).toEqual(messages.map((_, i) => BigInt(i * 1_000_003 + seed)));
  }
});

test("a unary request refused at its header: nothing of it reaches grpc-js, however it is chunked", () => {
  for (let seed = 1; seed <= 50; seed++) {
    const next = random(seed);
    const { received } = run(split(frame(new Uint8Array(5000).fill(1)), next), { scanCallIds: false, decide: () => "drop" });
    expect(received.length).toBe(0);
  }
});

test("messages over the size limit go to grpc-js untouched (it refuses them), as do empty and compressed ones admitted", () => {
  const big = frame(new Uint8Array(3000));
  expect(run([big.subarray(0, 3), big.subarray(3)], { scanCallIds: false, decide: () => "drop", maxMessageBytes: 2000 }).received.equals(big)).toBe(true);
  const empty = frame(new Uint8Array(0));
  const compressed = frame(new Uint8Array(100).fill(9), true);
  const both = Buffer.concat([empty, compressed, empty]);
  expect(run([both], { scanCallIds: true, decide: () => "admit" }).received.equals(both)).toBe(true);
});

test("a pipelined message over the size limit can be skipped for a stand-in: the calls around it pass, for any chunking", () => {
  for (let seed = 1; seed <= 100; seed++) {
    const next = random(seed);
    const before = pipelined(1n, 100, false);
    const huge = pipelined(2n, 5000, next() < 0.5);
    const after = pipelined(3n, 100, false);
    const { received } = run(split(Buffer.concat([frame(before), frame(huge), frame(after)]), next), {
      scanCallIds: true,
      decide: () => "admit",
      maxMessageBytes: 2000,
      oversizedStandIn: true,
    });
    expect(received.equals(Buffer.concat([frame(before), frame(Buffer.from(`too large 2 ${huge.length}`)), frame(after)]))).toBe(true);
  }
});
