/** `npm start`: serve the StatePersister over gRPC until SIGINT/SIGTERM. */
import { GuardedPersister } from "../../core/guard";
import { defaultLimits } from "../../core/validation";
import { parseConfig, usage } from "./config";
import { jsonLogger as log } from "./log";
import { startServer } from "./server";
import { openBackend, redactUrl } from "./stores";

/** Room in a message for everything but the state (ids, position, framing). */
const envelopeBytes = 16 * 1024;

async function main(): Promise<void> {
  const config = parseConfig(process.argv.slice(2), process.env);
  if (config === "help") {
    process.stdout.write(usage);
    return;
  }
  const backend = await openBackend(config.store);
  const persister = new GuardedPersister(backend, {
    limits: { ...defaultLimits, maxStateBytes: Math.max(0, config.maxMessageBytes - envelopeBytes) },
  });
  if (config.init) await persister.initialize();
  const server = await startServer({
    listen: config.listen,
    persister,
    log,
    maxMessageBytes: config.maxMessageBytes,
    shutdownGraceMs: config.shutdownGraceMs,
  });
  const host = config.listen.slice(0, config.listen.lastIndexOf(":"));
  log.info("started", { listen: `${host}:${server.port}`, port: server.port, store: redactUrl(config.store), backend: backend.kind, pid: process.pid });

  const stop = (signal: string) => {
    log.info("stopping", { signal });
    server.stop().then(
      () => {
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
}

main().catch((error: unknown) => {
  log.error("start_failed", { cause: error instanceof Error ? error.message : String(error) });
  process.exit(1);
});
