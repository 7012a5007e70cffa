/**
 * RedisBasePersister's keys: a hash per step at "[NAMESPACE:]PARTITION:APP:SEQUENCE" (fields
 * partition_key, app_id, sequence_id, position, state, status, created_at) and a sorted set per
 * partition. Hashes are found by SCAN and recognized by their fields and their key (other data in
 * the same database is left alone); sorted by created_at (Python's isoformat, microseconds),
 * then the states are fetched in that order, a page at a time.
 */
import Redis from "ioredis";
import { describeStep, partitionOf, sequenceIdOf, type BurrReader, type BurrStep } from "./step";
import { parseBurrTime } from "../burr-time";

const fields = ["partition_key", "app_id", "sequence_id", "position", "status", "created_at"] as const;
const pageSize = 500;

interface Entry {
  key: string;
  step: Omit<BurrStep, "state">;
  /** created_at in microseconds, for ordering steps that share a millisecond. */
  micros: number;
}

const microsOf = (createdAt: string, at: Date): number => {
  const fraction = /\.(\d+)/.exec(createdAt.slice(19))?.[1] ?? "";
  return Math.floor(at.getTime() / 1000) * 1_000_000 + Number(fraction.padEnd(6, "0").slice(0, 6));
};

export async function openRedisReader(connectUrl: string, namespace: string, partition: string | null): Promise<BurrReader> {
  const redis = new Redis(connectUrl, { lazyConnect: true, connectTimeout: 10_000, maxRetriesPerRequest: 2 });
  await redis.connect();
  let entries: Entry[] | null = null;

  const keyOf = (partitionKey: string, appId: string, sequenceId: string) => `${namespace ? `${namespace}:` : ""}${partitionKey}:${appId}:${sequenceId}`;

  const collect = async (): Promise<Entry[]> => {
    if (entries) return entries;
    const found: Entry[] = [];
    const pattern = `${namespace ? `${namespace}:` : ""}${partition === null ? "" : `${partition}:`}*`.replace(/[[\]\\?]/g, "\\$&").replace(/\*(?=.)/g, "\\*");
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000, "TYPE", "hash");
      cursor = next;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.hmget(key, ...fields);
      const answers = keys.length ? ((await pipeline.exec()) ?? []) : [];
      answers.forEach(([error, values], i) => {
        if (error) throw error;
        const [partitionKey, appId, sequenceId, position, status, createdAt] = values as Array<string | null>;
        if (appId == null || sequenceId == null || position == null || status == null || createdAt == null || partitionKey == null) return;
        if (keyOf(partitionKey, appId, sequenceId) !== keys[i]) return; // a hash of another program
        const at = describeStep(partitionKey, appId, sequenceId);
        const created = parseBurrTime(createdAt)!;
        found.push({
          key: keys[i]!,
          step: { partitionKey: partitionOf(partitionKey), appId, sequenceId: sequenceIdOf(sequenceId, at), position, status, createdAt: created },
          micros: microsOf(createdAt, created),
        });
      });
    } while (cursor !== "0");
    found.sort((a, b) => a.micros - b.micros || (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    entries = found;
    return found;
  };

  return {
    count: async () => (await collect()).length,
    async *steps(): AsyncIterable<BurrStep> {
      const all = await collect();
      for (let from = 0; from < all.length; from += pageSize) {
        const page = all.slice(from, from + pageSize);
        const pipeline = redis.pipeline();
        for (const entry of page) pipeline.hgetBuffer(entry.key, "state");
        const states = (await pipeline.exec()) ?? [];
        for (const [i, entry] of page.entries()) {
          const [error, state] = states[i]!;
          if (error) throw error;
          if (state == null) throw new Error(`${describeStep(entry.step.partitionKey, entry.step.appId, entry.step.sequenceId)}: the step's hash lost its state while the import ran`);
          // Verbatim: Burr wrote json.dumps of the serialized state, as the Python persister does.
          yield { ...entry.step, state: new Uint8Array(state as Buffer) };
        }
      }
    },
    close: async () => void redis.disconnect(),
  };
}
