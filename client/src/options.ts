/** Connection settings shared by the async and sync clients. */
import * as grpc from "@grpc/grpc-js";
import { Code } from "./errors";
import { jsonCodec, type StateCodec } from "./codec";

export interface RetryPolicy {
  /** Tries in all, the first included. 1 disables retries. */
  attempts: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
}

/** TLS material, PEM-encoded. Buffers rather than credential objects: they also cross into the sync client's worker. */
export interface TlsOptions {
  /** CA bundle that signed the server's certificate; default: the system's roots. */
  rootCerts?: Buffer;
  /** Client certificate and key, for servers that require mutual TLS. */
  certChain?: Buffer;
  privateKey?: Buffer;
}

export interface ClientOptions<S> {
  /** host:port of the server, e.g. "127.0.0.1:50051". */
  address: string;
  /** Connect with TLS (default: plaintext). */
  tls?: TlsOptions;
  /** Bearer token, sent as `authorization: Bearer <token>` with every call. */
  token?: string;
  /** Deadline of each unary call. Default 10 s. */
  deadlineMs?: number;
  /** Deadline of a whole ListAppIds or ListSteps stream, and of a DeleteApp, DeletePartition or Prune. Default 60 s. */
  listDeadlineMs?: number;
  /**
   * UNAVAILABLE is retried with exponential backoff for the calls that are safe to repeat
   * (Initialize, IsInitialized, Load, ListAppIds); never for Save, which may have landed.
   */
  retry?: Partial<RetryPolicy>;
  /** How states are encoded: JSON (default) or rawCodec for exact bytes. */
  codec?: StateCodec<S>;
  channelOptions?: grpc.ChannelOptions;
}

export interface ResolvedOptions<S> {
  address: string;
  tls?: TlsOptions;
  token?: string;
  channelOptions: grpc.ChannelOptions;
  deadlineMs: number;
  listDeadlineMs: number;
  retry: RetryPolicy;
  codec: StateCodec<S>;
}

export function resolveOptions<S>(options: ClientOptions<S>): ResolvedOptions<S> {
  return {
    address: options.address,
    tls: options.tls,
    token: options.token,
    // The server bounds what it sends; grpc-js would otherwise refuse answers over 4 MiB.
    channelOptions: {
      "grpc.max_receive_message_length": -1,
      // Reconnect soon after the server comes back, so retries within the budget can succeed.
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 2000,
      ...options.channelOptions,
    },
    deadlineMs: options.deadlineMs ?? 10_000,
    listDeadlineMs: options.listDeadlineMs ?? 60_000,
    retry: { attempts: 5, initialBackoffMs: 100, maxBackoffMs: 2000, ...options.retry },
    codec: options.codec ?? (jsonCodec as unknown as StateCodec<S>),
  };
}

/** The pause before try number `attempt + 1` (full jitter, capped). */
export function backoffMs(policy: RetryPolicy, attempt: number): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (attempt - 1));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

export const isRetryable = (error: { code?: number }) => error.code === Code.UNAVAILABLE;

export const channelCredentials = (tls: TlsOptions | undefined) =>
  tls ? grpc.credentials.createSsl(tls.rootCerts ?? null, tls.privateKey ?? null, tls.certChain ?? null) : grpc.credentials.createInsecure();

/** Per-call metadata: the bearer token, when there is one. */
export function callMetadata(token: string | undefined): grpc.Metadata {
  const metadata = new grpc.Metadata();
  if (token) metadata.set("authorization", `Bearer ${token}`);
  return metadata;
}
