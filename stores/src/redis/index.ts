/**
 * The Redis store, through ioredis. Every save is one Lua script: it checks the initialized
 * marker and the row's uniqueness, takes the next number from the store-wide write counter and
 * writes the row and all its indexes, so no other client ever sees (or races into) half a save.
 * Every delete batch is one script too: it removes at most a batch of rows with their index
 * entries, and drops the app from its partition in the same script that finds it without steps.
 *
 * Key layout under the namespace P (README.md has the full picture):
 *   P:meta                    hash: schema (the initialized marker), writes (the write counter),
 *                             partitions (P:partitions is complete)
 *   P:row:<write>             hash: one saved row; <write> is its write number, 16 digits
 *   P:keys:<part><app>        hash: "<sequence>:<position>" -> write, the uniqueness index
 *   P:steps:<part><app>       sorted set: write, scored by sequence id
 *   P:apps:<part>             sorted set: app id, scored by the app's last write
 *   P:pruned:<part>           sorted set: app id, scored by its newest remaining write, only for
 *                             apps whose last write a Prune deleted
 *   P:partitions              set: every partition key with apps (for Prune of every partition)
 * <part> and <app> are length-prefixed ("<utf8 bytes>:<text>"), so no choice of partition and
 * app id can spell another pair's key. Write numbers are fixed-width, so among members with
 * the same score (sequence id) the lexically greatest is the last written.
 *
 * On a Redis Cluster (keys.ts) <part> carries the partition's hash tag, so every script touches
 * the one slot of its partition; each partition counts its own writes in P:meta:<part> (write
 * numbers only ever order writes within a partition), and there is no P:partitions.
 */
import { Cluster, Redis, ReplyError } from "ioredis";
import type { Backend, HistoryBackend, StoredRow } from "../backend";
import { Code, duplicate, notInitialized, PersisterError, unavailable } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, PruneRule, SaveRow, StepsKey } from "@burr-state/client/protocol";
import { redisKeys, type RedisKeys } from "./keys";
import { parseRedisUrl, type ClusterRedisOptions, type RedisOptions } from "./url";

export { parseRedisUrl, type RedisOptions };

/** How long connecting, and then each command, may take before the call fails UNAVAILABLE. */
const connectTimeoutMs = 3_000;
const commandTimeoutMs = 3_000;
/** How long a save waits for its replicas (wait_replicas) before failing UNAVAILABLE. */
const waitTimeoutMs = 1_000;
/** How often a save with wait_replicas follows its slot to another node. */
const maxRedirections = 3;
/** Reconnecting goes on in the background forever, at most this far apart. */
const maxReconnectDelayMs = 1_000;

const schemaVersion = "1";

/**
 * KEYS: counter (the meta hash, or in a cluster the partition's), uniqueness hash, steps set,
 * apps set, pruned set, and on one Redis the partitions set.
 * ARGV: row key prefix, uniqueness field, partition, app, sequence id, position, status, state,
 * creation time in ms ('' for the server's clock; given for imported rows), schema version to
 * mark the partition's counter initialized with ('' for none: a cluster's client passes it once
 * it has seen the store's marker, after this script answered 'uninitialized').
 * Sequence ids and write numbers stay strings: Lua numbers print with 14 digits only. The
 * counter increment is the first write, so a Redis that refuses writes refuses it, before
 * anything else is written.
 */
const saveScript = `
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'schema', ARGV[10])
elseif redis.call('HEXISTS', KEYS[1], 'schema') == 0 then return {'uninitialized'} end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'duplicate'} end
local write = string.format('%016d', redis.call('HINCRBY', KEYS[1], 'writes', 1))
local created = ARGV[9]
if created == nil or created == '' then
  local now = redis.call('TIME')
  created = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
end
redis.call('HSET', ARGV[1] .. write, 'partition', ARGV[3], 'app', ARGV[4], 'sequence', ARGV[5],
  'position', ARGV[6], 'status', ARGV[7], 'created', created, 'state', ARGV[8])
redis.call('HSET', KEYS[2], ARGV[2], write)
redis.call('ZADD', KEYS[3], ARGV[5], write)
redis.call('ZADD', KEYS[4], write, ARGV[4])
if KEYS[6] then redis.call('SADD', KEYS[6], ARGV[3]) end
-- This write is now the app's newest: whatever a prune recorded for it no longer applies.
redis.call('ZREM', KEYS[5], ARGV[4])
return {'saved', created}
`;

