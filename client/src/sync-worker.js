// The worker thread behind SyncGrpcStatePersister. It knows no schema: it sends encoded
// request bytes on a method path and posts back the encoded response bytes (or the gRPC
// status), then wakes the calling thread, which is blocked in Atomics.wait.
"use strict";
const { workerData } = require("node:worker_threads");
const grpc = require("@grpc/grpc-js");

const { port, signal, address, tls, token, channelOptions } = workerData;
// Buffers arrive as plain Uint8Arrays after crossing the thread boundary.
const pem = (bytes) => (bytes ? Buffer.from(bytes) : null);
const credentials = tls
  ? grpc.credentials.createSsl(pem(tls.rootCerts), pem(tls.privateKey), pem(tls.certChain))
  : grpc.credentials.createInsecure();
const client = new grpc.Client(address, credentials, channelOptions);
const bytes = (value) => value;
const metadata = () => {
  const md = new grpc.Metadata();
  if (token) md.set("authorization", `Bearer ${token}`);
  return md;
};

function reply(message) {
  port.postMessage(message);
  Atomics.store(signal, 0, 1);
  Atomics.notify(signal, 0);
}

const failure = (id, error) => ({ id, error: { code: error.code ?? grpc.status.UNKNOWN, details: error.details || error.message } });

port.on("message", (message) => {
  const { id, path, request, streaming, deadlineMs } = message;
  if (message.close) {
    client.close();
    port.close();
    return;
  }
  const buffer = Buffer.from(request.buffer, request.byteOffset, request.byteLength);
  const options = { deadline: Date.now() + deadlineMs };
  if (!streaming) {
    client.makeUnaryRequest(path, bytes, bytes, buffer, metadata(), options, (error, response) =>
      reply(error ? failure(id, error) : { id, response }),
    );
    return;
  }
  const chunks = [];
  const stream = client.makeServerStreamRequest(path, bytes, bytes, buffer, metadata(), options);
  stream.on("data", (chunk) => chunks.push(chunk));
  // 'status' comes once, after the last message, for success and failure alike ('end' may
  // precede an error). The 'error' listener only keeps the stream from throwing.
  stream.on("error", () => {});
  stream.on("status", (status) => reply(status.code === grpc.status.OK ? { id, chunks } : failure(id, status)));
});
