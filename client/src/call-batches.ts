/**
 * How the pipeline's queued calls are cut into BatchedPipeline messages: in order, each message
 * at most `maxCallsPerMessage` calls and `maxBytesPerMessage` bytes (a call larger than that goes
 * alone). A server refuses every call of a message over its limit (--max-message-bytes, 16 MiB
 * by default), so a server whose limit is at least 64 KiB, the least the clients are made for,
 * never refuses a message whose calls it would take one by one. The Python client uses the same
 * bounds.
 */
import type { PipelineRequest } from "./gen/burr/state/v1/state_persister_pb";

export const maxCallsPerMessage = 256;
export const maxBytesPerMessage = 64 * 1024;

/** At least the call's encoded size: its state, its strings at 3 UTF-8 bytes per UTF-16 unit, and 64 bytes of tags, lengths and numbers. */
export function callBytes(request: PipelineRequest): number {
  const call = request.call;
  if (call.case === undefined) return 64;
  const { partitionKey = "", appId = "" } = call.value;
  let strings = partitionKey.length + appId.length;
  let state = 0;
  if (call.case === "save") {
    strings += call.value.position.length + (call.value.statusText?.length ?? 0);
    state = call.value.state.byteLength;
  }
  return 64 + state + 3 * strings;
}

/**
 * Removes the next message's calls from the front of `queue` and returns them, dropping the calls
 * `waiting` no longer holds (they timed out before being sent). Empty once the queue is.
 */
export function takeMessage(queue: PipelineRequest[], waiting: (callId: bigint) => boolean): PipelineRequest[] {
  const message: PipelineRequest[] = [];
  let bytes = 0;
  let taken = 0;
  for (; taken < queue.length && message.length < maxCallsPerMessage; taken++) {
    const request = queue[taken]!;
    if (!waiting(request.callId)) continue;
    const size = callBytes(request);
    if (message.length > 0 && bytes + size > maxBytesPerMessage) break;
    message.push(request);
    bytes += size;
  }
  queue.splice(0, taken);
  return message;
}
