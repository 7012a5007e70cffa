/** Server settings from flags, then environment variables, then defaults. */
import { parseArgs } from "node:util";
import { defaultStoreUrl } from "./stores";

export interface ServerConfig {
  listen: string;
  store: string;
  init: boolean;
  maxMessageBytes: number;
  shutdownGraceMs: number;
}

export const usage = `Usage: npm start -- [options]

  --listen HOST:PORT         address to serve on            (BURR_LISTEN, default 127.0.0.1:50051)
  --store URL                sqlite:PATH | sqlite::memory:  (BURR_STORE, default ${defaultStoreUrl})
  --init                     initialize the store at start  (BURR_INIT=1)
  --max-message-bytes N      largest request or response    (BURR_MAX_MESSAGE_BYTES, default 16777216)
  --shutdown-grace-ms N      how long open streams may run after SIGTERM (BURR_SHUTDOWN_GRACE_MS, default 5000)
  --help                     this text
`;

function positiveInteger(name: string, text: string): number {
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

const truthy = (text: string | undefined) => text !== undefined && /^(1|true|yes|on)$/i.test(text);

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): ServerConfig | "help" {
  const { values } = parseArgs({
    args: argv,
    options: {
      listen: { type: "string" },
      store: { type: "string" },
      init: { type: "boolean" },
      "max-message-bytes": { type: "string" },
      "shutdown-grace-ms": { type: "string" },
      help: { type: "boolean", short: "h" },
    },
    strict: true,
  });
  if (values.help) return "help";
  return {
    listen: values.listen ?? env.BURR_LISTEN ?? "127.0.0.1:50051",
    store: values.store ?? env.BURR_STORE ?? defaultStoreUrl,
    init: values.init ?? truthy(env.BURR_INIT),
    maxMessageBytes: positiveInteger("--max-message-bytes", values["max-message-bytes"] ?? env.BURR_MAX_MESSAGE_BYTES ?? "16777216"),
    shutdownGraceMs: positiveInteger("--shutdown-grace-ms", values["shutdown-grace-ms"] ?? env.BURR_SHUTDOWN_GRACE_MS ?? "5000"),
  };
}
