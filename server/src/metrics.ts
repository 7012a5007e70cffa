/**
 * Prometheus metrics (prom-client), served on an opt-in HTTP port (`--metrics-listen`).
 * Labels hold method names and status codes only: never keys, tokens or state.
 */
import * as http from "node:http";
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { codeName } from "@burr-state/client/protocol";

export class Metrics {
  readonly registry = new Registry();
  readonly calls = new Counter({
    name: "burr_rpc_calls_total",
    help: "Calls answered, by method and gRPC status",
    labelNames: ["method", "code"] as const,
    registers: [this.registry],
  });
  readonly latency = new Histogram({
    name: "burr_rpc_duration_seconds",
    help: "Time from a call's start to its status, by method",
    labelNames: ["method"] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly backendErrors = new Counter({
    name: "burr_backend_errors_total",
    help: "Calls that failed in the backend (UNAVAILABLE, INTERNAL), by backend and code",
    labelNames: ["backend", "code"] as const,
    registers: [this.registry],
  });
  readonly openStreams = new Gauge({
    name: "burr_open_streams",
    help: "Streams open now: Pipeline, BatchedPipeline, ListAppIds, ListSteps, health Watch",
    registers: [this.registry],
  });

  constructor(readonly backend: string) {
    collectDefaultMetrics({ register: this.registry });
  }

  observeCall(path: string, code: number, seconds: number): void {
    const method = path.slice(path.lastIndexOf("/") + 1) || path;
    const name = codeName(code);
    this.calls.inc({ method, code: name });
    this.latency.observe({ method }, seconds);
    if (name === "UNAVAILABLE" || name === "INTERNAL" || name === "UNKNOWN") this.backendErrors.inc({ backend: this.backend, code: name });
  }

  /** Serves GET /metrics on host:port; resolves with the bound port. */
  serve(listen: string): Promise<{ port: number; close(): Promise<void> }> {
    const at = listen.lastIndexOf(":");
    const server = http.createServer((request, response) => {
      if (request.method !== "GET" || request.url !== "/metrics") {
        response.writeHead(404).end();
        return;
      }
      this.registry.metrics().then(
        (text) => response.writeHead(200, { "content-type": this.registry.contentType }).end(text),
        (error: unknown) => response.writeHead(500).end(String(error)),
      );
    });
    return new Promise((resolve, reject) => {
      server.once("error", reject);
      server.listen(Number(listen.slice(at + 1)), listen.slice(0, at).replace(/^\[|\]$/g, ""), () =>
        resolve({
          port: (server.address() as { port: number }).port,
          close: () => new Promise((done) => server.close(() => done())),
        }),
      );
    });
  }
}
