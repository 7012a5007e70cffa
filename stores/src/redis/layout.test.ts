/**
 * The Redis key layout as Redis sees it: every key the store creates follows the documented
 * grammar, user strings only ever appear length-prefixed, and sequence ids order exactly up to
 * 2^53 - 1 although sorted-set scores are doubles.
 */
import type { Redis } from "ioredis";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import type { SaveInput } from "@burr-state/client/protocol";
import type { HistoryBackend } from "../backend";
import { openRedis, parseRedisUrl } from "./index";
import { connectAdmin, deleteNamespaces, keyComponents, keysUnder, redisUrl, uniquePrefix, withPrefix } from "./testing";

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


type ParsedKey =
  | { kind: "meta" | "partitions" }
  | { kind: "row"; write: string }
  | { kind: "keys" | "steps" | "apps" | "pruned"; parts: string[] };

/** The documented grammar; anything else is a key the store should not have made. */
function parseKey(key: Buffer, namespace: string = prefix): ParsedKey | null {
  const text = key.toString("latin1");
  if (text === `${namespace}:meta`) return { kind: "meta" };
  if (text === `${namespace}:partitions`) return { kind: "partitions" };
  const row = new RegExp(`^${namespace}:row:([0-9]{16})$`).exec(text);
  if (row) return { kind: "row", write: row[1]! };
  for (const [kind, arity] of [["keys", 2], ["steps", 2], ["apps", 1], ["pruned", 1]] as const) {
    const head = Buffer.from(`${namespace}:${kind}:`);
    if (!key.subarray(0, head.length).equals(head)) continue;
    const parts = keyComponents(key.subarray(head.length));
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
    // The partitions set holds each partition key as it is (a member, not part of a key name).
    expect(parsed.filter(({ parsed: key }) => key?.kind === "partitions")).toHaveLength(1);
    expect((await admin.smembers(`${prefix}:partitions`)).sort()).toEqual([...new Set(rows.map((row) => row.partitionKey ?? ""))].sort());
    // Nothing was pruned: no pruned sets.
    expect(parsed.filter(({ parsed: key }) => key?.kind === "pruned")).toEqual([]);

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

/** The backend behind the guard, with its private call() through which every Redis call goes. */
type Calls = { call<T>(work: () => Promise<T>): Promise<T> };
const backendOf = (persister: GuardedPersister) => persister.backend as unknown as HistoryBackend & Calls;

/**
 * Counts the backend's Redis calls (each delete batch is one script call), and lets a test act
 * after each one; calls made by that action are not counted.
 */
function spyOnCalls(persister: GuardedPersister, between?: (call: number) => Promise<void>): { calls: number; restore(): void } {
  const backend = backendOf(persister);
  const original = backend.call;
  let acting = false;
  const spy = {
    calls: 0,
    restore: () => {
      backend.call = original;
    },
  };
  backend.call = async <T>(work: () => Promise<T>): Promise<T> => {
    const answer = (await original.call(backend, work)) as T;
    if (acting) return answer;
    spy.calls++;
    acting = true;
    try {
      await between?.(spy.calls);
    } finally {
      acting = false;
    }
    return answer;
  };
  return spy;
}

const ids = async (persister: GuardedPersister, partitionKey: string, appId: string) => {
  const out: string[] = [];
  for await (const step of persister.listSteps({ partitionKey, appId })) out.push(`${step.sequenceId}:${step.position}`);
  return out;
};

describe("redis history, deletes and retention", () => {
  test("DeleteApp and DeletePartition leave no key of theirs behind, and each batch is one script of at most the batch size", async () => {
    const partition = "deleted-part";
    for (const [appId, steps] of [["a", 23], ["b", 3]] as const) {
      for (let i = 0; i < steps; i++) await store.save(save(partition, appId, i, "act"));
    }
    await store.save(save("kept-part", "a", 0, "act"));
    const ofPartition = async (partitionKey: string) =>
      (await keysUnder(admin, prefix))
        .map((key) => parseKey(key))
        .filter((key) => key && "parts" in key && key.parts[0] === partitionKey)
        .map((key) => JSON.stringify(key))
        .sort();
    const rowsBefore = (await keysUnder(admin, prefix)).filter((key) => parseKey(key)?.kind === "row").length;

    const spy = spyOnCalls(store);
    try {
      expect(await backendOf(store).deleteApp(partition, "a", 5)).toBe(23);
      expect(spy.calls).toBe(5); // 5 + 5 + 5 + 5 + 3, the last one also drops the app
    } finally {
      spy.restore();
    }
    expect(await ofPartition(partition)).toEqual(
      [["keys", ["deleted-part", "b"]], ["steps", ["deleted-part", "b"]], ["apps", ["deleted-part"]]].map(([kind, parts]) => JSON.stringify({ kind, parts })).sort(),
    );
    expect(await admin.zrange(`${prefix}:apps:${Buffer.byteLength(partition)}:${partition}`, 0, -1)).toEqual(["b"]);
    expect((await keysUnder(admin, prefix)).filter((key) => parseKey(key)?.kind === "row")).toHaveLength(rowsBefore - 23);

    expect(await store.deletePartition(partition)).toEqual({ stepsDeleted: 3, appsDeleted: 1 });
    expect(await ofPartition(partition)).toEqual([]);
    expect(await admin.sismember(`${prefix}:partitions`, partition)).toBe(0);
    expect(await admin.sismember(`${prefix}:partitions`, "kept-part")).toBe(1);
    expect((await keysUnder(admin, prefix)).filter((key) => parseKey(key)?.kind === "row")).toHaveLength(rowsBefore - 26);
    expect(await store.load({ partitionKey: "kept-part", appId: "a" })).toMatchObject({ sequenceId: 0 });
  });

  test("a save between two delete batches is deleted with the app; a save after the last batch lists it again", async () => {
    const partition = "racing";
    for (let i = 0; i < 4; i++) await store.save(save(partition, "app", i, "act"));
    const spy = spyOnCalls(store, async (call) => {
      if (call === 1) await store.save(save(partition, "app", 10, "during"));
    });
    try {
      // Batches of 2: 2, 2 (the save of step 10 landed after the first), 1 (step 10, and the app).
      expect(await backendOf(store).deleteApp(partition, "app", 2)).toBe(5);
    } finally {
      spy.restore();
    }
    expect(await store.listAppIds(partition)).toEqual([]);
    expect(await store.load({ partitionKey: partition })).toBeNull();
    await store.save(save(partition, "app", 10, "during")); // its key is free again
    expect(await store.listAppIds(partition)).toEqual(["app"]);
    expect(await ids(store, partition, "app")).toEqual(["10:during"]);
  });

  test("after a Prune deletes an app's last write, Load of the partition gives the newest write left; ListAppIds keeps the order of writes", async () => {
    const partition = "rewound";
    for (let i = 0; i < 6; i++) await store.save(save(partition, "a", i, `action${i}`));
    await store.save(save(partition, "b", 0, "action0"));
    await store.save(save(partition, "a", 3, "again")); // a's last write, not its highest step
    expect((await store.load({ partitionKey: partition }))?.position).toBe("again");
    expect(await store.prune({ partitionKey: partition, keepLast: 2 })).toBe(5);
    // a's newest write left (5) is older than b's step 0.
    expect(await store.load({ partitionKey: partition })).toMatchObject({ appId: "b", sequenceId: 0 });
    expect(await store.listAppIds(partition)).toEqual(["a", "b"]);
    const pruned = `${prefix}:pruned:${Buffer.byteLength(partition)}:${partition}`;
    expect(await admin.zrange(pruned, 0, -1)).toEqual(["a"]);
    // Pruning b's only step is refused by the rule (never the highest); pruning a again moves its mark down.
    expect(await store.prune({ partitionKey: partition, appId: "a", keepLast: 1 })).toBe(1);
    expect(await ids(store, partition, "a")).toEqual(["5:action5"]);
    expect(await store.load({ partitionKey: partition })).toMatchObject({ appId: "b" });
    // b deleted: a's newest write left is the partition's latest.
    await store.deleteApp(partition, "b");
    expect(await store.load({ partitionKey: partition })).toMatchObject({ appId: "a", sequenceId: 5 });
    // A new write of a is its newest again: the mark goes.
    await store.save(save(partition, "a", 6, "action6"));
    expect(await admin.exists(pruned)).toBe(0);
    expect(await store.load({ partitionKey: partition })).toMatchObject({ appId: "a", sequenceId: 6 });
    await store.deletePartition(partition);
    expect(await admin.exists(pruned)).toBe(0);
  });

  test("ListSteps pages: steps sharing a sequence id split across pages, and the last step of a page deleted before the next", async () => {
    const partition = "ties";
    await store.save(save(partition, "app", 9, "top"));
    for (let i = 0; i < 8; i++) await store.save(save(partition, "app", 5, `p${i}`));
    await store.save(save(partition, "app", 1, "bottom"));
    const pages: string[][] = [];
    const key = { partitionKey: partition, appId: "app", beforeSequenceId: null, limit: null, includeState: false };
    for await (const page of backendOf(store).stepPages(key, 3)) {
      pages.push(page.map((row) => `${row.sequenceId}:${row.position}`));
      if (pages.length === 2) {
        // Delete the page's last step (p3) behind the store's back, as a prune would.
        const write = await admin.hget(`${prefix}:keys:${Buffer.byteLength(partition)}:${partition}3:app`, "5:p3");
        await admin.zrem(`${prefix}:steps:${Buffer.byteLength(partition)}:${partition}3:app`, write!);
      }
    }
    expect(pages).toEqual([["9:top", "5:p7", "5:p6"], ["5:p5", "5:p4", "5:p3"], ["5:p2", "5:p1", "5:p0"], ["1:bottom"]]);
    const limited = { ...key, beforeSequenceId: 6, limit: 4 };
    const rows: string[] = [];
    for await (const page of backendOf(store).stepPages(limited, 3)) rows.push(...page.map((row) => row.position));
    expect(rows).toEqual(["p7", "p6", "p5", "p4"]);
  });

  test("ListSteps pages with states stop at 16 MiB of them (at least one row)", async () => {
    const partition = "big-states";
    const big = (i: number): SaveInput<Uint8Array> => ({ ...save(partition, "app", i, "act"), state: new Uint8Array(7 * 1024 * 1024).fill(i) });
    for (let i = 0; i < 3; i++) await store.save(big(i));
    const sizes: number[][] = [];
    for await (const page of backendOf(store).stepPages({ partitionKey: partition, appId: "app", beforeSequenceId: null, limit: null, includeState: true }, 10)) {
      sizes.push(page.map((row) => row.state.byteLength));
    }
    expect(sizes).toEqual([[7 * 1024 * 1024, 7 * 1024 * 1024], [7 * 1024 * 1024]]);
    await store.deleteApp(partition, "app");
  });
});

describe("redis partitions set: a namespace saved before it existed", () => {
  const old = uniquePrefix("upgrade");
  let upgraded: GuardedPersister;

  beforeAll(async () => {
    upgraded = new GuardedPersister(await openRedis(withPrefix(redisUrl, old)));
    await upgraded.initialize();
  });
  afterAll(async () => {
    await upgraded?.close();
    await deleteNamespaces([old]);
  });

  /** What version 1 left: no partitions set, no marker. */
  const forget = async () => {
    await admin.del(`${old}:partitions`);
    await admin.hdel(`${old}:meta`, "partitions");
  };

  test("Initialize indexes every partition that has apps, then marks the set complete", async () => {
    for (const partition of ["", "x", "y:z", "ü"]) await upgraded.save(save(partition, "app", 0, "act"));
    await forget();
    await upgraded.initialize();
    expect((await admin.smembers(`${old}:partitions`)).sort()).toEqual(["", "x", "y:z", "ü"].sort());
    expect(await admin.hget(`${old}:meta`, "partitions")).toBe("1");
  });

  test("Prune of every partition indexes them first when Initialize has not", async () => {
    for (const partition of ["", "x", "y:z", "ü"]) for (let i = 1; i < 3; i++) await upgraded.save(save(partition, "app", i, "act"));
    await forget();
    expect(await upgraded.prune({ keepLast: 1 })).toBe(8);
    expect((await admin.smembers(`${old}:partitions`)).sort()).toEqual(["", "x", "y:z", "ü"].sort());
    for (const partition of ["", "x", "y:z", "ü"]) expect(await ids(upgraded, partition, "app")).toEqual(["2:act"]);
    for (const key of await keysUnder(admin, old)) expect(parseKey(key, old)).not.toBeNull();
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
