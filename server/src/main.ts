#!/usr/bin/env node
/** `burr-state-server` (`npm start`): serve the StatePersister over gRPC until SIGINT/SIGTERM. */
import { GuardedPersister } from "@burr-state/stores";
import { defaultLimits } from "@burr-state/client/protocol";
import type { TokenAuthority } from "./auth";
import { parseConfig, usage } from "./config";
import { flushRepeatedLines, jsonLogger as log } from "./log";
import { Metrics } from "./metrics";
import { healthCheck } from "./health-check";
import { checkExposure, loadAuthority, serverCredentials } from "./security";
import { startServer } from "./server";
import { parseDuration, startRetention, type Sweeper } from "./retention";
import { redactUrl } from "@burr-state/stores";
import { storeReachability } from "./grpc/health";
import { openReachableStore, StoreMonitor } from "./store-monitor";

/** Room in a message for everything but the state (ids, position, framing). */
const envelopeBytes = 16 * 1024;

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env);
  if (config === "help") {
    process.stdout.write(usage);
    return;
  }
  // Off unless asked for; a bad duration stops the start before anything listens.
  const retentionPolicy =
    config.retainLast > 0 || config.retainFor
      ? { keepLast: config.retainLast || null, retainForMs: config.retainFor ? parseDuration(config.retainFor) : null, everyMs: config.retentionIntervalMs }
      : null;
  let authority: TokenAuthority | null = loadAuthority(config);
  checkExposure(config, authority !== null);
  const credentials = serverCredentials(config);

  // Not started on a store it cannot reach: retried up to --store-start-timeout-ms, then exit 1.
  const backend = await openReachableStore(config.store, config.storeStartTimeoutMs, log);
  const monitor = new StoreMonitor(backend, { intervalMs: config.storeProbeIntervalMs, reachability: storeReachability, log });
  const persister = new GuardedPersister(monitor.backend, {
    limits: { ...defaultLimits, maxKeyBytes: config.maxKeyBytes, maxStateBytes: Math.max(0, config.maxMessageBytes - envelopeBytes) },
  });
  if (config.init) await persister.initialize();

  const metrics = config.metricsListen ? new Metrics(backend.kind) : undefined;
  const metricsServer = metrics ? await metrics.serve(config.metricsListen) : undefined;
  const server = await startServer({
    listen: config.listen,
    persister,
    log,
    credentials,
    authority: () => authority,
    metrics,
    maxMessageBytes: config.maxMessageBytes,
    maxConcurrentStreams: config.maxConcurrentStreams,
    keepaliveMs: config.keepaliveMs,
    defaultDeadlineMs: config.defaultDeadlineMs,
    shutdownGraceMs: config.shutdownGraceMs,
    maxConnections: config.maxConnections,
    connectionIdleMs: config.connectionIdleMs,
    maxInflightBytes: config.maxInflightBytes,
  });
  monitor.start();
  process.on("SIGHUP", () => {
    if (!config.authFile) return log.info("reload_skipped", { reason: "no --auth-file" });
    try {
      authority = loadAuthority(config);
      log.info("tokens_reloaded", { tokens: authority?.grants.length ?? 0 });
    } catch (error) {
      // Keep the tokens in force: a typo in the file must not open or close the server.
      log.error("tokens_reload_failed", { cause: (error as Error).message });
    }
  });
  let retention: Sweeper | undefined;
  if (retentionPolicy) {
    retention = startRetention((query) => persister.prune(query), retentionPolicy, log);
    log.info("retention_on", { keepLast: retentionPolicy.keepLast, retainFor: config.retainFor || null, everyMs: retentionPolicy.everyMs });
  }
  const stop = (signal: string) => {
    log.info("stopping", { signal });
    monitor.stop();
    Promise.all([retention?.stop().then(() => server.stop()) ?? server.stop(), metricsServer?.close()]).then(
      () => {
        flushRepeatedLines();
        log.info("stopped", { signal });
        process.exit(0);
      },
      (error: unknown) => {
        log.error("stop_failed", { cause: String(error) });
        process.exit(1);
      },
    );
  };
  process.once("SIGINT", () => stop("SIGINT"));
  process.once("SIGTERM", () => stop("SIGTERM"));
  // Logged once the signal handlers are in place: a supervisor may send SIGTERM as soon as it reads this line.
  const host = config.listen.slice(0, config.listen.lastIndexOf(":"));
  log.info("started", {
    listen: `${host}:${server.port}`,
    port: server.port,
    store: redactUrl(config.store),
    backend: backend.kind,
    tls: config.tlsClientCa ? "mutual" : config.tlsCert ? "server" : "off",
    tokens: authority?.grants.length ?? 0,
    metricsPort: metricsServer?.port,
    maxConnections: server.maxConnections,
    pid: process.pid,
  });
}

if (process.argv[2] === "import") {
  // Loaded only for this subcommand: serving never reads Burr's layouts.
  (require("./import/command") as typeof import("./import/command"))
    .runImport(process.argv.slice(3), process.env)
    .then(
      (code) => process.exit(code),
      (error: unknown) => {
        process.stderr.write(`import: ${error instanceof Error ? error.message : String(error)}\n`);
        process.exit(1);
      },
    );
} else if (process.argv[2] === "health") {
  healthCheck(process.argv.slice(3), process.env).then(
    (code) => process.exit(code),
    (error: unknown) => {
      process.stderr.write(`${error instanceof Error ? error.message : String(error)}\n`);
      process.exit(2);
    },
  );
} else main().catch((error: unknown) => {
  log.error("start_failed", { cause: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
