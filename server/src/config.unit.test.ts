/** Server settings: flag, else environment variable, else default. */
import { parseConfig, usage, type ServerConfig } from "./config";

const config = (argv: string[], env: NodeJS.ProcessEnv = {}): ServerConfig => {
  const parsed = parseConfig(argv, env);
  if (parsed === "help") throw new Error("unexpected help");
  return parsed;
};

const defaults: ServerConfig = {
  listen: "127.0.0.1:50051",
  store: "sqlite:./burr_state.db",
  init: true,
  maxMessageBytes: 16 * 1024 * 1024,
  maxKeyBytes: 1024,
  maxConcurrentStreams: 100,
  maxConnections: 1000,
  connectionIdleMs: 10_000,
  maxInflightBytes: 128 * 1024 * 1024,
  keepaliveMs: 60_000,
  defaultDeadlineMs: 30_000,
  shutdownGraceMs: 5000,
  storeStartTimeoutMs: 10_000,
  storeProbeIntervalMs: 2000,
  tlsCert: "",
  tlsKey: "",
  tlsClientCa: "",
  authFile: "",
  insecure: false,
  metricsListen: "",
  retainLast: 0,
  retainFor: "",
  retentionIntervalMs: 60_000,
  authTokens: "",
  defaultStore: true,
};