/**
 * KEYS: the steps set (modes "step", "app") or the apps set (mode "partition"); the pruned set.
 * ARGV: mode, row key prefix, sequence id (mode "step").
 *
 * Partition latest: the highest remaining write of the partition. For every app not in the
 * pruned set that is its apps score; for an app in it, its pruned score. So it is the larger of
 * the top pruned score and the first apps score (from the top) of an app not pruned; only apps
 * rewritten at an older step and then pruned are ever skipped, usually none.
 */
const loadScript = `
local write
if ARGV[1] == 'step' then
  write = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[3], 'LIMIT', 0, 1)[1]
elseif ARGV[1] == 'app' then
  write = redis.call('ZREVRANGE', KEYS[1], 0, 0)[1]
else
  local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
  local floor = top[2] and tonumber(top[2])
  local best = floor
  local from = 0
  local found = false
  while not found do
    local page = redis.call('ZREVRANGE', KEYS[1], from, from + 99, 'WITHSCORES')
    if #page == 0 then break end
    for i = 1, #page, 2 do
      local score = tonumber(page[i + 1])
      if floor and score <= floor then found = true break end
      if not floor or not redis.call('ZSCORE', KEYS[2], page[i]) then best = score found = true break end
    end
    from = from + 100
  end
  if best then write = string.format('%016d', best) end
end
if not write then return false end
return redis.call('HMGET', ARGV[2] .. write, 'partition', 'app', 'sequence', 'position', 'status', 'created', 'state')
`;

/**
 * Initialize. KEYS: meta. ARGV: schema version. Answers 1 when the partitions set is complete:
 * a namespace initialized now has no partitions yet, one initialized by an older version needs
 * its partitions indexed (RedisBackend.indexPartitions).
 */
const initScript = `
if redis.call('HSETNX', KEYS[1], 'schema', ARGV[1]) == 1 then
  redis.call('HSET', KEYS[1], 'partitions', '1')
  return 1
end
return redis.call('HEXISTS', KEYS[1], 'partitions')
`;

/** Lua helpers shared by the delete and prune scripts. */
const luaHelpers = `
local function component(text) return string.len(text) .. ':' .. text end
-- DEL/ZREM/HDEL with at most 500 arguments at a time (Lua's unpack has a stack limit).
local function each_chunk(command, key, items)
  for i = 1, #items, 500 do
    local last = math.min(i + 499, #items)
    if key then redis.call(command, key, unpack(items, i, last)) else redis.call(command, unpack(items, i, last)) end
  end
end
-- Removes the rows named by writes (members of steps) and their index entries.
local function remove_rows(row_prefix, steps, uniqueness, writes)
  if #writes == 0 then return end
  local rows, fields = {}, {}
  for i, write in ipairs(writes) do
    rows[i] = row_prefix .. write
    local key = redis.call('HMGET', rows[i], 'sequence', 'position')
    if key[1] and key[2] then fields[#fields + 1] = key[1] .. ':' .. key[2] end
  end
  -- UNLINK frees large states in the background.
  each_chunk('UNLINK', nil, rows)
  each_chunk('HDEL', uniqueness, fields)
  each_chunk('ZREM', steps, writes)
end
`;

/**
 * One delete batch: at most ARGV[6] rows of one app (mode "app") or of the partition's apps one
 * after another (mode "partition"). An app whose steps set is empty leaves its partition's apps
 * set in this same script, so a save (one script too) lands either before it (and is deleted with
 * the app: it sits in the steps set) or after it (and lists its app again). A partition with no
 * apps left leaves the partitions set (one Redis), or loses its counter (a cluster: a save
 * then marks it again).
 * KEYS: apps set, pruned set, then the partitions set (one Redis) or the partition's counter (a cluster).
 * ARGV: row key prefix, steps key prefix, uniqueness key prefix, <part>, partition, batch, mode,
 * app, "set" or "counter" (what KEYS[3] is).
 * Answers {steps deleted, apps deleted, 1 when done}.
 */
