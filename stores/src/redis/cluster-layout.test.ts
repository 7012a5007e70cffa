/**
 * The Redis Cluster key layout as the cluster sees it: every key follows the documented grammar,
 * every key of a partition lies in the slot of its hash tag (asked of Redis), a deleted partition
 * leaves no key behind, and a partition's copy of the initialized marker is made only once the
 * store's own marker is seen.
 */
import type { Cluster } from "ioredis";
import { Code } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import { openRedis } from "./index";
import { hashTag } from "./keys";
import { parseRedisUrl } from "./url";
import { connectClusterAdmin, deleteNamespaces, keyComponents, keysUnderCluster, redisClusterUrl, redisUrl, uniquePrefix, withPrefix } from "./testing";

const prefix = uniquePrefix("cluster-layout");
let admin: Cluster;
let store: GuardedPersister;

beforeAll(async () => {
  admin = await connectClusterAdmin();
  store = new GuardedPersister(await openRedis(withPrefix(redisClusterUrl, prefix)));
  await store.initialize();
});

afterAll(async () => {
  await store?.close();
  admin?.disconnect();
  await deleteNamespaces([prefix], redisClusterUrl);
});

const save = (partitionKey: string, appId: string, sequenceId: number): SaveInput<Uint8Array> => ({
  partitionKey,
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`${partitionKey}|${appId}|${sequenceId}`)),
  status: "completed",
});


/** The documented grammar: `P:meta`, or `P:<kind>:{tag}<part>...` with the partition's own tag. */
function parseKey(key: Buffer): { kind: string; partition?: string } | null {
  if (key.toString("latin1") === `${prefix}:meta`) return { kind: "store meta" };
  for (const [kind, arity] of [["meta", 1], ["row", 1], ["keys", 2], ["steps", 2], ["apps", 1], ["pruned", 1]] as const) {
    const head = Buffer.from(`${prefix}:${kind}:`);
    if (!key.subarray(0, head.length).equals(head)) continue;
    const tag = key.subarray(head.length, head.length + 18).toString("latin1");
    let rest = key.subarray(head.length + 18);
    // A row key ends with its 16-digit write number.
    if (kind === "row") {
      if (!/^[0-9]{16}$/.test(rest.subarray(rest.length - 16).toString("latin1"))) return null;
      rest = rest.subarray(0, rest.length - 16);
    }
    const parts = keyComponents(rest);
    if (!parts || parts.length !== arity || tag !== hashTag(parts[0]!)) return null;
    return { kind, partition: parts[0] };
  }
  return null;
}

const partitions = ["", "p", "a}b{c", "{x}", "zürich"];

test("every key follows the grammar; a partition's keys share one slot; no store-wide partitions set", async () => {
  for (const partition of partitions) for (const app of ["a", "{b}"]) for (let i = 0; i < 2; i++) await store.save(save(partition, app, i));
  const keys = await keysUnderCluster(admin, prefix);
  const parsed = keys.map((key) => ({ key: key.toString("utf8"), parsed: parseKey(key) }));
  expect(parsed.filter((entry) => entry.parsed === null).map((entry) => entry.key)).toEqual([]);
  expect(parsed.filter((entry) => entry.parsed!.kind === "store meta")).toHaveLength(1);
  for (const partition of partitions) {
    const own = keys.filter((_, i) => parsed[i]!.parsed!.partition === partition);
    // meta, 4 rows, keys and steps of 2 apps, apps.
    expect({ partition, kinds: own.map((key) => parseKey(key)!.kind).sort() }).toEqual({
      partition,
      kinds: ["apps", "keys", "keys", "meta", "row", "row", "row", "row", "steps", "steps"],
    });
    const slots = new Set(await Promise.all(own.map((key) => admin.cluster("KEYSLOT", key))));
    expect({ partition, slots: slots.size }).toEqual({ partition, slots: 1 });
  }
  // The partitions span more than one master (so the suite above was a cluster test at all).
  const slotsOfPartitions = await Promise.all(partitions.map((partition) => admin.cluster("KEYSLOT", `${hashTag(partition)}`)));
  const masters = new Set(slotsOfPartitions.map((slot) => JSON.stringify(admin.slots[slot]?.[0])));
  expect(masters.size).toBeGreaterThan(1);
});

