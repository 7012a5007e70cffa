/** Cutting the pipeline's queue into messages: order, the two bounds, and calls that timed out. */
import { create } from "@bufbuild/protobuf";
import { maxCallsPerMessage, maxStateBytesPerMessage, takeMessage } from "./call-batches";
import { LoadRequestSchema, PipelineRequestSchema, SaveRequestSchema, type PipelineRequest } from "./gen/burr/state/v1/state_persister_pb";

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

test("a message holds at most maxStateBytesPerMessage of state; the call that would pass it starts the next", () => {
  const quarter = maxStateBytesPerMessage / 4;
  const queue = [save(1, quarter), save(2, quarter), load(3), save(4, quarter), save(5, quarter), save(6, 1), load(7)];
  expect(ids(takeMessage(queue, everyCall))).toEqual([1, 2, 3, 4, 5]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([6, 7]);
});

test("a call larger than the bound goes alone, never held back", () => {
  const queue = [load(1), save(2, maxStateBytesPerMessage + 1), load(3)];
  expect(ids(takeMessage(queue, everyCall))).toEqual([1]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([2]);
  expect(ids(takeMessage(queue, everyCall))).toEqual([3]);
});

test("calls no longer waiting (timed out in the queue) are dropped, and count toward no bound", () => {
  const queue = [load(1), save(2, maxStateBytesPerMessage), load(3), save(4, maxStateBytesPerMessage), load(5)];
  const waiting = (callId: bigint) => callId !== 2n;
  expect(ids(takeMessage(queue, waiting))).toEqual([1, 3, 4, 5]);
  const timedOut = [load(1), load(2)];
  expect(takeMessage(timedOut, () => false)).toEqual([]);
  expect(timedOut).toEqual([]);
});
