/**
 * A server's grpc.health.v1.Health as the tests see it: Check once, or Watch and wait for a
 * status. Statuses are the proto's numbers (ServingStatus.SERVING, NOT_SERVING, ...).
 */
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "@burr-state/client/protocol";
import { Health, HealthCheckResponse_ServingStatus as ServingStatus } from "@burr-state/client/gen/grpc/health/v1/health_pb";

export { ServingStatus };

type HealthClient = grpc.Client & {
  check(request: object, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, answer: { status: number }) => void): void;
  watch(request: object, options: grpc.CallOptions): grpc.ClientReadableStream<{ status: number }>;
};

function healthClient(address: string): HealthClient {
  const Client = grpc.makeGenericClientConstructor(serviceDefinition(Health), Health.typeName);
  return new Client(address, grpc.credentials.createInsecure()) as unknown as HealthClient;
}

/** The status Check answers for `service` ("" is the whole server). */
export async function checkHealth(address: string, service = ""): Promise<ServingStatus> {
  const client = healthClient(address);
  try {
    return await new Promise<ServingStatus>((resolve, reject) =>
      client.check({ service }, { deadline: Date.now() + 5000 }, (error, answer) => (error ? reject(error) : resolve(answer.status))),
    );
  } finally {
    client.close();
  }
}

export interface HealthWatch {
  /** Every status the stream sent, in order. */
  seen: ServingStatus[];
  /** The status the stream ended with, or null while it is open. */
  endedWith(): number | null;
  /** Resolves once the latest status the stream sent is `status`; fails after `ms`. */
  until(status: ServingStatus, ms: number): Promise<void>;
  close(): void;
}

/** Watch on `service`: the first message is the status now, then one per change. */
export function watchHealth(address: string, service = "", deadlineMs: number | null = 10 * 60_000): HealthWatch {
  const client = healthClient(address);
  const seen: ServingStatus[] = [];
  const waiting = new Set<() => void>();
  // A deadline of its own: a call without one gets the server's --default-deadline-ms (30 s),
  // shorter than the outages some tests watch through.
  const stream = client.watch({ service }, deadlineMs === null ? {} : { deadline: Date.now() + deadlineMs });
  stream.on("data", (message: { status: number }) => {
    seen.push(message.status);
    for (const wake of waiting) wake();
  });
  stream.on("error", () => {});
  let ended: number | null = null;
  stream.on("status", (status: { code: number }) => {
    ended = status.code;
  });
  return {
    seen,
    endedWith: () => ended,
    until: (status, ms) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (seen[seen.length - 1] !== status) return;
          clearTimeout(timer);
          waiting.delete(check);
          resolve();
        };
        const timer = setTimeout(() => {
          waiting.delete(check);
          reject(new Error(`health did not become ${ServingStatus[status]} within ${ms} ms (seen: ${seen.map((s) => ServingStatus[s]).join(", ") || "nothing"})`));
        }, ms);
        waiting.add(check);
        check();
      }),
    close: () => {
      stream.cancel();
      client.close();
    },
  };
}