const deleteScript = `${luaHelpers}
local budget = tonumber(ARGV[6])
local steps_deleted, apps_deleted = 0, 0
local function drain(app)
  local steps = ARGV[2] .. ARGV[4] .. component(app)
  local uniqueness = ARGV[3] .. ARGV[4] .. component(app)
  local writes = redis.call('ZRANGE', steps, 0, budget - 1)
  remove_rows(ARGV[1], steps, uniqueness, writes)
  steps_deleted = steps_deleted + #writes
  budget = budget - #writes
  if redis.call('EXISTS', steps) == 1 then return false end
  redis.call('DEL', uniqueness)
  apps_deleted = apps_deleted + redis.call('ZREM', KEYS[1], app)
  redis.call('ZREM', KEYS[2], app)
  return true
end
local done
if ARGV[7] == 'app' then
  done = drain(ARGV[8])
else
  done = false
  while budget > 0 do
    local app = redis.call('ZRANGE', KEYS[1], 0, 0)[1]
    if not app then done = true break end
    if not drain(app) then break end
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then done = true end
end
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('DEL', KEYS[2])
  if ARGV[9] == 'set' then redis.call('SREM', KEYS[3], ARGV[5]) else redis.call('DEL', KEYS[3]) end
end
return {steps_deleted, apps_deleted, done and 1 or 0}
`;

/**
 * One prune batch of one app. Its steps in ascending order (oldest sequence first) are the
 * candidates, except the newest ARGV[3] (at least 1: never the highest step). Looks at the
 * candidates from rank ARGV[5] (those below were kept: too young), at most ARGV[6] of them,
 * and deletes those created before ARGV[4] (ms; "" for no age rule).
 * If that deletes the app's newest remaining write (its apps score, or its pruned score), the
 * newest one left is recorded in the pruned set in this same script (partition-latest loads
 * read it); finding it reads the app's remaining steps.
 * KEYS: steps set, uniqueness hash, apps set, pruned set.
 * ARGV: row key prefix, app, keep, cut, skip, batch.
 * Answers {deleted, kept, 1 when done}.
 */
const pruneScript = `${luaHelpers}
local limit = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[3])
local from = tonumber(ARGV[5])
if from >= limit then return {0, 0, 1} end
local to = math.min(from + tonumber(ARGV[6]), limit) - 1
local candidates = redis.call('ZRANGE', KEYS[1], from, to)
local doomed, kept = {}, 0
local cut = ARGV[4] ~= '' and tonumber(ARGV[4])
for _, write in ipairs(candidates) do
  local created = cut and tonumber(redis.call('HGET', ARGV[1] .. write, 'created'))
  if cut and created and created >= cut then kept = kept + 1 else doomed[#doomed + 1] = write end
end
remove_rows(ARGV[1], KEYS[1], KEYS[2], doomed)
if #doomed > 0 then
  local newest = redis.call('ZSCORE', KEYS[4], ARGV[2]) or redis.call('ZSCORE', KEYS[3], ARGV[2])
  if newest and redis.call('EXISTS', ARGV[1] .. string.format('%016d', tonumber(newest))) == 0 then
    local best
    local total = redis.call('ZCARD', KEYS[1])
    for i = 0, total - 1, 1000 do
      for _, write in ipairs(redis.call('ZRANGE', KEYS[1], i, i + 999)) do
        if not best or write > best then best = write end
      end
    end
    if best then redis.call('ZADD', KEYS[4], best, ARGV[2]) end
  end
end
return {#doomed, kept, (to + 1 >= limit) and 1 or 0}
`;

/**
 * One page of an app's steps, newest first (score descending; among equal scores the member,
 * a fixed-width write number, descending). Where the page starts: after the step (ARGV[4]
 * sequence, ARGV[5] write) when given, found by a binary search among the members sharing that
 * score (O(log n) each, however many there are, and right even if that step was deleted since);
 * else below sequence ARGV[3] when given; else at the top.
 * With states (ARGV[6] = "1") a page stops once it holds ARGV[7] bytes of them (at least one row).
 * KEYS: steps set. ARGV: row key prefix, count, before, after sequence, after write, with state, byte budget.
 * Answers {1 if there may be more, then per row: write, partition, app, sequence, position, status, created, state}.
 */
