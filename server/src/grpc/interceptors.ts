/**
 * What applies to every call before and around the handlers: bearer-token checks, a default
 * deadline for calls that come without one, and call metrics. grpc-js server interceptors see
 * each call's metadata, decoded request and final status.
 */
import * as grpc from "@grpc/grpc-js";
import type { PersisterError } from "@burr-state/client/protocol";
import type { TokenAuthority } from "../auth";
import type { Metrics } from "../metrics";
import { refuseCall } from "./status";

/** Per method of the StatePersister service: the right it needs and whether its request names a partition. */
const needs: Record<string, { action: "read" | "write"; partitioned: boolean }> = {
  "/burr.state.v1.StatePersister/Initialize": { action: "write", partitioned: false },
  "/burr.state.v1.StatePersister/IsInitialized": { action: "read", partitioned: false },
  "/burr.state.v1.StatePersister/Save": { action: "write", partitioned: true },
  "/burr.state.v1.StatePersister/Load": { action: "read", partitioned: true },
  "/burr.state.v1.StatePersister/ListAppIds": { action: "read", partitioned: true },
};

/** A Pipeline carries Saves and Loads: each message needs what its call needs, checked per call. */
const pipelinePath = "/burr.state.v1.StatePersister/Pipeline";
type PipelinedCall = { call?: { case?: string; value?: { partitionKey?: unknown } } };

const isHealth = (path: string) => path.startsWith("/grpc.health.v1.Health/");

const refuse = (call: grpc.ServerInterceptingCallInterface, error: PersisterError) =>
  call.sendStatus({ code: error.code, details: error.message });

/**
 * Tokens: every call but health needs a valid one (reflection included: it shows the schema
 * to token holders only). StatePersister calls also need the right and the partition scope.
 * `authority()` is read per call so a reload (SIGHUP) applies to the next call.
 */
export function authInterceptor(authority: () => TokenAuthority | null): grpc.ServerInterceptor {
  return (method, call) => {
    const tokens = authority();
    if (!tokens || isHealth(method.path)) return new grpc.ServerInterceptingCall(call);
    const need = needs[method.path];
    let grant: ReturnType<TokenAuthority["authenticate"]>;
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            const header = metadata.get("authorization")[0];
            grant = tokens.authenticate(typeof header === "string" ? header : undefined);
            if ("code" in grant) return refuse(call, grant);
            // Reflection and unknown paths need only a valid token; unknown paths then get UNIMPLEMENTED.
            if (need && !need.partitioned) {
              const denied = tokens.authorize(grant, need.action);
              if (denied) return refuse(call, denied);
            }
            forward(metadata);
          },
          onReceiveMessage: (message: { partitionKey?: unknown } & PipelinedCall, forward) => {
            const pipelined = method.path === pipelinePath ? message?.call : undefined;
            if ((pipelined?.case === "save" || pipelined?.case === "load") && !("code" in grant)) {
              const partitionKey = typeof pipelined.value?.partitionKey === "string" ? pipelined.value.partitionKey : "";
              const denied = tokens.authorize(grant, pipelined.case === "save" ? "write" : "read", partitionKey);
              if (denied) refuseCall(message, denied);
              return forward(message);
            }
            if (need?.partitioned && !("code" in grant) && typeof message?.partitionKey !== "object") {
              const partitionKey = typeof message.partitionKey === "string" ? message.partitionKey : "";
              const denied = tokens.authorize(grant, need.action, partitionKey);
              if (denied) return refuse(call, denied);
            }
            forward(message);
          },
        }),
    });
  };
}

/**
 * Calls that come without a deadline get this one, so no call can hold resources forever. A
 * Pipeline stream is exempt: it lives as long as its client, and each call in it is bounded by
 * the store's own timeouts.
 */
export function defaultDeadlineInterceptor(deadlineMs: number): grpc.ServerInterceptor {
  return (method, call) => {
    if (call.getDeadline() !== Infinity || method.path === pipelinePath) return new grpc.ServerInterceptingCall(call);
    let timer: NodeJS.Timeout | undefined;
    const clear = () => clearTimeout(timer);
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        timer = setTimeout(
          () => call.sendStatus({ code: grpc.status.DEADLINE_EXCEEDED, details: `the call took longer than the server's default deadline of ${deadlineMs} ms` }),
          deadlineMs,
        );
        timer.unref();
        next({ onCancel: clear });
      },
      sendStatus: (status, next) => {
        clear();
        next(status);
      },
    });
  };
}

/** Counts calls by method and status, times them, and tracks open streams. */
export function metricsInterceptor(metrics: Metrics): grpc.ServerInterceptor {
  return (method, call) => {
    const started = process.hrtime.bigint();
    const streaming = method.responseStream;
    let done = false;
    const finish = (code: number) => {
      if (done) return;
      done = true;
      if (streaming) metrics.openStreams.dec();
      metrics.observeCall(method.path, code, Number(process.hrtime.bigint() - started) / 1e9);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) => {
        if (streaming) metrics.openStreams.inc();
        next({ onCancel: () => finish(grpc.status.CANCELLED) });
      },
      sendStatus: (status, next) => {
        finish(status.code);
        next(status);
      },
    });
  };
}