describe("parseConfig", () => {
  test("nothing given: the defaults, the default store initialized", () => {
    expect(config([])).toEqual(defaults);
  });

  test("unrelated environment variables are ignored", () => {
    expect(config([], { PATH: "/usr/bin", BURR_UNKNOWN: "1", LISTEN: "0.0.0.0:1" })).toEqual(defaults);
  });

  test("every setting from its environment variable", () => {
    const env = {
      BURR_LISTEN: "0.0.0.0:6000",
      BURR_STORE: "postgres://h/db",
      BURR_INIT: "true",
      BURR_MAX_MESSAGE_BYTES: "1000",
      BURR_MAX_KEY_BYTES: "64",
      BURR_MAX_CONCURRENT_STREAMS: "7",
      BURR_MAX_CONNECTIONS: "8",
      BURR_CONNECTION_IDLE_MS: "9",
      BURR_MAX_INFLIGHT_BYTES: "4000",
      BURR_KEEPALIVE_MS: "1500",
      BURR_DEFAULT_DEADLINE_MS: "2500",
      BURR_SHUTDOWN_GRACE_MS: "10",
      BURR_STORE_START_TIMEOUT_MS: "20",
      BURR_STORE_PROBE_INTERVAL_MS: "30",
      BURR_TLS_CERT: "/c.pem",
      BURR_TLS_KEY: "/k.pem",
      BURR_TLS_CLIENT_CA: "/ca.pem",
      BURR_AUTH_FILE: "/auth.json",
      BURR_INSECURE: "1",
      BURR_METRICS_LISTEN: "127.0.0.1:9464",
      BURR_RETAIN_LAST: "3",
      BURR_RETAIN_FOR: "30d",
      BURR_RETENTION_INTERVAL_MS: "40",
      BURR_AUTH_TOKENS: '{"tokens": []}',
    };
    expect(config([], env)).toEqual({
      listen: "0.0.0.0:6000",
      store: "postgres://h/db",
      init: true,
      maxMessageBytes: 1000,
      maxKeyBytes: 64,
      maxConcurrentStreams: 7,
      maxConnections: 8,
      connectionIdleMs: 9,
      maxInflightBytes: 4000,
      keepaliveMs: 1500,
      defaultDeadlineMs: 2500,
      shutdownGraceMs: 10,
      storeStartTimeoutMs: 20,
      storeProbeIntervalMs: 30,
      tlsCert: "/c.pem",
      tlsKey: "/k.pem",
      tlsClientCa: "/ca.pem",
      authFile: "/auth.json",
      insecure: true,
      metricsListen: "127.0.0.1:9464",
      retainLast: 3,
      retainFor: "30d",
      retentionIntervalMs: 40,
      authTokens: '{"tokens": []}',
      defaultStore: false,
    });
  });

  test("every setting from its flag, in both --flag value and --flag=value forms", () => {
    const parsed = config([
      "--listen", "[::]:7000",
      "--store=redis://h:6379",
      "--init",
      "--max-message-bytes", "2000",
      "--max-key-bytes=32",
      "--max-concurrent-streams", "3",
      "--max-connections", "4",
      "--connection-idle-ms=5",
      "--max-inflight-bytes", "6000",
      "--keepalive-ms", "100",
      "--default-deadline-ms", "200",
      "--shutdown-grace-ms", "300",
      "--store-start-timeout-ms", "400",
      "--store-probe-interval-ms=500",
      "--tls-cert", "c", "--tls-key", "k", "--tls-client-ca", "ca",
      "--auth-file", "a.json",
      "--insecure",
      "--metrics-listen", ":9464",
      "--retain-last", "2",
      "--retain-for=12h",
      "--retention-interval-ms", "600",
    ]);
    expect(parsed).toEqual({
      listen: "[::]:7000",
      store: "redis://h:6379",
      init: true,
      maxMessageBytes: 2000,
      maxKeyBytes: 32,
      maxConcurrentStreams: 3,
      maxConnections: 4,
      connectionIdleMs: 5,
      maxInflightBytes: 6000,
      keepaliveMs: 100,
      defaultDeadlineMs: 200,
      shutdownGraceMs: 300,
      storeStartTimeoutMs: 400,
      storeProbeIntervalMs: 500,
      retainLast: 2,
      retainFor: "12h",
      retentionIntervalMs: 600,
      tlsCert: "c",
      tlsKey: "k",
      tlsClientCa: "ca",
      authFile: "a.json",
      insecure: true,
      metricsListen: ":9464",
      authTokens: "",
      defaultStore: false,
    });
  });

  test("a flag beats its environment variable", () => {
    const env = { BURR_LISTEN: "0.0.0.0:1", BURR_MAX_KEY_BYTES: "20", BURR_STORE: "redis://h", BURR_TLS_CERT: "env.pem" };
    const parsed = config(["--listen", "127.0.0.1:2", "--max-key-bytes", "10", "--store", "sqlite::memory:", "--tls-cert", "flag.pem"], env);
    expect(parsed).toMatchObject({ listen: "127.0.0.1:2", maxKeyBytes: 10, store: "sqlite::memory:", tlsCert: "flag.pem" });
  });

  test("a boolean flag beats its variable", () => {
    expect(config(["--insecure"], { BURR_INSECURE: "false" }).insecure).toBe(true);
    expect(config(["--init", "--store", "sqlite:x.db"], { BURR_INIT: "no" }).init).toBe(true);
  });

  test.each(["1", "true", "TRUE", "yes", "Yes", "on", "ON"])("BURR_INSECURE=%s is true", (text) => {
    expect(config([], { BURR_INSECURE: text }).insecure).toBe(true);
  });

  test.each(["0", "false", "no", "off", "", "2", "y", " true"])("BURR_INSECURE=%j is false", (text) => {
    expect(config([], { BURR_INSECURE: text }).insecure).toBe(false);
  });

  test.each(["0", "-1", "1.5", "ten", "", "NaN", "9007199254740992"])("--max-key-bytes %j is refused, naming the flag", (text) => {
    expect(() => config([`--max-key-bytes=${text}`])).toThrow(`--max-key-bytes must be a positive integer, got ${JSON.stringify(text)}`);
  });

  test.each([
    ["BURR_MAX_MESSAGE_BYTES", "max-message-bytes", "0"],
    ["BURR_KEEPALIVE_MS", "keepalive-ms", "-5"],
    ["BURR_SHUTDOWN_GRACE_MS", "shutdown-grace-ms", "soon"],
    ["BURR_MAX_CONCURRENT_STREAMS", "max-concurrent-streams", "2.5"],
    ["BURR_DEFAULT_DEADLINE_MS", "default-deadline-ms", ""],
  ])("%s=%j is refused, naming the setting", (variable, flag, text) => {
    expect(() => config([], { [variable]: text })).toThrow(`--${flag} must be a positive integer, got ${JSON.stringify(text)}`);
  });

  test("an unknown flag is refused", () => {
    expect(() => config(["--nope"])).toThrow(/--nope/);
    expect(() => config(["--listen", "h:1", "--stor", "x"])).toThrow(/--stor/);
  });

  test("a positional argument is refused", () => {
    expect(() => config(["serve"])).toThrow();
  });

  test("a value flag without its value is refused", () => {
    expect(() => config(["--listen"])).toThrow(/--listen/);
  });

  test.each([["--help"], ["-h"], ["--listen", "h:1", "--help"]])("%s asks for help", (...argv) => {
    expect(parseConfig(argv, {})).toBe("help");
  });

  test("help is asked even when the environment holds a bad value", () => {
    expect(parseConfig(["--help"], { BURR_MAX_KEY_BYTES: "0" })).toBe("help");
  });

  describe("the default store", () => {
    test("without --store and BURR_STORE: the default, always initialized", () => {
      expect(config([])).toMatchObject({ defaultStore: true, init: true, store: "sqlite:./burr_state.db" });
      expect(config([], { BURR_INIT: "false" })).toMatchObject({ defaultStore: true, init: true });
    });

    test("--store: not the default store, initialized only when asked", () => {
      expect(config(["--store", "sqlite:./other.db"])).toMatchObject({ defaultStore: false, init: false });
      expect(config(["--store", "sqlite:./other.db", "--init"])).toMatchObject({ defaultStore: false, init: true });
      expect(config(["--store", "sqlite:./other.db"], { BURR_INIT: "1" })).toMatchObject({ defaultStore: false, init: true });
    });

    test("BURR_STORE: not the default store either", () => {
      expect(config([], { BURR_STORE: "redis://h" })).toMatchObject({ defaultStore: false, init: false, store: "redis://h" });
    });

    test("naming the default URL explicitly is still a choice: not initialized unless asked", () => {
      expect(config(["--store", "sqlite:./burr_state.db"])).toMatchObject({ defaultStore: false, init: false });
      expect(config([], { BURR_STORE: "sqlite:./burr_state.db" })).toMatchObject({ defaultStore: false, init: false });
    });
  });

  test("the tokens' JSON comes from BURR_AUTH_TOKENS only", () => {
    expect(config([], { BURR_AUTH_TOKENS: "{}" }).authTokens).toBe("{}");
    expect(() => config(["--auth-tokens", "{}"])).toThrow(/--auth-tokens/);
  });
});

describe("usage", () => {
  test.each([
    ["--listen VALUE", "BURR_LISTEN", "default 127.0.0.1:50051"],
    ["--store VALUE", "BURR_STORE", "default sqlite:./burr_state.db"],
    ["--init", "BURR_INIT", null],
    ["--max-key-bytes N", "BURR_MAX_KEY_BYTES", "default 1024"],
    ["--insecure", "BURR_INSECURE", null],
    ["--auth-file VALUE", "BURR_AUTH_FILE", null],
  ])("names %s, %s and its default", (flag, variable, fallback) => {
    const line = usage.split("\n").find((l) => l.trimStart().startsWith(`${flag} `));
    expect(line).toBeDefined();
    expect(line).toContain(`(${variable}${fallback ? `, ${fallback}` : ""})`);
  });

  test("lists the store URL forms and --help", () => {
    expect(usage).toContain("postgres://USER:PASSWORD@HOST:PORT/DB");
    expect(usage).toContain("--help");
    expect(usage).toMatch(/^Usage: burr-state-server/);
  });
});
