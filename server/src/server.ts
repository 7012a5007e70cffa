/** Assembles the gRPC server: the persister service, health, reflection, interceptors, a graceful stop. */
import * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "@burr-state/stores";
import { file_burr_state_v1_state_persister, StatePersister } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { file_grpc_health_v1_health } from "@burr-state/client/gen/grpc/health/v1/health_pb";
import type { TokenAuthority } from "./auth";
import { ConnectionGate } from "./connections";
import { HealthService } from "./grpc/health";
import { authInterceptor, defaultDeadlineInterceptor, metricsInterceptor } from "./grpc/interceptors";
import { addReflection } from "./grpc/reflection";
import { stateService } from "./grpc/state-service";
import { InflightBudget } from "./inflight";
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
  /** Open client connections at most (see connections.ts). */
  maxConnections?: number;
  /** Connections that send no call this long after opening are closed. */
  connectionIdleMs?: number;
  /** Request bytes held server-wide at most (see inflight.ts). */
  maxInflightBytes?: number;
}

export interface RunningServer {
  /** The port bound (useful with port 0). */
  port: number;
  /** The connection limit in force (--max-connections, lowered to fit the descriptor limit). */
  maxConnections: number;
  /** Stops accepting calls, lets in-flight ones finish, closes the store. */
  stop(): Promise<void>;
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  const gate = new ConnectionGate({
    listen: options.listen,
    credentials: options.credentials ?? grpc.ServerCredentials.createInsecure(),
    maxConnections: options.maxConnections ?? 1000,
    idleMs: options.connectionIdleMs ?? 10_000,
    log: options.log,
  });
  const budget = new InflightBudget({ limit: options.maxInflightBytes ?? Math.max(128 * 1024 * 1024, options.maxMessageBytes), maxMessageBytes: options.maxMessageBytes, log: options.log });
  const interceptors = [
    ...(options.metrics ? [metricsInterceptor(options.metrics)] : []),
    gate.interceptor,
    authInterceptor(options.authority ?? (() => null)),
    defaultDeadlineInterceptor(options.defaultDeadlineMs ?? 30_000),
    // Last: it refuses calls past the byte budget, and its answers must pass the others.
    budget.interceptor,
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
    // Connections whose calls have all ended are asked to go (GOAWAY; clients reconnect when needed).
    "grpc.max_connection_idle_ms": 5 * 60_000,
  });
  const service = stateService(options.persister, options.log, {
    maxMessageBytes: options.maxMessageBytes,
    observe: options.metrics && ((path, code, seconds) => options.metrics!.observeCall(path, code, seconds)),
  });
  server.addService(service.definition, service.implementation);
  const health = new HealthService([StatePersister.typeName]);
  server.addService(health.definition, health.implementation);
  addReflection(server, [file_burr_state_v1_state_persister, file_grpc_health_v1_health]);

  // Our own listeners feed connections to grpc-js: they count them, close silent ones, and end them all at stop.
  const port = await gate.listen(server);

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      health.shuttingDown();
      service.drain(options.shutdownGraceMs ?? 5000);
      // No new connections; connections that never sent a call have nothing to finish.
      gate.stopAccepting();
      await new Promise<void>((resolve) => {
        // When the grace period ends, whatever is left is cut: grpc-js's own shutdown waits for
        // clients that never read or never close, so their sockets are destroyed here.
        const force = setTimeout(() => {
          server.forceShutdown();
          void gate.destroyAll().then(resolve);
        }, options.shutdownGraceMs ?? 5000);
        server.tryShutdown(() => {
          clearTimeout(force);
          resolve();
        });
      });
      await options.persister.close();
    })());
  return { port, maxConnections: gate.maxConnections, stop };
}
