/**
 * GrpcStatePersister: the async persister over gRPC. It implements the same interface as the
 * in-process backends, so an app moves from an embedded store to the server by one line.
 */
import * as grpc from "@grpc/grpc-js";
import { withCodec } from "./codec";
import { serviceDefinition } from "./grpc-definition";
import type { AsyncStatePersister, LoadQuery, PersistedState, SaveInput, SaveResult } from "./persister";
import {
  StatePersister,
  type IsInitializedResponse,
  type ListAppIdsResponse,
  type LoadResponse,
  type SaveResponse,
} from "./gen/burr/state/v1/state_persister_pb";
import { listRequest, loadRequest, persistedState, persisterError, saveRequest, savedAt } from "./wire";
import { backoffMs, callMetadata, channelCredentials, isRetryable, resolveOptions, type ClientOptions, type ResolvedOptions } from "./options";
import { CallPipeline, type PipelinedCall, type PipelineStream } from "./pipeline";

const StatePersisterClient = grpc.makeGenericClientConstructor(serviceDefinition(StatePersister), StatePersister.typeName);

type Unary = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: never) => void) => void;

type ListCall = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<ListAppIdsResponse>;

/** States this large go as unary calls, so they never hold up the small calls queued behind them on the pipeline. */
const unaryFromBytes = 1024 * 1024;

/** The byte-level client; GrpcStatePersister adds the state codec on top. */
export class RawGrpcPersister implements AsyncStatePersister<Uint8Array> {
  private readonly client: grpc.Client & Record<string, Unary>;
  private readonly pipeline: CallPipeline;

  constructor(private readonly options: ResolvedOptions<unknown>) {
    const credentials = channelCredentials(options.tls);
    this.client = new StatePersisterClient(options.address, credentials, options.channelOptions) as unknown as grpc.Client & Record<string, Unary>;
    const openPipeline = this.client.pipeline as unknown as (metadata: grpc.Metadata) => PipelineStream;
    this.pipeline = new CallPipeline(() => openPipeline.call(this.client, callMetadata(options.token)), options.address);
  }

  /** A Save or Load: on the pipeline, or unary when the server has none or the state is large. */
  private async pipelined<T>(method: "save" | "load", request: object, call: PipelinedCall, large: boolean): Promise<T> {
    if (this.pipeline.supported && !large) {
      try {
        return (await this.pipeline.call(call, this.options.deadlineMs)).value as T;
      } catch (error) {
        // UNIMPLEMENTED: nothing ran, so even a Save is safe to send again.
        if ((error as { code?: number }).code !== grpc.status.UNIMPLEMENTED || this.pipeline.supported) throw error;
      }
    }
    return this.call<T>(method, request);
  }

  private call<T>(method: string, request: object): Promise<T> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + this.options.deadlineMs;
      this.client[method]!.call(this.client, request, callMetadata(this.options.token), { deadline }, (error, response) =>
        error ? reject(persisterError(error, this.options.address)) : resolve(response as T),
      );
    });
  }

  /** Retries UNAVAILABLE with backoff: only for calls that are safe to repeat. */
  private async retried<T>(work: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await work();
      } catch (error) {
        if (attempt >= this.options.retry.attempts || !isRetryable(error as { code?: number })) throw error;
        await new Promise((resolve) => setTimeout(resolve, backoffMs(this.options.retry, attempt)));
      }
    }
  }

  async initialize(): Promise<void> {
    await this.retried(() => this.call("initialize", {}));
  }

  async isInitialized(): Promise<boolean> {
    const response = await this.retried(() => this.call<IsInitializedResponse>("isInitialized", {}));
    return response.initialized;
  }

  async save(input: SaveInput<Uint8Array>): Promise<SaveResult> {
    const request = saveRequest(input);
    const large = request.state.byteLength >= unaryFromBytes;
    return { createdAt: savedAt(await this.pipelined<SaveResponse>("save", request, { case: "save", value: request }, large)) };
  }

  async load(query: LoadQuery): Promise<PersistedState<Uint8Array> | null> {
    const request = loadRequest(query);
    return persistedState(await this.retried(() => this.pipelined<LoadResponse>("load", request, { case: "load", value: request }, false)));
  }

  async listAppIds(partitionKey?: string | null): Promise<string[]> {
    const ids: string[] = [];
    for await (const id of this.streamAppIds(partitionKey)) ids.push(id);
    return ids;
  }

  /** Retried only until the first chunk arrives: after that a retry could repeat ids. */
  async *streamAppIds(partitionKey?: string | null): AsyncIterable<string> {
    const request = listRequest(partitionKey);
    for (let attempt = 1; ; attempt++) {
      let received = false;
      const stream = (this.client.listAppIds as unknown as ListCall).call(this.client, request, callMetadata(this.options.token), {
        deadline: Date.now() + this.options.listDeadlineMs,
      });
      try {
        for await (const chunk of stream as AsyncIterable<ListAppIdsResponse>) {
          received = true;
          yield* chunk.appIds;
        }
        return;
      } catch (error) {
        const failure = persisterError(error, this.options.address);
        if (received || attempt >= this.options.retry.attempts || !isRetryable(failure)) throw failure;
        await new Promise((resolve) => setTimeout(resolve, backoffMs(this.options.retry, attempt)));
      } finally {
        stream.cancel();
      }
    }
  }

  async close(): Promise<void> {
    this.pipeline.close();
    this.client.close();
  }
}

export class GrpcStatePersister<S = import("./codec").JsonValue> implements AsyncStatePersister<S> {
  private readonly inner: AsyncStatePersister<S>;

  constructor(options: ClientOptions<S>) {
    const resolved = resolveOptions(options);
    this.inner = withCodec(new RawGrpcPersister(resolved), resolved.codec);
  }

  initialize = () => this.inner.initialize();
  isInitialized = () => this.inner.isInitialized();
  save = (input: SaveInput<S>) => this.inner.save(input);
  load = (query: LoadQuery) => this.inner.load(query);
  listAppIds = (partitionKey?: string | null) => this.inner.listAppIds(partitionKey);
  streamAppIds = (partitionKey?: string | null) => this.inner.streamAppIds(partitionKey);
  close = () => this.inner.close();
}
