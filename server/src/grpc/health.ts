/**
 * grpc.health.v1.Health: SERVING for "" and each served service while the server runs,
 * NOT_SERVING once shutdown begins (load balancers stop sending before calls are refused).
 */
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "@burr-state/client/protocol";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
} from "@burr-state/client/gen/grpc/health/v1/health_pb";

export class HealthService {
  readonly definition = serviceDefinition(Health);
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<HealthCheckRequest, object> }>();

  constructor(services: string[]) {
    for (const service of ["", ...services]) this.statuses.set(service, ServingStatus.SERVING);
  }

  /** Every service to NOT_SERVING, told to watchers, whose streams then end. */
  shuttingDown(): void {
    for (const service of this.statuses.keys()) this.statuses.set(service, ServingStatus.NOT_SERVING);
    for (const watcher of this.watchers) {
      watcher.call.write(this.answer(watcher.service, ServingStatus.SERVICE_UNKNOWN));
      watcher.call.end();
    }
    this.watchers.clear();
  }

  private answer(service: string, unknown: ServingStatus) {
    return create(HealthCheckResponseSchema, { status: this.statuses.get(service) ?? unknown });
  }

  readonly implementation: grpc.UntypedServiceImplementation = {
    check: (call: grpc.ServerUnaryCall<HealthCheckRequest, object>, callback: grpc.sendUnaryData<object>) => {
      const service = call.request.service;
      if (!this.statuses.has(service)) return callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${service}` });
      callback(null, this.answer(service, ServingStatus.SERVICE_UNKNOWN));
    },
    list: (_call: grpc.ServerUnaryCall<object, object>, callback: grpc.sendUnaryData<object>) => {
      const statuses = Object.fromEntries([...this.statuses.keys()].map((service) => [service, this.answer(service, ServingStatus.UNKNOWN)]));
      callback(null, { statuses });
    },
    watch: (call: grpc.ServerWritableStream<HealthCheckRequest, object>) => {
      const watcher = { service: call.request.service, call };
      call.write(this.answer(watcher.service, ServingStatus.SERVICE_UNKNOWN));
      this.watchers.add(watcher);
      call.on("cancelled", () => this.watchers.delete(watcher));
    },
  };
}
