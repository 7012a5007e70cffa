/** Counting a BatchedPipelineRequest's calls without decoding it. */
import { create, toBinary } from "@bufbuild/protobuf";
import { BatchedPipelineRequestSchema, SaveRequestSchema } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { countCalls, maxCallsPerMessage } from "./pipelined";

const batch = (calls: number, stateBytes = 10) =>
  toBinary(
    BatchedPipelineRequestSchema,
    create(BatchedPipelineRequestSchema, {
      calls: Array.from({ length: calls }, (_, i) => ({ callId: BigInt(i) * 1_000_000_007n, call: { case: "save" as const, value: create(SaveRequestSchema, { appId: `a${i}`, state: new Uint8Array(stateBytes) }) } })),
    }),
  );

test.each([0, 1, 7, 300])("counts %i calls of any size", (calls) => {
  expect(countCalls(batch(calls))).toBe(calls);
  expect(countCalls(batch(calls, 70_000))).toBe(calls);
});

test("empty calls count too (each is two bytes), and counting stops just past the limit", () => {
  const empties = new Uint8Array(2 * 5_000_000).fill(0).map((_, i) => (i % 2 === 0 ? 0x0a : 0));
  expect(countCalls(empties)).toBe(maxCallsPerMessage + 1);
  expect(countCalls(empties, 10)).toBe(11);
});

test("other fields are skipped, whatever their wire type; bytes that are no protobuf end the count", () => {
  // field 2 varint, field 3 fixed64, field 4 fixed32, field 1 call, field 5 length-delimited
  const mixed = new Uint8Array([0x10, 0x96, 0x01, 0x19, 1, 2, 3, 4, 5, 6, 7, 8, 0x25, 1, 2, 3, 4, 0x0a, 0x00, 0x2a, 0x02, 9, 9, 0x0a, 0x00]);
  expect(countCalls(mixed)).toBe(2);
  expect(countCalls(new Uint8Array([0x0a, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]))).toBe(1);
  expect(countCalls(new Uint8Array([0x0b]))).toBe(0); // a group start: not in this contract
});
