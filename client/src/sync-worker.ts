/**
 * The thread behind SyncGrpcStatePersister: the async byte-level client (RawGrpcPersister, with
 * its transport, retries and deadlines) answering one call at a time. It marks each request
 * taken, then posts the answer on the port and the signal wakes the calling thread, which is
 * blocked in Atomics.wait (sync-protocol.ts). (The
 * bootstrap in sync-persister.ts loads this module, after hooking the thread's exit.)
 */
import { workerData } from "node:worker_threads";
import { RawGrpcPersister } from "./grpc-persister";
import { persisterError } from "./wire";
import { resolveOptions, type TlsOptions } from "./options";
import { postAnswer, takenCell, type Reply, type Request, type StepsChunk, type WorkerSetup } from "./sync-protocol";
import { Code, PersisterError } from "./errors";
import type { ListStepsQuery, StepInfo } from "./persister";

const { port, signal, options } = workerData as WorkerSetup;

// PEM Buffers arrive as plain Uint8Arrays, which grpc-js's createSsl refuses.
const asBuffer = (bytes: Uint8Array | undefined) => bytes && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
const tls: TlsOptions | undefined = options.tls && {
  rootCerts: asBuffer(options.tls.rootCerts),
  certChain: asBuffer(options.tls.certChain),
  privateKey: asBuffer(options.tls.privateKey),
};
const client = new RawGrpcPersister(resolveOptions({ ...options, tls }));

/** ListSteps streams the calling thread is reading, by id. */
const listings = new Map<number, AsyncIterator<StepInfo<Uint8Array>>>();
let lastListing = 0;

/** The calls that are not plain client methods: a listing read a chunk at a time. */
const listingCalls = {
  listStepsOpen: (query: ListStepsQuery) => {
    listings.set(++lastListing, client.listSteps(query)[Symbol.asyncIterator]());
    return lastListing;
  },
  listStepsNext: async (id: number, max: number): Promise<StepsChunk> => {
    const steps = listings.get(id);
    if (!steps) throw new PersisterError(Code.FAILED_PRECONDITION, "this step listing is closed");
    const chunk: StepInfo<Uint8Array>[] = [];
    while (chunk.length < max) {
      const next = await steps.next();
      if (next.done) {
        listings.delete(id);
        return { steps: chunk, done: true };
      }
      chunk.push(next.value);
    }
    return { steps: chunk, done: false };
  },
  listStepsClose: async (id: number) => {
    const steps = listings.get(id);
    listings.delete(id);
    await steps?.return?.();
  },
};

port.on("message", async ({ method, args }: Request) => {
  // From here on the call may reach the server: a save the worker took is never sent again.
  Atomics.store(signal, takenCell, 1);
  let reply: Reply;
  const transfer: ArrayBuffer[] = [];
  try {
    const call = method in listingCalls ? listingCalls[method as keyof typeof listingCalls] : client[method as keyof RawGrpcPersister];
    const value = await (call as (...args: unknown[]) => Promise<unknown>).apply(client, args);
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
  postAnswer(port, signal, reply, transfer);
});
