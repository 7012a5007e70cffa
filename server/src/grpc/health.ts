/**
 * grpc.health.v1.Health: SERVING for "" and each served service while the server runs and its
 * store can be reached, NOT_SERVING while the store cannot (see store-monitor.ts) and once
 * shutdown begins (load balancers stop sending before calls are refused). Watchers get every
 * change.
 */
import { EventEmitter } from "node:events";
import { create } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "@burr-state/client/protocol";
import {
  Health,
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthCheckResponseSchema,
  type HealthCheckRequest,
} from "@burr-state/client/gen/grpc/health/v1/health_pb";

/**
 * Whether the store can be reached, as the store monitor last found it. Every HealthService
 * follows the one it is given (by default the process's own, which main.ts's monitor sets).
 */
export class StoreReachability extends EventEmitter<{ change: [reachable: boolean] }> {
  private state = true;

  get reachable(): boolean {
    return this.state;
  }

  set(reachable: boolean): void {
    if (reachable === this.state) return;
    this.state = reachable;
    this.emit("change", reachable);
  }
}

/** The process's store reachability: the server has one store. */
export const storeReachability = new StoreReachability();

export class HealthService {
  readonly definition = serviceDefinition(Health);
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Set<{ service: string; call: grpc.ServerWritableStream<HealthCheckRequest, object> }>();
  private readonly follow = (reachable: boolean) => this.setAll(reachable ? ServingStatus.SERVING : ServingStatus.NOT_SERVING);

  constructor(
    services: string[],
    private readonly store: StoreReachability = storeReachability,
  ) {
    const status = store.reachable ? ServingStatus.SERVING : ServingStatus.NOT_SERVING;
    for (const service of ["", ...services]) this.statuses.set(service, status);
    store.on("change", this.follow);
  }

  /** Every service to `status`, told to each watcher whose status changed. */
  private setAll(status: ServingStatus): void {
    for (const service of this.statuses.keys()) this.statuses.set(service, status);
    for (const watcher of this.watchers) {
      if (this.statuses.has(watcher.service)) watcher.call.write(this.answer(watcher.service, ServingStatus.SERVICE_UNKNOWN));
    }
  }

  /** Every service to NOT_SERVING for good, told to watchers, whose streams then end. */
  shuttingDown(): void {
    this.store.off("change", this.follow);
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
