/** Assembles the gRPC server: the persister service, health, reflection, and a graceful stop. */
import * as grpc from "@grpc/grpc-js";
import type { GuardedPersister } from "../../core/guard";
import { file_burr_state_v1_state_persister, StatePersister } from "../../gen/ts/burr/state/v1/state_persister_pb";
import { file_grpc_health_v1_health } from "../../gen/ts/grpc/health/v1/health_pb";
import { HealthService } from "./grpc/health";
import { addReflection } from "./grpc/reflection";
import { stateService } from "./grpc/state-service";
import type { Logger } from "./log";

export interface ServerOptions {
  /** host:port; port 0 picks a free one. */
  listen: string;
  persister: GuardedPersister;
  log: Logger;
  maxMessageBytes: number;
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
  const server = new grpc.Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": options.maxMessageBytes,
  });
  const service = stateService(options.persister, options.log);
  server.addService(service.definition, service.implementation);
  const health = new HealthService([StatePersister.typeName]);
  server.addService(health.definition, health.implementation);
  addReflection(server, [file_burr_state_v1_state_persister, file_grpc_health_v1_health]);

  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync(options.listen, grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );

  let stopping: Promise<void> | null = null;
  const stop = () =>
    (stopping ??= (async () => {
      health.shuttingDown();
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