const stepsScript = `
local steps = KEYS[1]
local count = tonumber(ARGV[2])
local start = 0
if ARGV[5] ~= '' then
  local lo = redis.call('ZCOUNT', steps, '(' .. ARGV[4], '+inf')
  local hi = lo + redis.call('ZCOUNT', steps, ARGV[4], ARGV[4])
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    if redis.call('ZREVRANGE', steps, mid, mid)[1] < ARGV[5] then hi = mid else lo = mid + 1 end
  end
  start = lo
elseif ARGV[3] ~= '' then
  start = redis.call('ZCOUNT', steps, ARGV[3], '+inf')
end
local writes = redis.call('ZREVRANGE', steps, start, start + count - 1)
local out = {#writes == count and 1 or 0}
local with_state = ARGV[6] == '1'
local budget = tonumber(ARGV[7])
local bytes = 0
for i, write in ipairs(writes) do
  local row = ARGV[1] .. write
  if with_state then
    local size = redis.call('HSTRLEN', row, 'state')
    if i > 1 and bytes + size > budget then out[1] = 1 break end
    bytes = bytes + size
  end
  local fields = redis.call('HMGET', row, 'partition', 'app', 'sequence', 'position', 'status', 'created', 'state')
  out[#out + 1] = write
  for f = 1, 6 do out[#out + 1] = fields[f] end
  out[#out + 1] = with_state and fields[7] or ''
end
return out
`;

type SaveAnswer = [outcome: "saved" | "duplicate" | "uninitialized", createdAt?: string];

interface ScriptCommands {
  burrSave(...keysThenArgs: Array<string | Buffer>): Promise<SaveAnswer>;
  burrLoadBuffer(...keysThenArgs: string[]): Promise<Array<Buffer | null> | null>;
  burrInit(meta: string, schema: string): Promise<number>;
  burrDelete(...keysThenArgs: string[]): Promise<[stepsDeleted: number, appsDeleted: number, done: number]>;
  burrPrune(...keysThenArgs: string[]): Promise<[deleted: number, kept: number, done: number]>;
  burrStepsBuffer(...keysThenArgs: string[]): Promise<[more: number, ...fields: Array<Buffer | null>]>;
}

/** A page of steps with states stops once it holds this many bytes of them (at least one row). */
const stepPageBytes = 16 * 1024 * 1024;
/** Fields per row in a steps page: write, partition, app, sequence, position, status, created, state. */
const stepFields = 8;

type ScriptedRedis = (Redis | Cluster) & ScriptCommands;

/** Replies that mean "not now" (loading, failover, out of memory, a busy script), not a bug. */
const transientReply = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|MISCONF|NOREPLICAS|NOAUTH|WRONGPASS|CLUSTERDOWN|TRYAGAIN)\b/;

