/**
 * The thread behind SyncGrpcStatePersister: the async byte-level client (RawGrpcPersister, with
 * its transport, retries and deadlines) answering one call at a time. Each answer is posted on
 * the port, then the signal wakes the calling thread, which is blocked in Atomics.wait. (The
 * bootstrap in sync-persister.ts loads this module, after hooking the thread's exit.)
 */
import { workerData } from "node:worker_threads";
import { RawGrpcPersister } from "./grpc-persister";
import { persisterError } from "./wire";
import { resolveOptions, type TlsOptions } from "./options";
import { signalReplied, type Reply, type Request, type WorkerSetup } from "./sync-protocol";

const { port, signal, options } = workerData as WorkerSetup;

// PEM Buffers arrive as plain Uint8Arrays, which grpc-js's createSsl refuses.
const asBuffer = (bytes: Uint8Array | undefined) => bytes && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const tls: TlsOptions | undefined = options.tls && {
  rootCerts: asBuffer(options.tls.rootCerts),
  certChain: asBuffer(options.tls.certChain),
  privateKey: asBuffer(options.tls.privateKey),
};
const client = new RawGrpcPersister(resolveOptions({ ...options, tls }));

port.on("message", async ({ method, args }: Request) => {
  let reply: Reply;
  const transfer: ArrayBuffer[] = [];
  try {
    const value = await (client[method] as (...args: unknown[]) => Promise<unknown>).apply(client, args);
    const row = value as { state?: Uint8Array } | null;
    if (method === "load" && row?.state) {
      // The state is a view into the received message: posting it would copy that whole
      // buffer. A copy of its own bytes is moved instead.
      row.state = new Uint8Array(row.state);
      transfer.push(row.state.buffer as ArrayBuffer);
    }
    reply = { value };
  } catch (error) {
    const failure = persisterError(error, options.address);
    reply = { error: { code: failure.code, message: failure.message } };
  }
  port.postMessage(reply, transfer);
  Atomics.store(signal, 0, signalReplied);
  Atomics.notify(signal, 0);
});
