/** Maps errors thrown behind the service onto the gRPC status a client receives. */
import { status, type ServiceError } from "@grpc/grpc-js";
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { Logger } from "../log";

export interface StatusObject {
  code: number;
  details: string;
}

/** PersisterErrors carry their own status; anything else is a bug and is logged as one. */
export function toStatus(error: unknown, method: string, log: Logger): Partial<ServiceError> {
  if (error instanceof PersisterError) {
    if (error.code === Code.UNAVAILABLE || error.code === Code.INTERNAL) {
      log.error("call_failed", { method, code: error.codeName, cause: error.message });
    }
    return { code: error.code, details: error.message };
  }
  log.error("call_failed", { method, code: "INTERNAL", cause: error instanceof Error ? error.stack : String(error) });
  return { code: status.INTERNAL, details: `internal error in ${method}: ${error instanceof Error ? error.message : String(error)}` };
}

/**
 * A pipelined call the auth interceptor refused. The interceptor sees each PipelineRequest before
 * the handler but may only end the whole stream; it marks the one call instead, and the handler
 * answers that call alone with this error.
 */
const refusal = Symbol("refusal");

export function refuseCall(message: object, error: PersisterError): void {
  (message as { [refusal]?: PersisterError })[refusal] = error;
}

export const refusalOf = (message: object): PersisterError | undefined => (message as { [refusal]?: PersisterError })[refusal];