export class RedisBackend implements Backend, HistoryBackend {
  readonly kind = "redis";
  private readonly keys: RedisKeys;
  /** The latest connection failure, to say why calls fail while reconnecting. */
  private connectionError: Error | null = null;

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly options: RedisOptions,
  ) {
    this.keys = redisKeys(options.prefix, options.cluster !== undefined);
    redis.on("connect", () => {
      this.connectionError = null;
    });
    redis.on("error", (error: Error) => {
      this.connectionError = error;
    });
  }

  /** Connects, or fails UNAVAILABLE without reconnecting in the background. */
  async connect(): Promise<void> {
    try {
      await this.redis.connect();
      // ioredis reports a refused SELECT (a db the server does not have) only as an event, then
      // goes on in db 0: refuse to start rather than write there.
      if (this.connectionError instanceof ReplyError) throw this.connectionError;
    } catch (error) {
      this.redis.disconnect();
      throw this.unavailable(error);
    }
  }

  /** Runs one Redis call, mapping connection trouble and transient replies to UNAVAILABLE. */
  private async call<T>(work: () => Promise<T>): Promise<T> {
    try {
      return await work();
    } catch (error) {
      const reply = error instanceof ReplyError ? String((error as Error).message) : null;
      if (reply !== null && /^(MOVED|CROSSSLOT) /.test(reply) && !this.keys.clustered) {
        // A redis:// URL naming a node of a cluster: its keys live on other nodes too.
        throw new PersisterError(Code.FAILED_PRECONDITION, `redis at ${this.options.where} is a node of a Redis Cluster (it answered ${reply}): use redis+cluster://`);
      }
      if (reply !== null && !transientReply.test(reply)) throw error;
      throw this.unavailable(error);
    }
  }

  /** While disconnected, the socket's own error ("connect ECONNREFUSED ...") says more than the command's. */
  private unavailable(error: unknown): PersisterError {
    const cause = this.redis.status === "ready" || !this.connectionError ? error : this.connectionError;
    return unavailable(`redis at ${this.options.where}`, cause);
  }

  async initialize(): Promise<void> {
    const indexed = await this.call(() => this.redis.burrInit(this.keys.meta, schemaVersion));
    // A cluster has no partitions set to index.
    if (indexed !== 1 && !this.keys.clustered) await this.indexPartitions();
  }

  /**
   * The upgrade of a namespace written before the partitions set existed: every partition that
   * has an apps set joins it, then the meta marks it complete. SCAN returns every key that exists
   * for its whole run, and partitions created meanwhile join by their own save script, so the
   * set is complete when the scan ends. Run by Initialize, or by the first Prune of every
   * partition, whichever comes first; idempotent, several servers may run it at once.
   */
  private async indexPartitions(): Promise<void> {
    for await (const partitions of this.scanPartitions(this.redis as Redis)) {
      if (partitions.length > 0) await this.call(() => this.redis.sadd(this.keys.partitions, ...partitions));
    }
    await this.call(() => this.redis.hset(this.keys.meta, "partitions", "1"));
  }

  /** The partitions whose apps sets one node holds, a SCAN page at a time. */
  private async *scanPartitions(node: Redis): AsyncIterable<Buffer[]> {
    let cursor = "0";
    do {
      const [next, batch] = await this.call(() => node.scanBuffer(cursor, "MATCH", `${this.keys.appsPrefix}*`, "COUNT", 1000));
      cursor = next.toString();
      yield batch.flatMap((key) => this.keys.partitionOfAppsKey(key) ?? []);
    } while (cursor !== "0");
  }

  async isInitialized(): Promise<boolean> {
    return (await this.call(() => this.redis.hexists(this.keys.meta, "schema"))) === 1;
  }

  async save(row: SaveRow): Promise<Date> {
    let [outcome, createdAt] = await this.saveScript(row, "");
    // A cluster's partition not yet marked: marked by the save itself, once the store's marker is seen.
    if (outcome === "uninitialized" && this.keys.clustered && (await this.isInitialized())) {
      [outcome, createdAt] = await this.saveScript(row, schemaVersion);
    }
    if (outcome === "duplicate") throw duplicate(row);
    if (outcome === "uninitialized") throw notInitialized();
    return new Date(Number(createdAt));
  }

  private saveScript(row: SaveRow, markWith: string): Promise<SaveAnswer> {
    const { partitionKey, appId, sequenceId, position } = row;
    const sequence = String(sequenceId);
    const keys = [
      this.keys.counter(partitionKey),
      this.keys.uniqueness(partitionKey, appId),
      this.keys.steps(partitionKey, appId),
      this.keys.apps(partitionKey),
      this.keys.pruned(partitionKey),
      ...(this.keys.clustered ? [] : [this.keys.partitions]),
    ];
    const args: Array<string | Buffer> = [
      ...keys,
      this.keys.rowPrefix(partitionKey),
      // The sequence id has no ':', so the first one ends it.
      `${sequence}:${position}`,
      partitionKey,
      appId,
      sequence,
      position,
      row.status,
      // ioredis sends only Buffers as bytes (a plain Uint8Array would be stringified); this one shares the memory.
      Buffer.from(row.state.buffer, row.state.byteOffset, row.state.byteLength),
      row.createdAt ? String(row.createdAt.getTime()) : "",
      markWith,
    ];
    const replicas = this.options.waitReplicas;
    if (!replicas) return this.call(() => this.redis.burrSave(...args));
    // WAIT in the same pipeline, so it goes to the node that ran the script, on its connection.
    return this.call(async () => {
      for (let attempt = 1; ; attempt++) {
        const pipeline = this.redis.pipeline() as ReturnType<Redis["pipeline"]> & { burrSave(...args: unknown[]): unknown };
        pipeline.burrSave(...args);
        pipeline.wait(replicas, waitTimeoutMs);
        const [[saveError, answer], [waitError, acked]] = (await pipeline.exec()) as unknown as [[Error | null, SaveAnswer], [Error | null, number]];
        // ioredis follows no redirection in a pipeline whose WAIT succeeded: the script did not run,
        // so learn where the slot went (a failover) and send it again, a few times at most.
        const reply = saveError instanceof ReplyError ? String(saveError?.message) : "";
        const redirection = /^(MOVED|ASK) /.test(reply) ? reply : null;
        if (redirection !== null && this.redis instanceof Cluster) {
          if (attempt === maxRedirections) throw new Error(`the partition's slot is moving (${redirection}); the save did not run`);
          const cluster = this.redis;
          await new Promise<void>((resolve) => cluster.refreshSlotsCache(() => resolve()));
          continue;
        }
        if (saveError) throw saveError;
        if (answer[0] !== "saved") return answer;
        if (waitError) throw waitError;
        if (acked < replicas) throw new Error(`the save ran, but ${acked} of ${replicas} replicas had it within ${waitTimeoutMs} ms (wait_replicas): a failover could lose it`);
        return answer;
      }
    });
  }

  async load(key: LoadKey): Promise<StoredRow | null> {
    const fields = await this.call(() => {
      switch (key.kind) {
        case "step":
          return this.redis.burrLoadBuffer(this.keys.steps(key.partitionKey, key.appId), this.keys.pruned(key.partitionKey), "step", this.keys.rowPrefix(key.partitionKey), String(key.sequenceId));
        case "app-latest":
          return this.redis.burrLoadBuffer(this.keys.steps(key.partitionKey, key.appId), this.keys.pruned(key.partitionKey), "app", this.keys.rowPrefix(key.partitionKey));
        case "partition-latest":
          return this.redis.burrLoadBuffer(this.keys.apps(key.partitionKey), this.keys.pruned(key.partitionKey), "partition", this.keys.rowPrefix(key.partitionKey));
      }
    });
    if (!fields) return null;
    const [partitionKey, appId, sequenceId, position, status, createdAt, state] = fields;
    if (!state) throw new Error(`redis row of ${JSON.stringify(key)} is incomplete: the indexes point at a missing row`);
    return {
      partitionKey: partitionKey!.toString("utf8"),
      appId: appId!.toString("utf8"),
      sequenceId: Number(sequenceId!.toString()),
      position: position!.toString("utf8"),
      status: status!.toString() as Status,
      createdAt: new Date(Number(createdAt!.toString())),
      state: new Uint8Array(state.buffer, state.byteOffset, state.byteLength),
    };
  }

  /** Keyset pages by last-write score: an app re-written meanwhile moves above the cursor, so none repeats. */
  async *appIdPages(partitionKey: string, pageSize: number): AsyncIterable<string[]> {
    const apps = this.keys.apps(partitionKey);
    let below = "+inf";
    for (;;) {
      const page = await this.call(() => this.redis.zrevrangebyscore(apps, below, "-inf", "WITHSCORES", "LIMIT", 0, pageSize));
      const ids = page.filter((_, i) => i % 2 === 0);
      if (ids.length > 0) yield ids;
      if (ids.length < pageSize) return;
      below = `(${page[page.length - 1]}`;
    }
  }

  /**
   * Keyset pages: each page is one script that starts right after the last step of the page
   * before (its sequence id and write number), so steps saved or deleted meanwhile never shift
   * a page, and each page reads only its own rows.
   */
  async *stepPages(key: StepsKey, pageSize: number): AsyncIterable<StoredRow[]> {
    const steps = this.keys.steps(key.partitionKey, key.appId);
    let left = key.limit ?? Number.POSITIVE_INFINITY;
    let after: { sequence: string; write: string } | null = null;
    while (left > 0) {
      const count = Math.min(pageSize, left);
      const [more, ...fields] = await this.call(() =>
        this.redis.burrStepsBuffer(
          steps,
          this.keys.rowPrefix(key.partitionKey),
          String(count),
          key.beforeSequenceId === null ? "" : String(key.beforeSequenceId),
          after?.sequence ?? "",
          after?.write ?? "",
          key.includeState ? "1" : "0",
          String(stepPageBytes),
        ),
      );
      const rows: StoredRow[] = [];
      for (let at = 0; at < fields.length; at += stepFields) {
        const [write, partitionKey, appId, sequenceId, position, status, createdAt, state] = fields.slice(at, at + stepFields);
        if (!partitionKey || !sequenceId || !position || !status || !createdAt || !state) {
          throw new Error(`redis row ${String(write)} of ${JSON.stringify([key.partitionKey, key.appId])} is incomplete: the steps set names a missing row`);
        }
        rows.push({
          partitionKey: partitionKey.toString("utf8"),
          appId: appId!.toString("utf8"),
          sequenceId: Number(sequenceId.toString()),
          position: position.toString("utf8"),
          status: status.toString() as Status,
          createdAt: new Date(Number(createdAt.toString())),
          state: new Uint8Array(state.buffer, state.byteOffset, state.byteLength),
        });
        after = { sequence: sequenceId.toString(), write: write!.toString() };
      }
      if (rows.length > 0) yield rows;
      left -= rows.length;
      if (more !== 1 || rows.length === 0) return;
    }
  }

  /** Runs delete batches (one script each) until the script says the app or partition is gone. */
  private async deleteInBatches(partitionKey: string, batchSize: number, app: string | null): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    let stepsDeleted = 0;
    let appsDeleted = 0;
    for (;;) {
      const [steps, apps, done] = await this.call(() =>
        this.redis.burrDelete(
          this.keys.apps(partitionKey),
          this.keys.pruned(partitionKey),
          this.keys.clustered ? this.keys.counter(partitionKey) : this.keys.partitions,
          this.keys.rowPrefix(partitionKey),
          this.keys.stepsPrefix,
          this.keys.uniquenessPrefix,
          this.keys.part(partitionKey),
          partitionKey,
          String(batchSize),
          app === null ? "partition" : "app",
          app ?? "",
          this.keys.clustered ? "counter" : "set",
        ),
      );
      stepsDeleted += steps;
      appsDeleted += apps;
      if (done === 1) return { stepsDeleted, appsDeleted };
    }
  }

  async deleteApp(partitionKey: string, appId: string, batchSize: number): Promise<number> {
    return (await this.deleteInBatches(partitionKey, batchSize, appId)).stepsDeleted;
  }

  deletePartition(partitionKey: string, batchSize: number): Promise<{ stepsDeleted: number; appsDeleted: number }> {
    return this.deleteInBatches(partitionKey, batchSize, null);
  }

  async prune(rule: PruneRule, batchSize: number): Promise<number> {
    const keep = String(Math.max(rule.keepLast ?? 1, 1));
    const cut = rule.olderThan === null ? "" : String(rule.olderThan.getTime());
    let deleted = 0;
    for await (const partitionKey of this.partitionsOf(rule)) {
      for await (const appId of rule.appId !== null ? [rule.appId] : this.appsOf(partitionKey)) {
        let skip = 0;
        for (;;) {
          const [removed, kept, done] = await this.call(() =>
            this.redis.burrPrune(
              this.keys.steps(partitionKey, appId),
              this.keys.uniqueness(partitionKey, appId),
              this.keys.apps(partitionKey),
              this.keys.pruned(partitionKey),
              this.keys.rowPrefix(partitionKey),
              appId,
              keep,
              cut,
              String(skip),
              String(batchSize),
            ),
          );
          deleted += removed;
          skip += kept;
          if (done === 1) break;
        }
      }
    }
    return deleted;
  }

  /**
   * The partitions a prune covers: one, or every one in the partitions set (indexed first if the
   * namespace predates it); in a cluster, every one whose apps set a master holds (SCAN of each).
   */
  private async *partitionsOf(rule: PruneRule): AsyncIterable<string> {
    if (rule.partitionKey !== null) {
      yield rule.partitionKey;
      return;
    }
    if (this.redis instanceof Cluster) {
      // A master failing over meanwhile fails the scan (UNAVAILABLE) rather than skip its partitions.
      for (const master of this.redis.nodes("master")) {
        for await (const partitions of this.scanPartitions(master)) yield* partitions.map((partition) => partition.toString("utf8"));
      }
      return;
    }
    if ((await this.call(() => this.redis.hexists(this.keys.meta, "partitions"))) !== 1) await this.indexPartitions();
    // SSCAN may return a member twice; pruning a partition twice deletes nothing more.
    let cursor = "0";
    do {
      const [next, batch] = await this.call(() => this.redis.sscan(this.keys.partitions, cursor, "COUNT", 1000));
      cursor = next;
      yield* batch;
    } while (cursor !== "0");
  }

  /** The partition's app ids, by ZSCAN: a page at a time, whatever saves do meanwhile. */
  private async *appsOf(partitionKey: string): AsyncIterable<string> {
    let cursor = "0";
    do {
      const [next, batch] = await this.call(() => this.redis.zscan(this.keys.apps(partitionKey), cursor, "COUNT", 1000));
      cursor = next;
      for (let i = 0; i < batch.length; i += 2) yield batch[i]!;
    } while (cursor !== "0");
  }

  /** PING: fails at once while disconnected (no offline queue), naming the connection's own error. */
  async probe(): Promise<void> {
    await this.call(() => this.redis.ping());
  }

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      // Not connected: nothing to say goodbye to; stop reconnecting.
      this.redis.disconnect();
    }
  }
}

