/** Client settings: defaults, backoff, what is retried, and the bearer-token metadata. */
import * as grpc from "@grpc/grpc-js";
import { jsonCodec, rawCodec } from "./codec";
import { Code } from "./errors";
import { backoffMs, callMetadata, isRetryable, resolveOptions, type RetryPolicy } from "./options";

describe("resolveOptions", () => {
  test("defaults: 10 s calls, 60 s lists, 5 tries from 100 ms to 2 s, JSON states, unbounded answers", () => {
    const resolved = resolveOptions({ address: "127.0.0.1:50051" });
    expect(resolved).toEqual({
      address: "127.0.0.1:50051",
      tls: undefined,
      token: undefined,
      channelOptions: {
        "grpc.max_receive_message_length": -1,
        "grpc.initial_reconnect_backoff_ms": 200,
        "grpc.max_reconnect_backoff_ms": 2000,
      },
      deadlineMs: 10_000,
      listDeadlineMs: 60_000,
      retry: { attempts: 5, initialBackoffMs: 100, maxBackoffMs: 2000 },
      codec: jsonCodec,
    });
    expect(resolved.codec).toBe(jsonCodec);
  });

  test("what is given wins; a partial retry policy keeps the other defaults", () => {
    const tls = { rootCerts: Buffer.from("ca") };
    const resolved = resolveOptions({
      address: "h:1",
      tls,
      token: "secret-token",
      deadlineMs: 50,
      listDeadlineMs: 70,
      retry: { attempts: 1 },
      codec: rawCodec,
      channelOptions: { "grpc.max_reconnect_backoff_ms": 10, "grpc.keepalive_time_ms": 1000 },
    });
    expect(resolved.tls).toBe(tls);
    expect(resolved.token).toBe("secret-token");
    expect(resolved.deadlineMs).toBe(50);
    expect(resolved.listDeadlineMs).toBe(70);
    expect(resolved.retry).toEqual({ attempts: 1, initialBackoffMs: 100, maxBackoffMs: 2000 });
    expect(resolved.codec).toBe(rawCodec);
    expect(resolved.channelOptions).toEqual({
      "grpc.max_receive_message_length": -1,
      "grpc.initial_reconnect_backoff_ms": 200,
      "grpc.max_reconnect_backoff_ms": 10,
      "grpc.keepalive_time_ms": 1000,
    });
  });

  test("0 is a value, not absence", () => {
    const resolved = resolveOptions({ address: "h:1", deadlineMs: 0, retry: { initialBackoffMs: 0 } });
    expect(resolved.deadlineMs).toBe(0);
    expect(resolved.retry.initialBackoffMs).toBe(0);
  });
});

describe("backoffMs", () => {
  const policy: RetryPolicy = { attempts: 5, initialBackoffMs: 100, maxBackoffMs: 2000 };
  let random: jest.SpyInstance<number, []>;
  afterEach(() => random?.mockRestore());
  const withRandom = (value: number) => {
    random?.mockRestore();
    random = jest.spyOn(Math, "random").mockReturnValue(value);
  };

  test.each([
    [1, 100],
    [2, 200],
    [3, 400],
    [4, 800],
    [5, 1600],
    [6, 2000],
    [30, 2000],
  ])("after try %i the ceiling is %i ms (doubling, capped)", (attempt, ceiling) => {
    withRandom(0);
    expect(backoffMs(policy, attempt)).toBe(ceiling / 2);
    withRandom(0.999999999);
    expect(backoffMs(policy, attempt)).toBe(ceiling);
    withRandom(0.5);
    expect(backoffMs(policy, attempt)).toBe(Math.round(ceiling * 0.75));
  });

  test("always between half the ceiling and the ceiling, and an integer", () => {
    random?.mockRestore();
    for (let attempt = 1; attempt <= 8; attempt++) {
      const ceiling = Math.min(2000, 100 * 2 ** (attempt - 1));
      for (let i = 0; i < 200; i++) {
        const pause = backoffMs(policy, attempt);
        expect(Number.isInteger(pause)).toBe(true);
        expect(pause).toBeGreaterThanOrEqual(ceiling / 2);
        expect(pause).toBeLessThanOrEqual(ceiling);
      }
    }
  });

  test("a cap below the initial backoff wins", () => {
    withRandom(0.999999999);
    expect(backoffMs({ attempts: 3, initialBackoffMs: 500, maxBackoffMs: 50 }, 1)).toBe(50);
  });

  test("zero backoff is no pause", () => {
    expect(backoffMs({ attempts: 3, initialBackoffMs: 0, maxBackoffMs: 1000 }, 4)).toBe(0);
  });
});

describe("isRetryable", () => {
  test("only UNAVAILABLE", () => {
    expect(isRetryable({ code: Code.UNAVAILABLE })).toBe(true);
    for (const code of Object.values(Code).filter((c) => c !== Code.UNAVAILABLE)) {
      expect(isRetryable({ code })).toBe(false);
    }
    expect(isRetryable({})).toBe(false);
    expect(isRetryable(Object.assign(new Error("plain"), { code: undefined }))).toBe(false);
  });
});

describe("callMetadata", () => {
  test("a token is sent as `authorization: Bearer <token>`", () => {
    const metadata = callMetadata("s3cret-token-value");
    expect(metadata).toBeInstanceOf(grpc.Metadata);
    expect(metadata.get("authorization")).toEqual(["Bearer s3cret-token-value"]);
    expect(Object.keys(metadata.getMap())).toEqual(["authorization"]);
  });

  test.each([undefined, ""])("no token (%p): no metadata at all", (token) => {
    const metadata = callMetadata(token);
    expect(metadata.get("authorization")).toEqual([]);
    expect(metadata.getMap()).toEqual({});
  });

  test("each call gets its own metadata object", () => {
    expect(callMetadata("t")).not.toBe(callMetadata("t"));
  });
});
