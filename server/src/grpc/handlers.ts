/**
 * The shapes every StatePersister handler shares: a request that did not decode answered
 * INVALID_ARGUMENT (not INTERNAL), a unary call answered with its result or its mapped error,
 * and a server stream sent page by page at the pace the client reads.
 */
import type { DescMessage } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import type { Logger } from "../log";
import { toStatus } from "./status";

/** What a request that does not decode becomes, so it is answered INVALID_ARGUMENT, not INTERNAL. */
export class MalformedRequest {
  constructor(
    readonly schema: DescMessage,
    readonly cause: unknown,
  ) {}

  get status() {
    const reason = this.cause instanceof Error ? this.cause.message : String(this.cause);
    return { code: grpc.status.INVALID_ARGUMENT, details: `the request is not a valid ${this.schema.typeName}: ${reason}` };
  }
}

/** A unary handler: decode check, the work, then the answer or the mapped error. */
export const unaryHandler =
  <Req>(method: string, log: Logger, work: (request: Req) => Promise<object>): grpc.handleUnaryCall<Req | MalformedRequest, object> =>
  (call, callback) => {
    const request = call.request;
    if (request instanceof MalformedRequest) return callback(request.status);
    work(request).then(
      (response) => callback(null, response),
      (error) => callback(toStatus(error, method, log)),
    );
  };

/**
 * A server-streaming handler: one message per page of `pages(request)`, each page read from the
 * store only once the previous message was taken by the client (HTTP/2 flow control), so a
 * client that does not read holds at most one page in the server.
 */
export const pagedHandler =
  <Req, Page>(method: string, log: Logger, pages: (request: Req) => AsyncIterable<Page>, message: (page: Page) => object): grpc.handleServerStreamingCall<Req | MalformedRequest, object> =>
  async (call) => {
    const request = call.request;
    if (request instanceof MalformedRequest) return call.emit("error", request.status);
    try {
      for await (const page of pages(request)) {
        if (call.cancelled) return;
        if (!call.write(message(page))) await drainedOrCancelled(call);
      }
      call.end();
    } catch (error) {
      if (!call.cancelled) call.emit("error", toStatus(error, method, log));
    }
  };

function drainedOrCancelled(call: grpc.ServerWritableStream<unknown, unknown>): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      call.off("drain", done);
      call.off("cancelled", done);
      resolve();
    };
    call.on("drain", done);
    call.on("cancelled", done);
  });
}
