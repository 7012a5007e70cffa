/**
 * How the pipeline's queued calls are cut into BatchedPipeline messages: in order, each message
 * at most `maxCallsPerMessage` calls and `maxStateBytesPerMessage` bytes of state (a call larger
 * than that goes alone). The bounds keep a message far below the server's message limit (16 MiB
 * by default) and keep small calls from waiting behind a long run of large ones.
 */
import type { PipelineRequest } from "./gen/burr/state/v1/state_persister_pb";

export const maxCallsPerMessage = 256;
export const maxStateBytesPerMessage = 1024 * 1024;

const stateBytes = (request: PipelineRequest) => (request.call.case === "save" ? request.call.value.state.byteLength : 0);

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
    const size = stateBytes(request);
    if (message.length > 0 && bytes + size > maxStateBytesPerMessage) break;
    message.push(request);
    bytes += size;
  }
  queue.splice(0, taken);
  return message;
}
