/** Assembles the gRPC server: the persister service, health, reflection, interceptors, a graceful stop. */
import * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "@burr-state/stores";
import { file_burr_state_v1_state_persister, StatePersister } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { file_grpc_health_v1_health } from "@burr-state/client/gen/grpc/health/v1/health_pb";
import type { TokenAuthority } from "./auth";
import { HealthService } from "./grpc/health";
import { authInterceptor, defaultDeadlineInterceptor, metricsInterceptor } from "./grpc/interceptors";
import { addReflection } from "./grpc/reflection";
import { stateService } from "./grpc/state-service";
import type { Logger } from "./log";
import type { Metrics } from "./metrics";

export interface ServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  persister: GuardedPersister;
  log: Logger;
  credentials?: grpc.ServerCredentials;
  /** The current tokens (null: no tokens needed); read per call so reloads apply at once. */
  authority?: () => TokenAuthority | null;
  metrics?: Metrics;
  maxMessageBytes: number;
  maxConcurrentStreams?: number;
  keepaliveMs?: number;
  defaultDeadlineMs?: number;
  /** How long open streams may run on after a stop is asked before they are cancelled. */
  shutdownGraceMs?: number;
}

export interface RunningServer {
  /** The port bound (useful with port 0). */
  port: number;
  /** Stops accepting calls, lets in-flight ones finish, closes the store. */
  stop(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const interceptors = [
    ...(options.metrics ? [metricsInterceptor(options.metrics)] : []),
    authInterceptor(options.authority ?? (() => null)),
    defaultDeadlineInterceptor(options.defaultDeadlineMs ?? 30_000),
  ];
  const keepaliveMs = options.keepaliveMs ?? 60_000;
  const server = new grpc.Server({
    interceptors,
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
    "grpc.max_concurrent_streams": options.maxConcurrentStreams ?? 100,
    "grpc.keepalive_time_ms": keepaliveMs,
    "grpc.keepalive_timeout_ms": 20_000,
    // Clients may ping this often (the grpc-js client default is 5 min); faster pings are abuse.
    "grpc.http2.min_ping_interval_without_data_ms": 10_000,
  });
  const service = stateService(options.persister, options.log, options.metrics && ((path, code, seconds) => options.metrics!.observeCall(path, code, seconds)));
  server.addService(service.definition, service.implementation);
  const health = new HealthService([StatePersister.typeName]);
  server.addService(health.definition, health.implementation);
  addReflection(server, [file_burr_state_v1_state_persister, file_grpc_health_v1_health]);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      health.shuttingDown();
      service.drain(options.shutdownGraceMs ?? 5000);
      await new Promise<void>((resolve) => {
        const force = setTimeout(() => server.forceShutdown(), options.shutdownGraceMs ?? 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await options.persister.close();
    })());
  return { port, stop };
}
