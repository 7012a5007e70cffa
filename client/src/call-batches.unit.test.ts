/** Cutting the pipeline's queue into messages: order, the two bounds, the size estimate, and calls that timed out. */
import { create } from "@bufbuild/protobuf";
import { callBytes, maxBytesPerMessage, maxCallsPerMessage, takeMessage } from "./call-batches";
import { toBinary } from "@bufbuild/protobuf";
import { BatchedPipelineRequestSchema, LoadRequestSchema, PipelineRequestSchema, SaveRequestSchema, Status, type PipelineRequest } from "./gen/burr/state/v1/state_persister_pb";

const load = (callId: number): PipelineRequest => create(PipelineRequestSchema, { callId: BigInt(callId), call: { case: "load", value: create(LoadRequestSchema, { appId: "a" }) } });
const save = (callId: number, stateBytes: number): PipelineRequest =>
  create(PipelineRequestSchema, { callId: BigInt(callId), call: { case: "save", value: create(SaveRequestSchema, { appId: "a", state: new Uint8Array(stateBytes) }) } });
const ids = (calls: PipelineRequest[]) => calls.map((call) => Number(call.callId));
const everyCall = () => true;

test("takes the queued calls in order, at most maxCallsPerMessage a message, until the queue is empty", () => {
  const queue = Array.from({ length: maxCallsPerMessage + 3 }, (_, i) => load(i + 1));
  const first = takeMessage(queue, everyCall);
  expect(ids(first)).toEqual(Array.from({ length: maxCallsPerMessage }, (_, i) => i + 1));
  expect(ids(takeMessage(queue, everyCall))).toEqual([maxCallsPerMessage + 1, maxCallsPerMessage + 2, maxCallsPerMessage + 3]);
  expect(takeMessage(queue, everyCall)).toEqual([]);
  expect(queue).toEqual([]);
});

test("a message holds at most maxBytesPerMessage; the call that would pass it starts the next", () => {
  const quarter = maxBytesPerMessage / 4;
  const queue = [save(1, quarter), save(2, quarter), load(3), save(4, quarter), save(5, quarter), save(6, 1), load(7)];
  expect(ids(takeMessage(queue, everyCall))).toEqual([1, 2, 3, 4]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([5, 6, 7]);
});

test("callBytes is never below a call's encoded size, so a message of several calls stays within maxBytesPerMessage on the wire", () => {
  const wide = "\u{1F600}é".repeat(300); // 4- and 2-byte UTF-8 characters
  const calls = [
    load(1),
    create(PipelineRequestSchema, { callId: 2n ** 64n - 1n, call: { case: "load", value: create(LoadRequestSchema, { partitionKey: wide, appId: wide, sequenceId: 2n ** 53n - 1n }) } }),
    create(PipelineRequestSchema, {
      callId: 2n ** 64n - 1n,
      call: { case: "save", value: create(SaveRequestSchema, { partitionKey: wide, appId: wide, sequenceId: 2n ** 53n - 1n, position: wide, state: new Uint8Array(5000), status: Status.OTHER, statusText: wide }) },
    }),
    create(PipelineRequestSchema, { callId: 7n }),
  ];
  for (const call of calls) expect(toBinary(BatchedPipelineRequestSchema, create(BatchedPipelineRequestSchema, { calls: [call] })).byteLength).toBeLessThanOrEqual(callBytes(call));
  const queue = Array.from({ length: 40 }, (_, i) => save(i + 1, 3000));
  for (let message = takeMessage(queue, everyCall); message.length > 0; message = takeMessage(queue, everyCall)) {
    expect(toBinary(BatchedPipelineRequestSchema, create(BatchedPipelineRequestSchema, { calls: message })).byteLength).toBeLessThanOrEqual(maxBytesPerMessage);
  }
});

test("a call larger than the bound goes alone, never held back", () => {
  const queue = [load(1), save(2, maxBytesPerMessage + 1), load(3)];
  expect(ids(takeMessage(queue, everyCall))).toEqual([1]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([2]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([3]);
});

test("calls no longer waiting (timed out in the queue) are dropped, and count toward no bound", () => {
  const queue = [load(1), save(2, maxBytesPerMessage), load(3), save(4, maxBytesPerMessage - 300), load(5)];
  const waiting = (callId: bigint) => callId !== 2n;
  expect(ids(takeMessage(queue, waiting))).toEqual([1, 3, 4, 5]);
  const timedOut = [load(1), load(2)];
  expect(takeMessage(timedOut, () => false)).toEqual([]);
  expect(timedOut).toEqual([]);
});
