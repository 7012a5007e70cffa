/** A schema-free gRPC client for tests that must send what a well-behaved client never would. */
import * as grpc from "@grpc/grpc-js";

export function rawUnary(
  address: string,
  path: string,
  request: Uint8Array,
  options: grpc.CallOptions = { deadline: Date.now() + 10_000 },
): Promise<{ code: number; details: string; response?: Buffer }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const bytes = (value: Buffer) => value;
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, bytes, bytes, Buffer.from(request), new grpc.Metadata(), options, (error, response) => {
      client.close();
      resolve(error ? { code: error.code, details: error.details } : { code: 0, details: "", response });
    });
  });
}
