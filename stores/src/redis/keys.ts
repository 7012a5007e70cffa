/**
 * Every key the Redis store uses, built in one place (README.md has the full picture).
 *
 * One Redis: the layout of version 1, unchanged. A cluster: every key of a partition carries the
 * partition's hash tag `{<16 hex digits of its SHA-1>}`, so all of them sit in one slot and each
 * script touches one slot; the write counter and a copy of the initialized marker move into a
 * per-partition meta hash, and there is no store-wide partitions set (Prune of every partition
 * scans every master instead).
 */
import { createHash } from "node:crypto";

/** "<byte length>:<text>": a component that cannot run into the next one. */
export const component = (text: string) => `${Buffer.byteLength(text, "utf8")}:${text}`;

/**
 * The partition's hash tag. A digest rather than the key itself: a partition key may hold "}"
 * (which would end the tag early). Partitions whose digests collide merely share a slot: their
 * keys still differ by the length-prefixed partition that follows the tag.
 */
export const hashTag = (partitionKey: string) => `{${createHash("sha1").update(partitionKey, "utf8").digest("hex").slice(0, 16)}}`;

const tagLength = hashTag("").length;

export type RedisKeys = ReturnType<typeof redisKeys>;

export function redisKeys(prefix: string, clustered: boolean) {
  /** What names the partition inside its keys: its component, behind its hash tag in a cluster. */
  const part = (partitionKey: string) => (clustered ? hashTag(partitionKey) : "") + component(partitionKey);
  return {
    clustered,
    /** The store's marker (`schema`); on one Redis also the write counter and the partitions marker. */
    meta: `${prefix}:meta`,
    /** The hash a save checks and counts in: the store's meta, or in a cluster the partition's own. */
    counter: (partitionKey: string) => (clustered ? `${prefix}:meta:${part(partitionKey)}` : `${prefix}:meta`),
    rowPrefix: (partitionKey: string) => (clustered ? `${prefix}:row:${part(partitionKey)}` : `${prefix}:row:`),
    uniqueness: (partitionKey: string, appId: string) => `${prefix}:keys:${part(partitionKey)}${component(appId)}`,
    steps: (partitionKey: string, appId: string) => `${prefix}:steps:${part(partitionKey)}${component(appId)}`,
    apps: (partitionKey: string) => `${prefix}:apps:${part(partitionKey)}`,
    pruned: (partitionKey: string) => `${prefix}:pruned:${part(partitionKey)}`,
    /** One Redis only: every partition key with apps. */
    partitions: `${prefix}:partitions`,
    part,
    /** Prefixes the delete script completes with part() and the app's component. */
    stepsPrefix: `${prefix}:steps:`,
    uniquenessPrefix: `${prefix}:keys:`,
    appsPrefix: `${prefix}:apps:`,
    /** The partition an apps key (from SCAN) names, or null for a key of another shape. */
    partitionOfAppsKey(key: Buffer): Buffer | null {
      const head = Buffer.byteLength(`${prefix}:apps:`) + (clustered ? tagLength : 0);
      const rest = key.subarray(head);
      const colon = rest.indexOf(":");
      if (colon <= 0) return null;
      const digits = rest.subarray(0, colon).toString("latin1");
      if (!/^(0|[1-9][0-9]*)$/.test(digits) || colon + 1 + Number(digits) !== rest.length) return null;
      const partition = rest.subarray(colon + 1);
      if (clustered && key.subarray(head - tagLength, head).toString("latin1") !== hashTag(partition.toString("utf8"))) return null;
      return partition;
    },
  };
}
