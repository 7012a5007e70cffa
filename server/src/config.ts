/** Server settings: each from its flag, else its environment variable, else its default. */
import { parseArgs } from "node:util";
import { defaultStoreUrl, storeUrlForms } from "@burr-state/stores";

type Kind = "string" | "boolean" | "integer";

/** One row per setting: the flag, the variable, the default, and the help text. */
const settings = {
  listen: { env: "BURR_LISTEN", kind: "string", default: "127.0.0.1:50051", help: "address to serve on (port 0: any free port)" },
  store: { env: "BURR_STORE", kind: "string", default: defaultStoreUrl, help: `where states are kept: ${storeUrlForms}` },
  init: { env: "BURR_INIT", kind: "boolean", default: false, help: "initialize the store at start (always done for the default store)" },
  "max-message-bytes": { env: "BURR_MAX_MESSAGE_BYTES", kind: "integer", default: 16 * 1024 * 1024, help: "largest request or response; states may be this minus 16 KiB" },
  "max-key-bytes": { env: "BURR_MAX_KEY_BYTES", kind: "integer", default: 1024, help: "longest partition_key, app_id or position, in UTF-8 bytes" },
  "max-concurrent-streams": { env: "BURR_MAX_CONCURRENT_STREAMS", kind: "integer", default: 100, help: "calls in flight per client connection" },
  "max-connections": { env: "BURR_MAX_CONNECTIONS", kind: "integer", default: 1000, help: "open client connections at most (lowered to the descriptor limit minus 100); past it a new one replaces the oldest that has sent no call, or is refused" },
  "connection-idle-ms": { env: "BURR_CONNECTION_IDLE_MS", kind: "integer", default: 10_000, help: "close connections that have sent no call this long after opening (connections whose calls have all ended go after 5 min)" },
  "max-inflight-bytes": { env: "BURR_MAX_INFLIGHT_BYTES", kind: "integer", default: 128 * 1024 * 1024, help: "request bytes held server-wide at most (at least --max-message-bytes); requests past it are refused RESOURCE_EXHAUSTED" },
  "keepalive-ms": { env: "BURR_KEEPALIVE_MS", kind: "integer", default: 60_000, help: "ping idle connections this often; drop them when a ping goes unanswered for 20 s" },
  "default-deadline-ms": { env: "BURR_DEFAULT_DEADLINE_MS", kind: "integer", default: 30_000, help: "deadline of calls that come without one" },
  "shutdown-grace-ms": { env: "BURR_SHUTDOWN_GRACE_MS", kind: "integer", default: 5000, help: "on SIGTERM, how long open streams may run before they are cancelled" },
  "store-start-timeout-ms": { env: "BURR_STORE_START_TIMEOUT_MS", kind: "integer", default: 10_000, help: "at start, how long to retry a store that cannot be reached before exiting non-zero" },
  "store-probe-interval-ms": { env: "BURR_STORE_PROBE_INTERVAL_MS", kind: "integer", default: 2000, help: "how often the store is probed; health is NOT_SERVING while it cannot be reached" },
  "tls-cert": { env: "BURR_TLS_CERT", kind: "string", default: "", help: "PEM certificate chain: serve TLS" },
  "tls-key": { env: "BURR_TLS_KEY", kind: "string", default: "", help: "PEM private key of --tls-cert" },
  "tls-client-ca": { env: "BURR_TLS_CLIENT_CA", kind: "string", default: "", help: "PEM CA bundle: require client certificates signed by it (mutual TLS)" },
  "auth-file": { env: "BURR_AUTH_FILE", kind: "string", default: "", help: "JSON file of bearer tokens and their partition scopes (reloaded on SIGHUP); or the tokens' JSON itself in BURR_AUTH_TOKENS" },
  insecure: { env: "BURR_INSECURE", kind: "boolean", default: false, help: "allow a non-loopback --listen without tokens or client certificates, and a non-loopback --metrics-listen" },
  "metrics-listen": { env: "BURR_METRICS_LISTEN", kind: "string", default: "", help: "serve Prometheus metrics on http://HOST:PORT/metrics (no authentication: loopback only unless --insecure)" },
  "retain-last": { env: "BURR_RETAIN_LAST", kind: "integer", default: 0, help: "retention: keep only the newest N steps of each app (never an app's highest); off by default" },
  "retain-for": { env: "BURR_RETAIN_FOR", kind: "string", default: "", help: "retention: delete steps older than this (30d, 12h, 90m; never an app's highest); off by default" },
  "retention-interval-ms": { env: "BURR_RETENTION_INTERVAL_MS", kind: "integer", default: 60_000, help: "how often the retention sweep runs" },
} as const satisfies Record<string, { env: string; kind: Kind; default: string | number | boolean; help: string }>;

type Settings = typeof settings;
type ValueOf<K extends Kind> = K extends "boolean" ? boolean : K extends "integer" ? number : string;
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

export type ServerConfig = { [K in keyof Settings as CamelCase<K & string>]: ValueOf<Settings[K]["kind"]> } & {
  /** The tokens' JSON from BURR_AUTH_TOKENS, when no --auth-file is given. */
  authTokens: string;
  /** True when the store is the default one (no --store, no BURR_STORE). */
  defaultStore: boolean;
};

const camel = (name: string) => name.replace(/-(\w)/g, (_, c: string) => c.toUpperCase());

export const usage = `Usage: burr-state-server [options]       (npm start -- [options] in the repository)\n       burr-state-server health [--address HOST:PORT] [--timeout-ms N]\n       burr-state-server import --from BURR_SOURCE --store STORE [--partition KEY]   (import --help)\n\n${Object.entries(settings)
  .map(([name, s]) => {
    const flag = `--${name}${s.kind === "boolean" ? "" : s.kind === "integer" ? " N" : " VALUE"}`;
    const fallback = s.default === "" || s.default === false ? "" : `, default ${s.default}`;
    return `  ${flag.padEnd(30)} ${s.help} (${s.env}${fallback})`;
  })
  .join("\n")}\n  --help                         this text\n`;

function convert(name: string, kind: Kind, text: string): string | number | boolean {
  if (kind === "string") return text;
  if (kind === "boolean") return /^(1|true|yes|on)$/i.test(text);
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(text)}`);
  return value;
}

export function parseConfig(argv: string[], env: NodeJS.ProcessEnv): ServerConfig | "help" {
  const options = Object.fromEntries(
    Object.entries(settings).map(([name, s]) => [name, { type: s.kind === "boolean" ? ("boolean" as const) : ("string" as const) }]),
  );
  const { values } = parseArgs({ args: argv, options: { ...options, help: { type: "boolean", short: "h" } }, strict: true });
  if (values.help) return "help";
  const config: Record<string, unknown> = { authTokens: env.BURR_AUTH_TOKENS ?? "" };
  config.defaultStore = (values as Record<string, unknown>).store === undefined && env.BURR_STORE === undefined;
  for (const [name, s] of Object.entries(settings)) {
    const given = (values as Record<string, string | boolean | undefined>)[name];
    const text = typeof given === "boolean" ? String(given) : (given ?? env[s.env]);
    config[camel(name)] = text === undefined ? s.default : convert(name, s.kind, text);
  }
  // The default store is the embedded file the README's first examples use: ready at once.
  if (config.defaultStore) config.init = true;
  return config as ServerConfig;
}
