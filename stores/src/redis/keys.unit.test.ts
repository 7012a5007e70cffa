/** The Redis key layout, one Redis and a cluster: what each key is called, and which slot it falls in. Nothing connects. */
import { component, hashTag, redisKeys } from "./keys";

/** The slot function ioredis routes by (its own dependency, shipped without types). */
const calculateSlot = require("cluster-key-slot") as (key: string) => number;

describe("redis keys", () => {
  const partitions = ["", "p", "a}b{c", "{x}", "zürich", "3:", "p".repeat(300)];

  test("one Redis: the layout of version 1 (no hash tags, one counter, a partitions set)", () => {
    const keys = redisKeys("burr", false);
    expect([keys.counter("p"), keys.rowPrefix("p"), keys.uniqueness("p", "a"), keys.steps("p", "a"), keys.apps("p"), keys.pruned("p"), keys.partitions]).toEqual([
      "burr:meta",
      "burr:row:",
      "burr:keys:1:p1:a",
      "burr:steps:1:p1:a",
      "burr:apps:1:p",
      "burr:pruned:1:p",
      "burr:partitions",
    ]);
    expect(keys.part("zürich")).toBe("7:zürich");
  });

  test("a cluster: the partition's tag, then its component, in every key of the partition", () => {
    const keys = redisKeys("burr", true);
    const tag = hashTag("p");
    expect(tag).toMatch(/^\{[0-9a-f]{16}\}$/);
    expect([keys.counter("p"), keys.rowPrefix("p"), keys.uniqueness("p", "a"), keys.steps("p", "a"), keys.apps("p"), keys.pruned("p")]).toEqual([
      `burr:meta:${tag}1:p`,
      `burr:row:${tag}1:p`,
      `burr:keys:${tag}1:p1:a`,
      `burr:steps:${tag}1:p1:a`,
      `burr:apps:${tag}1:p`,
      `burr:pruned:${tag}1:p`,
    ]);
  });

  test.each(partitions)("a cluster: every key of partition %j is in the slot of its tag, braces in the partition or app notwithstanding", (partition) => {
    const keys = redisKeys("burr", true);
    const slot = calculateSlot(hashTag(partition).slice(1, -1));
    const made = [keys.counter(partition), `${keys.rowPrefix(partition)}0000000000000001`, keys.uniqueness(partition, "{a}"), keys.steps(partition, "}"), keys.apps(partition), keys.pruned(partition)];
    // The delete script's keys, completed in Lua from the prefixes and part().
    made.push(`${keys.stepsPrefix}${keys.part(partition)}${component("{app}")}`, `${keys.uniquenessPrefix}${keys.part(partition)}${component("x")}`);
    expect(made.map((key) => calculateSlot(key))).toEqual(made.map(() => slot));
  });

  test.each([false, true])("the partition an apps key names (clustered: %j)", (clustered) => {
    const keys = redisKeys("burr", clustered);
    for (const partition of partitions) expect(keys.partitionOfAppsKey(Buffer.from(keys.apps(partition)))?.toString("utf8")).toBe(partition);
    const otherTag = clustered ? hashTag("q") : "";
    for (const stranger of ["burr:apps:", "burr:apps:x", "burr:apps:2:p", "burr:apps:01:p", `burr:apps:${otherTag}1:p`, `burr:apps:${hashTag("p")}`]) {
      if (!clustered && stranger === "burr:apps:1:p") continue;
      expect({ stranger, partition: keys.partitionOfAppsKey(Buffer.from(stranger)) }).toEqual({ stranger, partition: null });
    }
  });
});
