/** The Redis store URL: the key prefix is this store's; everything else goes to ioredis. Nothing connects. */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { parseRedisUrl } from "./url";
import { redactUrl } from "../shared/url";
import { refusal } from "../../../tests/support/refusal";


describe("parseRedisUrl", () => {
  test("defaults: prefix burr; the URL connects as written", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6379")).toEqual({
      connectUrl: "redis://127.0.0.1:6379",
      prefix: "burr",
      where: "redis://127.0.0.1:6379",
    });
  });

  test("prefix is read and removed; the database number and TLS scheme stay", () => {
    expect(parseRedisUrl("rediss://cache.example.com:6380/2?prefix=app.v1")).toEqual({
      connectUrl: "rediss://cache.example.com:6380/2",
      prefix: "app.v1",
      where: "rediss://cache.example.com:6380/2",
    });
  });

  test("credentials go to ioredis, never into `where`", () => {
    expect(parseRedisUrl("redis://default:hunter2@h:6379/1?prefix=p")).toEqual({
      connectUrl: "redis://default:hunter2@h:6379/1",
      prefix: "p",
      where: "redis://h:6379/1",
    });
    expect(parseRedisUrl("redis://:hunter2@h").where).toBe("redis://h");
  });

  test("wait_replicas: a number of replicas; 0 is the default, none", () => {
    expect(parseRedisUrl("redis://h?wait_replicas=1&prefix=p")).toEqual({ connectUrl: "redis://h", prefix: "p", waitReplicas: 1, where: "redis://h" });
    expect(parseRedisUrl("redis+cluster://h:7000?wait_replicas=2").waitReplicas).toBe(2);
    expect(parseRedisUrl("redis://h?wait_replicas=0").waitReplicas).toBeUndefined();
    for (const bad of ["", "-1", "one", "1.5", "100"]) {
      expect(refusal(() => parseRedisUrl(`redis://h?wait_replicas=${bad}`)).message).toBe(`redis wait_replicas ${JSON.stringify(bad)} is not allowed: use a number of replicas, 0-99`);
    }
  });

  test("IPv6 hosts", () => {
    expect(parseRedisUrl("redis://[::1]:6379/0").where).toBe("redis://[::1]:6379/0");
  });

  test.each(["a", "burr_test", "app.v1", "A-Z_0.9", "p".repeat(64)])("prefix %j is allowed", (prefix) => {
    expect(parseRedisUrl(`redis://h?prefix=${prefix}`).prefix).toBe(prefix);
  });

  test.each(["", "a:b", "a*", "a?b", "a[b]", "a b", "a{b}", "ü", "p".repeat(65)])("prefix %j is refused", (prefix) => {
    const error = refusal(() => parseRedisUrl(`redis://h?prefix=${encodeURIComponent(prefix)}`));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(`redis prefix ${JSON.stringify(prefix)} is not allowed: use 1-64 letters, digits, _, - or .`);
  });

  test.each(["db", "password", "Prefix", "tls"])("the parameter %j is refused, named", (name) => {
    const error = refusal(() => parseRedisUrl(`redis://h:6379?prefix=p&${name}=1`));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(`redis URL parameter ${JSON.stringify(name)} is not supported (only "prefix" and "wait_replicas" are)`);
  });

  test.each([
    ["not a url", '"not a url"'],
    ["redis://:hunter2@h:notaport", '"redis://:***@h:notaport"'],
    ["redis://user:hunter2@[::1/0", '"redis://user:***@[::1/0"'],
    ["redis://user:hunt/er2@h:6379", '"redis://user:***@h:6379"'],
  ])("%j is not a URL; it is shown with its password masked", (url, shown) => {
    const error = refusal(() => parseRedisUrl(url));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(
      `the redis store URL ${shown} is not a valid URL: expected redis://[user:password@]host:port[/db][?prefix=NAME][&wait_replicas=N] ` +
        '(percent-encode "/", "?", "#", "@" and ":" in a user name or password, e.g. "/" as %2F)',
    );
    expect(error.message).not.toMatch(/hunt/);
  });
});

describe("parseRedisUrl, Redis Cluster", () => {
  test("seed nodes, default port, prefix; no credentials in `where`", () => {
    expect(parseRedisUrl("redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002?prefix=app.v1")).toEqual({
      cluster: { nodes: [{ host: "10.0.0.1", port: 7000 }, { host: "10.0.0.2", port: 6379 }, { host: "::1", port: 7002 }], tls: false },
      prefix: "app.v1",
      where: "redis+cluster://10.0.0.1:7000,10.0.0.2,[::1]:7002",
    });
  });

  test("rediss+cluster speaks TLS; user and password are decoded and kept out of `where`", () => {
    expect(parseRedisUrl("REDISS+CLUSTER://app%40team:s3cret%2Fx%3Ay@cache-1.example:6380,cache-2.example:6380/")).toEqual({
      cluster: { nodes: [{ host: "cache-1.example", port: 6380 }, { host: "cache-2.example", port: 6380 }], tls: true, username: "app@team", password: "s3cret/x:y" },
      prefix: "burr",
      where: "rediss+cluster://cache-1.example:6380,cache-2.example:6380",
    });
    expect(parseRedisUrl("redis+cluster://:hunter2@h:7000/0").cluster).toEqual({ nodes: [{ host: "h", port: 7000 }], tls: false, password: "hunter2" });
  });

  test.each([
    ["redis+cluster://", "has a malformed node list"],
    ["redis+cluster://:hunter2@h:7000,", "has a malformed node list"],
    ["redis+cluster://:hunter2@h:70000", "has a malformed node list"],
    ["redis+cluster://:hunter2@h:port", "has a malformed node list"],
    ["redis+cluster://:hunter2@h:7000/1", "has a path or database: a cluster has database 0 only"],
    ["redis+cluster://:hunter2%zz@h:7000", "has a malformed %-escape in its user name or password"],
    ["redis+cluster://:hunter2@h:7000#x", "is not valid"],
  ])("%j is refused without repeating its password", (url, why) => {
    const error = refusal(() => parseRedisUrl(url));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(`the redis cluster URL ${why}: expected redis+cluster://[user:password@]host:port[,host:port...][?prefix=NAME][&wait_replicas=N]`);
    expect(error.message).not.toContain("hunter2");
  });

  test("logs show the URL without its password", () => {
    expect(redactUrl("rediss+cluster://app:hunter2@h1:7000,h2:7000/?prefix=p")).toBe("rediss+cluster://app:***@h1:7000,h2:7000/?prefix=p");
  });

  test("the prefix rules and the refusal of other parameters are those of one Redis", () => {
    expect(refusal(() => parseRedisUrl("redis+cluster://h:7000?prefix=a%7Bb%7D")).message).toBe('redis prefix "a{b}" is not allowed: use 1-64 letters, digits, _, - or .');
    expect(refusal(() => parseRedisUrl("redis+cluster://h:7000?scaleReads=slave")).message).toBe('redis URL parameter "scaleReads" is not supported (only "prefix" and "wait_replicas" are)');
  });
});
