/**
 * SyncGrpcStatePersister: the same calls as GrpcStatePersister, blocking, for code that cannot
 * await (Burr's synchronous persister). A worker thread runs the gRPC call while this thread
 * waits on Atomics.wait; messages are encoded and decoded here with the generated schemas.
 */
import { create, fromBinary, toBinary, type DescMessage, type MessageShape } from "@bufbuild/protobuf";
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import * as path from "node:path";
import { withCodecSync, type JsonValue } from "../../core/codec";
import { Code, PersisterError } from "../../core/errors";
import type { LoadQuery, PersistedState, SaveInput, SaveResult, SyncStatePersister } from "../../core/persister";
import {
  InitializeRequestSchema,
  InitializeResponseSchema,
  IsInitializedRequestSchema,
  IsInitializedResponseSchema,
  ListAppIdsRequestSchema,
  ListAppIdsResponseSchema,
  LoadRequestSchema,
  LoadResponseSchema,
  SaveRequestSchema,
  SaveResponseSchema,
  StatePersister,
} from "../../gen/ts/burr/state/v1/state_persister_pb";
import { listRequest, loadRequest, persistedState, persisterError, saveRequest, savedAt } from "./messages";
import { backoffMs, channelCredentials, isRetryable, resolveOptions, type ClientOptions, type ResolvedOptions } from "./options";

type Reply = { id: number; response?: Uint8Array; chunks?: Uint8Array[]; error?: { code: number; details: string } };

/** Sleeps this thread: there is no event loop turn to wait for in a synchronous call. */
const sleep = (ms: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

class RawSyncGrpcPersister implements SyncStatePersister<Uint8Array> {
  private readonly worker: Worker;
  private readonly port: MessagePort;
  private readonly signal = new Int32Array(new SharedArrayBuffer(4));
  private nextId = 0;
  private closed = false;

  constructor(private readonly options: ResolvedOptions<unknown>) {
    // Bad TLS material fails here, as in the async client, not later inside the worker.
    channelCredentials(options.tls);
    const { port1, port2 } = new MessageChannel();
    this.port = port1;
    this.worker = new Worker(path.join(__dirname, "sync-worker.js"), {
      workerData: { port: port2, signal: this.signal, address: options.address, tls: options.tls, token: options.token, channelOptions: options.channelOptions },
      transferList: [port2],
    });
    this.worker.unref();
    this.port.unref();
  }

  /** One blocking round trip: encode here, send bytes through the worker, decode here. */
  private call<I extends DescMessage, O extends DescMessage>(
    name: string,
    input: I,
    request: MessageShape<I>,
    output: O,
    streaming = false,
  ): MessageShape<O>[] {
    if (this.closed) throw new PersisterError(Code.FAILED_PRECONDITION, "the persister is closed");
    const id = ++this.nextId;
    const deadlineMs = streaming ? this.options.listDeadlineMs : this.options.deadlineMs;
    Atomics.store(this.signal, 0, 0);
    this.port.postMessage({ id, path: `/${StatePersister.typeName}/${name}`, request: toBinary(input, request), streaming, deadlineMs });
    // The worker enforces the call deadline; this wait only guards against a stuck worker.
    if (Atomics.wait(this.signal, 0, 0, deadlineMs + 5_000) === "timed-out") {
      throw new PersisterError(Code.DEADLINE_EXCEEDED, `${name} got no answer within ${deadlineMs} ms (server ${this.options.address})`);
    }
    let reply: Reply | undefined;
    for (let message = receiveMessageOnPort(this.port); message; message = receiveMessageOnPort(this.port)) {
      if ((message.message as Reply).id === id) reply = message.message as Reply;
    }
    if (!reply) throw new PersisterError(Code.INTERNAL, `${name}: the worker answered without a reply`);
    if (reply.error) throw persisterError(reply.error, this.options.address);
    const parts = streaming ? reply.chunks! : [reply.response!];
    return parts.map((bytes) => fromBinary(output, bytes));
  }

  private retried<T>(work: () => T): T {
    for (let attempt = 1; ; attempt++) {
      try {
        return work();
      } catch (error) {
        if (attempt >= this.options.retry.attempts || !isRetryable(error as { code?: number })) throw error;
        sleep(backoffMs(this.options.retry, attempt));
      }
    }
  }

  initialize(): void {
    this.retried(() => this.call("Initialize", InitializeRequestSchema, create(InitializeRequestSchema), InitializeResponseSchema));
  }

  isInitialized(): boolean {
    const request = create(IsInitializedRequestSchema);
    const [response] = this.retried(() => this.call("IsInitialized", IsInitializedRequestSchema, request, IsInitializedResponseSchema));
    return response!.initialized;
  }

  save(input: SaveInput<Uint8Array>): SaveResult {
    const [response] = this.call("Save", SaveRequestSchema, saveRequest(input), SaveResponseSchema);
    return { createdAt: savedAt(response!) };
  }

  load(query: LoadQuery): PersistedState<Uint8Array> | null {
    const request = loadRequest(query);
    const [response] = this.retried(() => this.call("Load", LoadRequestSchema, request, LoadResponseSchema));
    return persistedState(response!);
  }

  listAppIds(partitionKey?: string | null): string[] {
    const request = listRequest(partitionKey);
    const chunks = this.retried(() => this.call("ListAppIds", ListAppIdsRequestSchema, request, ListAppIdsResponseSchema, true));
    return chunks.flatMap((chunk) => chunk.appIds);
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.port.postMessage({ close: true });
    void this.worker.terminate();
  }
}

export class SyncGrpcStatePersister<S = JsonValue> implements SyncStatePersister<S> {
  private readonly inner: SyncStatePersister<S>;

  constructor(options: ClientOptions<S>) {
    const resolved = resolveOptions(options);
    this.inner = withCodecSync(new RawSyncGrpcPersister(resolved), resolved.codec);
  }

  initialize = () => this.inner.initialize();
  isInitialized = () => this.inner.isInitialized();
  save = (input: SaveInput<S>) => this.inner.save(input);
  load = (query: LoadQuery) => this.inner.load(query);
  listAppIds = (partitionKey?: string | null) => this.inner.listAppIds(partitionKey);
  close = () => this.inner.close();
}
