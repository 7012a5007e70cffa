/**
 * The Redis key layout as Redis sees it: every key the store creates follows the documented
 * grammar, user strings only ever appear length-prefixed, and sequence ids order exactly up to
 * 2^53 - 1 although sorted-set scores are doubles.
 */
import type { Redis } from "ioredis";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import type { SaveInput } from "@burr-state/client/protocol";
import { openRedis, parseRedisUrl } from "./index";
import { connectAdmin, deleteNamespaces, keysUnder, redisUrl, uniquePrefix, withPrefix } from "./testing";

const prefix = uniquePrefix("layout");
let admin: Redis;
let store: GuardedPersister;

beforeAll(async () => {
  admin = await connectAdmin();
  store = new GuardedPersister(await openRedis(withPrefix(redisUrl, prefix)));
  await store.initialize();
});

afterAll(async () => {
  await store?.close();
  admin?.disconnect();
  await deleteNamespaces([prefix]);
});

const save = (partitionKey: string, appId: string, sequenceId: number, position: string): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position,
  state: new Uint8Array(Buffer.from(`${partitionKey}|${appId}|${sequenceId}|${position}`)),
  status: "completed",
});

/** Reads "<byte length>:<bytes>" components until the key ends; null if the key does not follow that shape. */
function components(rest: Buffer): string[] | null {
  const parts: string[] = [];
  let at = 0;
  while (at < rest.length) {
    const colon = rest.indexOf(":", at);
    const digits = colon < 0 ? "" : rest.subarray(at, colon).toString();
    if (!/^(0|[1-9][0-9]*)$/.test(digits)) return null;
    const end = colon + 1 + Number(digits);
    if (end > rest.length) return null;
    parts.push(rest.subarray(colon + 1, end).toString("utf8"));
    at = end;
  }
  return parts;
}

type ParsedKey = { kind: "meta" } | { kind: "row"; write: string } | { kind: "keys" | "steps" | "apps"; parts: string[] };

/** The documented grammar; anything else is a key the store should not have made. */
function parseKey(key: Buffer): ParsedKey | null {
  const text = key.toString("latin1");
  if (text === `${prefix}:meta`) return { kind: "meta" };
  const row = new RegExp(`^${prefix}:row:([0-9]{16})$`).exec(text);
  if (row) return { kind: "row", write: row[1]! };
  for (const [kind, arity] of [["keys", 2], ["steps", 2], ["apps", 1]] as const) {
    const head = Buffer.from(`${prefix}:${kind}:`);
    if (!key.subarray(0, head.length).equals(head)) continue;
    const parts = components(key.subarray(head.length));
    return parts && parts.length === arity ? { kind, parts } : null;
  }
  return null;
}

