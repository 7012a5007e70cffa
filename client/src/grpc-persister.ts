/**
 * GrpcStatePersister: the async persister over gRPC. It implements the same interface as the
 * in-process backends, so an app moves from an embedded store to the server by one line. Saves
 * and Loads go over one BatchedPipeline stream, the calls made in one event-loop pass grouped in
 * one message (pipeline.ts).
 */
import * as grpc from "@grpc/grpc-js";
import { withCodec } from "./codec";
import { serviceDefinition } from "./grpc-definition";
import type { AsyncStatePersister, DeletePartitionResult, ListStepsQuery, LoadQuery, PersistedState, PruneQuery, SaveInput, SaveResult, StepInfo } from "./persister";
import {
  StatePersister,
  type DeleteAppResponse,
  type DeletePartitionResponse,
  type IsInitializedResponse,
  type ListAppIdsResponse,
  type ListStepsResponse,
  type PruneResponse,
  type LoadResponse,
  type SaveResponse,
} from "./gen/burr/state/v1/state_persister_pb";
import {
  deleteAppRequest,
  deletePartitionRequest,
  fromDeletePartitionResponse,
  fromWireStep,
  listRequest,
  listStepsRequest,
  loadRequest,
  persistedState,
  persisterError,
  pruneRequest,
  saveRequest,
  savedAt,
} from "./wire";
import { backoffMs, callMetadata, channelCredentials, isRetryable, resolveOptions, type ClientOptions, type ResolvedOptions } from "./options";
import { CallPipeline, type PipelinedCall, type PipelineStream } from "./pipeline";

const StatePersisterClient = grpc.makeGenericClientConstructor(serviceDefinition(StatePersister), StatePersister.typeName);

type Unary = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response: never) => void) => void;

type ServerStreamCall<T> = (request: object, metadata: grpc.Metadata, options: grpc.CallOptions) => grpc.ClientReadableStream<T>;

/** States this large go as unary calls, so they never hold up the small calls queued behind them on the pipeline. */
const unaryFromBytes = 1024 * 1024;

/** The byte-level client; GrpcStatePersister adds the state codec on top. */
export class RawGrpcPersister implements AsyncStatePersister<Uint8Array> {
  private readonly client: grpc.Client & Record<string, Unary>;
  private readonly pipeline: CallPipeline;

  constructor(private readonly options: ResolvedOptions<unknown>) {
    const credentials = channelCredentials(options.tls);
    this.client = new StatePersisterClient(options.address, credentials, options.channelOptions) as unknown as grpc.Client & Record<string, Unary>;
    const openPipeline = this.client.batchedPipeline as unknown as (metadata: grpc.Metadata) => PipelineStream;
    this.pipeline = new CallPipeline(() => openPipeline.call(this.client, callMetadata(options.token)), options.address);
  }

  /** A Save or Load: on the pipeline, or unary when the server has no BatchedPipeline or the state is large. */
  private async pipelined<T>(method: "save" | "load", request: object, call: PipelinedCall, large: boolean): Promise<T> {
    if (this.pipeline.supported && !large) {
      try {
        return (await this.pipeline.call(call, this.options.deadlineMs)).value as T;
      } catch (error) {
        // UNIMPLEMENTED: the server has no BatchedPipeline and nothing ran, so even a Save is safe to send again.
        if ((error as { code?: number }).code !== grpc.status.UNIMPLEMENTED || this.pipeline.supported) throw error;
      }
    }
    return this.call<T>(method, request);
  }

  private call<T>(method: string, request: object, deadlineMs = this.options.deadlineMs): Promise<T> {
    return new Promise((resolve, reject) => {
      const deadline = Date.now() + deadlineMs;
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

  async *streamAppIds(partitionKey?: string | null): AsyncIterable<string> {
    for await (const chunk of this.serverStream<ListAppIdsResponse>("listAppIds", listRequest(partitionKey))) yield* chunk.appIds;
  }

  async *listSteps(query: ListStepsQuery): AsyncIterable<StepInfo<Uint8Array>> {
    const request = listStepsRequest(query);
    for await (const chunk of this.serverStream<ListStepsResponse>("listSteps", request)) {
      for (const step of chunk.steps) yield fromWireStep(step, request.includeState);
    }
  }

  /** A server-streamed call's chunks. Retried only until the first chunk arrives: after that a retry could repeat items. */
  private async *serverStream<T>(method: "listAppIds" | "listSteps", request: object): AsyncIterable<T> {
    for (let attempt = 1; ; attempt++) {
      let received = false;
      const stream = (this.client[method] as unknown as ServerStreamCall<T>).call(this.client, request, callMetadata(this.options.token), {
        deadline: Date.now() + this.options.listDeadlineMs,
      });
      try {
        for await (const chunk of stream as AsyncIterable<T>) {
          received = true;
          yield chunk;
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

  /**
   * Deletes get the listing deadline (they run in batches and may take a while) and are not
   * retried: an attempt that failed may have deleted some batches; calling again is safe.
   */
  async deleteApp(partitionKey: string | null | undefined, appId: string): Promise<number> {
    return Number((await this.call<DeleteAppResponse>("deleteApp", deleteAppRequest(partitionKey, appId), this.options.listDeadlineMs)).stepsDeleted);
  }

  async deletePartition(partitionKey: string | null | undefined): Promise<DeletePartitionResult> {
    return fromDeletePartitionResponse(await this.call<DeletePartitionResponse>("deletePartition", deletePartitionRequest(partitionKey), this.options.listDeadlineMs));
  }

  async prune(query: PruneQuery): Promise<number> {
    return Number((await this.call<PruneResponse>("prune", pruneRequest(query), this.options.listDeadlineMs)).stepsDeleted);
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
  listSteps = (query: ListStepsQuery) => this.inner.listSteps(query);
  deleteApp = (partitionKey: string | null | undefined, appId: string) => this.inner.deleteApp(partitionKey, appId);
  deletePartition = (partitionKey: string | null | undefined) => this.inner.deletePartition(partitionKey);
  prune = (query: PruneQuery) => this.inner.prune(query);
  close = () => this.inner.close();
}
