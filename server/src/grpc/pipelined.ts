/**
 * The two pipelined methods: Pipeline carries one call per message, BatchedPipeline several.
 * Interceptors that treat pipelined calls one by one (auth, the in-flight budget, deadlines)
 * find the calls of a message, and the answers of a response, here.
 */
import { StatePersister, type BatchedPipelineRequest, type BatchedPipelineResponse, type PipelineRequest, type PipelineResponse } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";

export const pipelinePath = `/${StatePersister.typeName}/Pipeline`;
export const batchedPipelinePath = `/${StatePersister.typeName}/BatchedPipeline`;

export const isPipelined = (path: string): boolean => path === pipelinePath || path === batchedPipelinePath;

/** The calls a decoded message of a pipelined method carries; none for anything else (a MalformedRequest). */
export function callsOf(path: string, message: unknown): PipelineRequest[] {
  if (typeof message !== "object" || message === null) return [];
  if (path === batchedPipelinePath) return Array.isArray((message as BatchedPipelineRequest).calls) ? (message as BatchedPipelineRequest).calls : [];
  return path === pipelinePath && "callId" in message ? [message as PipelineRequest] : [];
}

/** The answers a response message of a pipelined method carries. */
export function answersOf(path: string, message: unknown): PipelineResponse[] {
  if (typeof message !== "object" || message === null) return [];
  if (path === batchedPipelinePath) return Array.isArray((message as BatchedPipelineResponse).answers) ? (message as BatchedPipelineResponse).answers : [];
  return path === pipelinePath && "callId" in message ? [message as PipelineResponse] : [];
}

/** Calls a BatchedPipelineRequest may carry: decoding is refused past this, so a message of many empty calls cannot turn into millions of objects. */
export const maxCallsPerMessage = 1024;

/**
 * How many calls (field 1) an encoded BatchedPipelineRequest carries, counted without decoding
 * and stopping once past `limit`. Bytes that are no valid protobuf end the count; the decoder
 * then says what is wrong with them.
 */
export function countCalls(bytes: Uint8Array, limit = maxCallsPerMessage): number {
  let at = 0;
  let calls = 0;
  const varint = (): number => {
    let value = 0;
    for (let shift = 0; shift < 35 && at < bytes.length; shift += 7) {
      const byte = bytes[at++]!;
      value += (byte & 0x7f) * 2 ** shift;
      if (byte < 0x80) return value;
    }
    return -1;
  };
  while (at < bytes.length && calls <= limit) {
    const tag = varint();
    if (tag < 0) break;
    const wireType = tag % 8;
    if (wireType === 2) {
      const length = varint();
      if (length < 0) break;
      at += length;
      if (Math.floor(tag / 8) === 1) calls++;
    } else if (wireType === 0) {
      if (varint() < 0) break;
    } else if (wireType === 1) at += 8;
    else if (wireType === 5) at += 4;
    else break;
  }
  return calls;
}
