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
