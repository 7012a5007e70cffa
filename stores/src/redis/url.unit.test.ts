/** The Redis store URL: the key prefix is this store's; everything else goes to ioredis. Nothing connects. */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { parseRedisUrl } from "./index";
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
    const options = parseRedisUrl("redis://default:hunter2@h:6379/1?prefix=p");
    expect(options.connectUrl).toBe("redis://default:hunter2@h:6379/1");
    expect(options.where).toBe("redis://h:6379/1");
    expect(parseRedisUrl("redis://:hunter2@h").where).toBe("redis://h");
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
    expect(error.message).toBe(`redis URL parameter ${JSON.stringify(name)} is not supported (only "prefix" is)`);
  });

  test.each(["not a url", "redis://:hunter2@h:notaport", "redis://user:hunter2@[::1/0"])("%j is not a URL; the text (maybe a password) is not repeated", (url) => {
    const error = refusal(() => parseRedisUrl(url));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("the redis store URL is not a valid URL: expected redis://[user:password@]host:port[/db][?prefix=NAME]");
    expect(error.message).not.toContain("hunter2");
  });
});