describe("redis key layout", () => {
  // Pairs that collide under Burr's `namespace:partition:app:sequence` keys, plus digits and colons that
  // look like length prefixes, and non-ASCII text (lengths count bytes).
  const rows: Array<SaveInput<Uint8Array>> = [
    save("p:q", "r", 1, "act"),
    save("p", "q:r", 1, "act"),
    save("p", "q", 1, "r:act"),
    save("", "p:q:r", 1, "act"),
    save("1:p", "2:q", 3, "4:r"),
    save("3:", "a", 0, "x"),
    save("", "3:a", 0, "x"),
    save("zürich", "日本", 2, "é"),
  ];

  test("every key follows the grammar, and no key is a plain ':'-joined user string", async () => {
    for (const row of rows) await store.save(row);
    const keys = await keysUnder(admin, prefix);
    const parsed = keys.map((key) => ({ key: key.toString("utf8"), parsed: parseKey(key) }));
    expect(parsed.filter((entry) => entry.parsed === null).map((entry) => entry.key)).toEqual([]);

    const pairs = new Set(rows.map((row) => JSON.stringify([row.partitionKey, row.appId])));
    const partitions = new Set(rows.map((row) => JSON.stringify([row.partitionKey])));
    const expected = (kind: "keys" | "steps" | "apps") => [...(kind === "apps" ? partitions : pairs)].sort();
    for (const kind of ["keys", "steps", "apps"] as const) {
      const found = parsed.flatMap(({ parsed: key }) => (key?.kind === kind ? [JSON.stringify(key.parts)] : [])).sort();
      expect({ kind, found }).toEqual({ kind, found: expected(kind) });
    }
    expect(parsed.filter(({ parsed: key }) => key?.kind === "row")).toHaveLength(rows.length);
    expect(parsed.filter(({ parsed: key }) => key?.kind === "meta")).toHaveLength(1);

    const naiveJoins = rows.flatMap(({ partitionKey, appId, sequenceId, position }) => {
      const fields = [partitionKey ?? "", appId, String(sequenceId), position];
      return [2, 3, 4].flatMap((n) => [fields.slice(0, n).join(":"), [prefix, ...fields.slice(0, n)].join(":")]);
    });
    const keyTexts = new Set(parsed.map((entry) => entry.key));
    expect(naiveJoins.filter((join) => keyTexts.has(join))).toEqual([]);
    for (const kind of ["keys", "steps", "apps"]) {
      const loose = naiveJoins.map((join) => `${prefix}:${kind}:${join}`);
      expect(loose.filter((join) => keyTexts.has(join))).toEqual([]);
    }

    for (const row of rows) {
      const loaded = await store.load({ partitionKey: row.partitionKey, appId: row.appId });
      expect(Buffer.from(loaded!.state).toString()).toBe(Buffer.from(row.state).toString());
    }
  });

  test("sequence ids next to 2^53 order exactly", async () => {
    const top = Number.MAX_SAFE_INTEGER;
    const partition = "near-2^53";
    await store.save(save(partition, "app", top, "last"));
    await store.save(save(partition, "app", top - 1, "before-last"));
    await store.save(save(partition, "app", top - 2, "third"));
    expect((await store.load({ partitionKey: partition, appId: "app" }))).toMatchObject({ sequenceId: top, position: "last" });
    for (const [sequenceId, position] of [[top, "last"], [top - 1, "before-last"], [top - 2, "third"]] as const) {
      expect(await store.load({ partitionKey: partition, appId: "app", sequenceId })).toMatchObject({ sequenceId, position });
    }
    await expect(store.save(save(partition, "app", top - 1, "before-last"))).rejects.toMatchObject({ code: Code.ALREADY_EXISTS });
  });
});

describe("redis URL", () => {
  test("prefix is read and removed before ioredis sees the URL; TLS and credentials pass through", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6379/2?prefix=team.a")).toEqual({
      connectUrl: "redis://127.0.0.1:6379/2",
      prefix: "team.a",
      where: "redis://127.0.0.1:6379/2",
    });
    expect(parseRedisUrl("rediss://user:secret@cache.example:6380")).toEqual({
      connectUrl: "rediss://user:secret@cache.example:6380",
      prefix: "burr",
      where: "rediss://cache.example:6380",
    });
  });

  test.each([
    ["a parameter ioredis would read as an option", "redis://127.0.0.1:6379?keyPrefix=x", /keyPrefix/],
    ["a prefix with ':'", "redis://127.0.0.1:6379?prefix=a:b", /prefix/],
    ["a prefix with glob characters", "redis://127.0.0.1:6379?prefix=a*", /prefix/],
    ["an empty prefix", "redis://127.0.0.1:6379?prefix=", /prefix/],
    ["text that is no URL, without repeating it (it may hold a password)", "redis://:hunter2@[::1", /^(?!.*hunter2).*not a valid URL/],
  ])("refuses %s", (_label, url, mentions) => {
    let failure: unknown;
    try {
      parseRedisUrl(url);
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(PersisterError);
    expect((failure as PersisterError).code).toBe(Code.INVALID_ARGUMENT);
    expect((failure as PersisterError).message).toMatch(mentions);
  });

  test("an unreachable Redis fails UNAVAILABLE at open, within the connect timeout", async () => {
    const started = Date.now();
    await expect(openRedis("redis://127.0.0.1:1")).rejects.toMatchObject({ code: Code.UNAVAILABLE, message: expect.stringMatching(/ECONNREFUSED/) });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