test("saves to 50 partitions issued at once (automatic pipelines, one per node) all land", async () => {
  const saves = Array.from({ length: 500 }, (_, i) => save(`many-${i % 50}`, "a", Math.floor(i / 50)));
  await Promise.all(saves.map((input) => store.save(input)));
  const loaded = await Promise.all(saves.map((input) => store.load({ partitionKey: input.partitionKey, appId: "a", sequenceId: input.sequenceId })));
  expect(loaded.map((row) => Buffer.from(row!.state).toString())).toEqual(saves.map((input) => Buffer.from(input.state).toString()));
});

test("DeletePartition leaves no key of the partition, its counter included; the next save marks it again", async () => {
  const partition = "deleted";
  for (let i = 0; i < 5; i++) await store.save(save(partition, "a", i));
  const ofPartition = async () => (await keysUnderCluster(admin, prefix)).filter((key) => parseKey(key)?.partition === partition);
  expect((await ofPartition()).length).toBeGreaterThan(0);
  expect(await store.deletePartition(partition)).toEqual({ stepsDeleted: 5, appsDeleted: 1 });
  expect(await ofPartition()).toEqual([]);
  await store.save(save(partition, "a", 0));
  expect(await store.load({ partitionKey: partition, appId: "a" })).toMatchObject({ sequenceId: 0 });
  expect((await ofPartition()).map((key) => parseKey(key)!.kind).sort()).toEqual(["apps", "keys", "meta", "row", "steps"]);
});

test("a partition is marked only once the store's marker is seen: without it, a new partition's save is FAILED_PRECONDITION", async () => {
  await admin.del(`${prefix}:meta`);
  try {
    expect(await store.isInitialized()).toBe(false);
    await expect(store.save(save("never-marked", "a", 0))).rejects.toMatchObject({ code: Code.FAILED_PRECONDITION });
    expect((await keysUnderCluster(admin, prefix)).filter((key) => parseKey(key)?.partition === "never-marked")).toEqual([]);
  } finally {
    await store.initialize();
  }
  await store.save(save("never-marked", "a", 0));
  expect(await store.load({ partitionKey: "never-marked" })).toMatchObject({ appId: "a" });
});

describe("URLs that name the wrong kind of Redis", () => {
  const nodes = parseRedisUrl(redisClusterUrl).cluster!.nodes;

  test("redis:// naming a node of a cluster: FAILED_PRECONDITION saying to use redis+cluster://", async () => {
    // Six partitions: some are served by another master, whichever node this is.
    // The backend itself: the guard would first ask whether the namespace is initialized.
    const single = await openRedis(withPrefix(`redis://${nodes[0]!.host}:${nodes[0]!.port}`, uniquePrefix("not-cluster")));
    try {
      const answers = await Promise.allSettled(["a", "b", "c", "d", "e", "f"].map((partitionKey) => single.load({ kind: "partition-latest", partitionKey })));
      const refused = answers.filter((answer) => answer.status === "rejected").map((answer) => (answer as PromiseRejectedResult).reason);
      expect(refused.length).toBeGreaterThan(0);
      for (const error of refused) {
        expect(error).toMatchObject({ code: Code.FAILED_PRECONDITION, message: expect.stringMatching(/is a node of a Redis Cluster \(it answered (MOVED|CROSSSLOT) .*\): use redis\+cluster:\/\//) });
      }
    } finally {
      await single.close();
    }
  });

  test("redis+cluster:// naming a Redis that is no cluster, or nothing: UNAVAILABLE at open", async () => {
    await expect(openRedis(withPrefix(redisUrl.replace(/^redis:/, "redis+cluster:"), "x"))).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await expect(openRedis("redis+cluster://127.0.0.1:1,127.0.0.1:2")).rejects.toMatchObject({ code: Code.UNAVAILABLE });
  });
});