/** ioredis options shared by a single connection and each connection of a cluster. */
const connectionOptions = {
  connectTimeout: connectTimeoutMs,
  commandTimeout: commandTimeoutMs,
  // Never resend a command after a reconnect: a save whose reply was lost may have landed.
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  // How long a closing socket may linger; ioredis keeps this timer even for a socket that is
  // already gone, and the default (2 s) holds a process that failed to connect open that long.
  disconnectTimeout: 500,
};

/** Options of the client as a whole (one connection, or the cluster). */
const clientOptions = {
  lazyConnect: true,
  // Fail at once while disconnected instead of queueing.
  enableOfflineQueue: false,
  // Commands issued in one turn of the event loop (the calls of one pipelined read) go out in one write.
  enableAutoPipelining: true,
  // An automatic pipeline waits for the one before it: the health probe's PING (which may wait
  // for its timeout on a hung Redis) goes on its own, never holding calls behind it.
  autoPipeliningIgnoredCommands: ["ping"],
};

const reconnectDelay = (attempt: number) => Math.min(100 * attempt, maxReconnectDelayMs);

function clusterClient({ cluster }: ClusterRedisOptions): Cluster {
  return new Cluster(cluster.nodes, {
    ...clientOptions,
    clusterRetryStrategy: reconnectDelay,
    // ioredis would send a command again once its node's connection closed (a failover), or
    // after CLUSTERDOWN; a save may have landed before either, so both fail UNAVAILABLE instead.
    // MOVED, ASK and TRYAGAIN (the command did not run) are still followed.
    retryDelayOnFailover: 0,
    retryDelayOnClusterDown: 0,
    slotsRefreshTimeout: connectTimeoutMs,
    redisOptions: {
      ...connectionOptions,
      username: cluster.username,
      password: cluster.password,
      tls: cluster.tls ? {} : undefined,
    },
  });
}

export async function openRedis(url: string): Promise<Backend> {
  const options = parseRedisUrl(url);
  const redis = (
    options.cluster
      ? clusterClient(options)
      : new Redis(options.connectUrl, { ...clientOptions, ...connectionOptions, retryStrategy: reconnectDelay })
  ) as ScriptedRedis;
  // The partitions set is a key on one Redis only. A fixed count (not one passed per call) also
  // lets ioredis route a cluster's automatic pipelines by the first key.
  redis.defineCommand("burrSave", { numberOfKeys: options.cluster ? 5 : 6, lua: saveScript });
  redis.defineCommand("burrLoad", { numberOfKeys: 2, lua: loadScript });
  redis.defineCommand("burrInit", { numberOfKeys: 1, lua: initScript });
  redis.defineCommand("burrDelete", { numberOfKeys: 3, lua: deleteScript });
  redis.defineCommand("burrPrune", { numberOfKeys: 4, lua: pruneScript });
  redis.defineCommand("burrSteps", { numberOfKeys: 1, lua: stepsScript });
  const backend = new RedisBackend(redis, options);
  await backend.connect();
  return backend;
}
