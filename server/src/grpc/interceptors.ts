/**
 * What applies to every call before and around the handlers: bearer-token checks, a default
 * deadline for calls that come without one, and call metrics. grpc-js server interceptors see
 * each call's metadata, decoded request and final status.
 */
import * as grpc from "@grpc/grpc-js";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { everyPartition, type Action, type Grant, type TokenAuthority } from "../auth";
import type { Metrics } from "../metrics";
import { callsOf, isPipelined } from "./pipelined";
import { refuseCall } from "./status";

/** Per method of the StatePersister service: the right it needs and whether its request names a partition. */
const needs: Record<string, { action: Action; partitioned: boolean }> = {
  "/burr.state.v1.StatePersister/Initialize": { action: "write", partitioned: false },
  "/burr.state.v1.StatePersister/IsInitialized": { action: "read", partitioned: false },
  "/burr.state.v1.StatePersister/Save": { action: "write", partitioned: true },
  "/burr.state.v1.StatePersister/Load": { action: "read", partitioned: true },
  "/burr.state.v1.StatePersister/ListAppIds": { action: "read", partitioned: true },
  "/burr.state.v1.StatePersister/ListSteps": { action: "read", partitioned: true },
  "/burr.state.v1.StatePersister/DeleteApp": { action: "delete", partitioned: true },
  "/burr.state.v1.StatePersister/DeletePartition": { action: "delete", partitioned: true },
  "/burr.state.v1.StatePersister/Prune": { action: "delete", partitioned: true },
};

/** A Prune without partition_key covers every partition; elsewhere an absent partition is the default one. */
const prunePath = "/burr.state.v1.StatePersister/Prune";


const isHealth = (path: string) => path.startsWith("/grpc.health.v1.Health/");
const healthWatchPath = "/grpc.health.v1.Health/Watch";

const refuse = (call: grpc.ServerInterceptingCallInterface, error: PersisterError) =>
  call.sendStatus({ code: error.code, details: error.message });

/**
 * Tokens: every call but health needs a valid one (reflection included: it shows the schema
 * to token holders only). StatePersister calls also need the right and the partition scope.
 * `authority()` is read at the start of a call and again for every message the call receives
 * and every page a listing sends, so a reload (SIGHUP) applies to open streams too: a revoked
 * token's Pipeline ends UNAUTHENTICATED at its next call, its ListAppIds stream at its next
 * page, and a narrowed scope refuses the partitions it lost from then on. The token is
 * authenticated again only when the tokens were replaced (one SHA-256 and constant-time compares).
 */
export function authInterceptor(authority: () => TokenAuthority | null): grpc.ServerInterceptor {
  return (method, call) => {
    if (!authority() || isHealth(method.path)) return new grpc.ServerInterceptingCall(call);
    const need = needs[method.path];
    let header: string | undefined;
    /** The grant of `header` under the tokens it was last checked against. */
    let checked: { tokens: TokenAuthority; grant: Grant | PersisterError } | null = null;
    const grantNow = (): Grant | PersisterError | null => {
      const tokens = authority();
      if (!tokens) return null;
      if (checked?.tokens !== tokens) {
        const grant = tokens.authenticate(header);
        const revoked = checked !== null && !("code" in checked.grant) && "code" in grant;
        checked = { tokens, grant: revoked ? new PersisterError(Code.UNAUTHENTICATED, "the bearer token is no longer valid: it was revoked") : grant };
      }
      return checked.grant;
    };
    const authorize = (grant: Grant | null, action: Action, partitionKey?: string | typeof everyPartition) =>
      grant ? checked!.tokens.authorize(grant, action, partitionKey) : null;
    /** The partition a ListAppIds stream lists, checked again before each page. */
    let listed: string | undefined;
    let ended = false;
    const end = (error: PersisterError) => {
      ended = true;
      refuse(call, error);
    };
    return new grpc.ServerInterceptingCall(call, {
      start: (next) =>
        next({
          onReceiveMetadata: (metadata, forward) => {
            const value = metadata.get("authorization")[0];
            header = typeof value === "string" ? value : undefined;
            const grant = grantNow();
            if (grant && "code" in grant) return end(grant);
            // Reflection and unknown paths need only a valid token; unknown paths then get UNIMPLEMENTED.
            if (need && !need.partitioned) {
              const denied = authorize(grant, need.action);
              if (denied) return end(denied);
            }
            forward(metadata);
          },
          onReceiveMessage: (message: { partitionKey?: unknown }, forward) => {
            if (ended) return;
            const grant = grantNow();
            if (grant && "code" in grant) return end(grant);
            // A pipelined message's Saves and Loads each need what their unary call needs, checked call by call.
            if (isPipelined(method.path)) {
              for (const pipelined of callsOf(method.path, message)) {
                const { call: which } = pipelined;
                if (which.case !== "save" && which.case !== "load") continue;
                const denied = authorize(grant, which.case === "save" ? "write" : "read", which.value.partitionKey ?? "");
                if (denied) refuseCall(pipelined, denied);
              }
              return forward(message);
            }
            if (need?.partitioned && typeof message?.partitionKey !== "object") {
              const absent = typeof message.partitionKey !== "string";
              const partitionKey = absent && method.path === prunePath ? everyPartition : absent ? "" : (message.partitionKey as string);
              if (method.responseStream && typeof partitionKey === "string") listed = partitionKey;
              const denied = authorize(grant, need.action, partitionKey);
              if (denied) return end(denied);
            } else if (need) {
              const denied = authorize(grant, need.action);
              if (denied) return end(denied);
            }
            forward(message);
          },
        }),
      // Pipeline answers belong to calls checked when they were received; a listing's pages are checked as they go.
      sendMessage: (message, next) => {
        if (ended) return;
        if (method.responseStream && !isPipelined(method.path)) {
          const grant = grantNow();
          if (grant && "code" in grant) return end(grant);
          const denied = need?.partitioned && listed !== undefined ? authorize(grant, need.action, listed) : null;
          if (denied) return end(denied);
        }
        next(message);
      },
    });
  };
}

/**
 * Calls that come without a deadline get this one, so no call can hold resources forever. A
 * Pipeline stream is exempt: it lives as long as its client, and each call in it is bounded by
 * the store's own timeouts. So is a health Watch, which lasts as long as its watcher.
 */
export function defaultDeadlineInterceptor(deadlineMs: number): grpc.ServerInterceptor {
  return (method, call) => {
    // Health Watch streams are meant to stay open for as long as the watcher wants them.
    if (call.getDeadline() !== Infinity || isPipelined(method.path) || method.path === healthWatchPath) return new grpc.ServerInterceptingCall(call);
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
