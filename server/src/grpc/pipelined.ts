/**
 * The two pipelined methods: Pipeline carries one call per message, BatchedPipeline several.
 * Interceptors that treat pipelined calls one by one (auth, the in-flight budget, deadlines)
 * find the calls of a message here.
 */
import { StatePersister, type BatchedPipelineRequest, type PipelineRequest } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";

export const pipelinePath = `/${StatePersister.typeName}/Pipeline`;
export const batchedPipelinePath = `/${StatePersister.typeName}/BatchedPipeline`;

export const isPipelined = (path: string): boolean => path === pipelinePath || path === batchedPipelinePath;

/** The calls a decoded message of a pipelined method carries; none for anything else (a MalformedRequest). */
export function callsOf(path: string, message: unknown): PipelineRequest[] {
  if (typeof message !== "object" || message === null) return [];
  if (path === batchedPipelinePath) return Array.isArray((message as BatchedPipelineRequest).calls) ? (message as BatchedPipelineRequest).calls : [];
  return path === pipelinePath && "callId" in message ? [message as PipelineRequest] : [];
}
