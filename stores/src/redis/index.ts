/**
 * The Redis store, through ioredis. Every save is one Lua script: it checks the initialized
 * marker and the row's uniqueness, takes the next number from the store-wide write counter and
 * writes the row and all its indexes, so no other client ever sees (or races into) half a save.
 *
 * Key layout under the namespace P (docs/redis.md has the full picture):
 *   P:meta                    hash: schema (the initialized marker), writes (the write counter)
 *   P:row:<write>             hash: one saved row; <write> is its write number, 16 digits
 *   P:keys:<part><app>        hash: "<sequence>:<position>" -> write, the uniqueness index
 *   P:steps:<part><app>       sorted set: write, scored by sequence id
 *   P:apps:<part>             sorted set: app id, scored by the app's last write
 * <part> and <app> are length-prefixed ("<utf8 bytes>:<text>"), so no choice of partition and
 * app id can spell another pair's key. Write numbers are fixed-width, so among members with
 * the same score (sequence id) the lexically greatest is the last written.
 */
import { Redis, ReplyError } from "ioredis";
import type { Backend, StoredRow } from "../backend";
import { Code, duplicate, notInitialized, PersisterError, unavailable } from "@burr-state/client/protocol";
import type { Status } from "@burr-state/client/protocol";
import type { LoadKey, SaveRow } from "@burr-state/client/protocol";

export interface RedisOptions {
  /** The URL ioredis connects to: ours without the parameters this module reads. */
  connectUrl: string;
  /** Namespace of every key; letters, digits, `_`, `-`, `.`. */
  prefix: string;
  /** host:port/db, without credentials, for error messages. */
  where: string;
}

const defaultPrefix = "burr";
const prefixShape = /^[A-Za-z0-9_.-]{1,64}$/;

/** `redis://[user:password@]host:port[/db][?prefix=burr]`, or `rediss://` for TLS. */
export function parseRedisUrl(text: string): RedisOptions {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    // The text may hold a password: not repeated here.
    throw new PersisterError(Code.INVALID_ARGUMENT, "the redis store URL is not a valid URL: expected redis://[user:password@]host:port[/db][?prefix=NAME]");
  }
  const prefix = url.searchParams.get("prefix") ?? defaultPrefix;
  url.searchParams.delete("prefix");
  const unknown = [...url.searchParams.keys()];
  if (unknown.length > 0) {
    throw new PersisterError(Code.INVALID_ARGUMENT, `redis URL parameter ${JSON.stringify(unknown[0])} is not supported (only "prefix" is)`);
  }
  if (!prefixShape.test(prefix)) {
    // No ':' keeps one namespace from nesting inside another; no glob characters keeps SCAN patterns literal.
    throw new PersisterError(Code.INVALID_ARGUMENT, `redis prefix ${JSON.stringify(prefix)} is not allowed: use 1-64 letters, digits, _, - or .`);
  }
  url.search = "";
  return { connectUrl: url.href, prefix, where: `${url.protocol}//${url.host}${url.pathname}` };
}

/** How long connecting, and then each command, may take before the call fails UNAVAILABLE. */
const connectTimeoutMs = 3_000;
const commandTimeoutMs = 3_000;
/** Reconnecting goes on in the background forever, at most this far apart. */
const maxReconnectDelayMs = 1_000;

const schemaVersion = "1";

/**
 * KEYS: meta, uniqueness hash, steps set, apps set.
 * ARGV: row key prefix, uniqueness field, partition, app, sequence id, position, status, state.
 * Sequence ids and write numbers stay strings: Lua numbers print with 14 digits only.
 */
const saveScript = `
if redis.call('HEXISTS', KEYS[1], 'schema') == 0 then return {'uninitialized'} end
if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return {'duplicate'} end
local write = string.format('%016d', redis.call('HINCRBY', KEYS[1], 'writes', 1))
local now = redis.call('TIME')
local created = string.format('%d', tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000))
redis.call('HSET', ARGV[1] .. write, 'partition', ARGV[3], 'app', ARGV[4], 'sequence', ARGV[5],
  'position', ARGV[6], 'status', ARGV[7], 'created', created, 'state', ARGV[8])
redis.call('HSET', KEYS[2], ARGV[2], write)
redis.call('ZADD', KEYS[3], ARGV[5], write)
redis.call('ZADD', KEYS[4], write, ARGV[4])
return {'saved', created}
`;

/**
 * KEYS: the steps set (modes "step", "app") or the apps set (mode "partition").
 * ARGV: mode, row key prefix, sequence id (mode "step").
 */
const loadScript = `
local write
if ARGV[1] == 'step' then
  write = redis.call('ZREVRANGEBYSCORE', KEYS[1], ARGV[3], ARGV[3], 'LIMIT', 0, 1)[1]
elseif ARGV[1] == 'app' then
  write = redis.call('ZREVRANGE', KEYS[1], 0, 0)[1]
else
  local top = redis.call('ZREVRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if top[2] then write = string.format('%016d', tonumber(top[2])) end
end
if not write then return false end
return redis.call('HMGET', ARGV[2] .. write, 'partition', 'app', 'sequence', 'position', 'status', 'created', 'state')
`;

interface ScriptCommands {
  burrSave(...keysThenArgs: Array<string | Buffer>): Promise<[outcome: "saved" | "duplicate" | "uninitialized", createdAt?: string]>;
  burrLoadBuffer(...keysThenArgs: string[]): Promise<Array<Buffer | null> | null>;
}

type ScriptedRedis = Redis & ScriptCommands;

/** "<byte length>:<text>": a component that cannot run into the next one. */
const component = (text: string) => `${Buffer.byteLength(text, "utf8")}:${text}`;

/** Every key the store uses, built in one place. */
function redisKeys(prefix: string) {
  return {
    meta: `${prefix}:meta`,
    rowPrefix: `${prefix}:row:`,
    uniqueness: (partitionKey: string, appId: string) => `${prefix}:keys:${component(partitionKey)}${component(appId)}`,
    steps: (partitionKey: string, appId: string) => `${prefix}:steps:${component(partitionKey)}${component(appId)}`,
    apps: (partitionKey: string) => `${prefix}:apps:${component(partitionKey)}`,
  };
}

/** Replies that mean "not now" (loading, failover, out of memory, a busy script), not a bug. */
const transientReply = /^(LOADING|BUSY|MASTERDOWN|READONLY|OOM|MISCONF|NOREPLICAS|NOAUTH|WRONGPASS)\b/;

export class RedisBackend implements Backend {
  readonly kind = "redis";
  private readonly keys: ReturnType<typeof redisKeys>;
  /** The latest connection failure, to say why calls fail while reconnecting. */
  private connectionError: Error | null = null;

  constructor(
    private readonly redis: ScriptedRedis,
    private readonly options: RedisOptions,
  ) {
    this.keys = redisKeys(options.prefix);
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
      if (error instanceof ReplyError && !transientReply.test((error as Error).message)) throw error;
      throw this.unavailable(error);
    }
  }

  /** While disconnected, the socket's own error ("connect ECONNREFUSED ...") says more than the command's. */
  private unavailable(error: unknown): PersisterError {
    const cause = this.redis.status === "ready" || !this.connectionError ? error : this.connectionError;
    return unavailable(`redis at ${this.options.where}`, cause);
  }

  async initialize(): Promise<void> {
    await this.call(() => this.redis.hsetnx(this.keys.meta, "schema", schemaVersion));
  }

  async isInitialized(): Promise<boolean> {
    return (await this.call(() => this.redis.hexists(this.keys.meta, "schema"))) === 1;
  }

  async save(row: SaveRow): Promise<Date> {
    const { partitionKey, appId, sequenceId, position } = row;
    const sequence = String(sequenceId);
    const [outcome, createdAt] = await this.call(() =>
      this.redis.burrSave(
        this.keys.meta,
        this.keys.uniqueness(partitionKey, appId),
        this.keys.steps(partitionKey, appId),
        this.keys.apps(partitionKey),
        this.keys.rowPrefix,
        // The sequence id has no ':', so the first one ends it.
        `${sequence}:${position}`,
        partitionKey,
        appId,
        sequence,
        position,
        row.status,
        // ioredis sends only Buffers as bytes (a plain Uint8Array would be stringified); this one shares the memory.
        Buffer.from(row.state.buffer, row.state.byteOffset, row.state.byteLength),
      ),
    );
    if (outcome === "duplicate") throw duplicate(row);
    if (outcome === "uninitialized") throw notInitialized();
    return new Date(Number(createdAt));
  }

  async load(key: LoadKey): Promise<StoredRow | null> {
    const fields = await this.call(() => {
      switch (key.kind) {
        case "step":
          return this.redis.burrLoadBuffer(this.keys.steps(key.partitionKey, key.appId), "step", this.keys.rowPrefix, String(key.sequenceId));
        case "app-latest":
          return this.redis.burrLoadBuffer(this.keys.steps(key.partitionKey, key.appId), "app", this.keys.rowPrefix);
        case "partition-latest":
          return this.redis.burrLoadBuffer(this.keys.apps(key.partitionKey), "partition", this.keys.rowPrefix);
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

  async close(): Promise<void> {
    try {
      await this.redis.quit();
    } catch {
      // Not connected: nothing to say goodbye to; stop reconnecting.
      this.redis.disconnect();
    }
  }
}

export async function openRedis(url: string): Promise<Backend> {
  const options = parseRedisUrl(url);
  const redis = new Redis(options.connectUrl, {
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    commandTimeout: commandTimeoutMs,
    // Fail at once while disconnected instead of queueing, and never resend a command after a
    // reconnect: a save whose reply was lost may have landed.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (attempt) => Math.min(100 * attempt, maxReconnectDelayMs),
    // How long a closing socket may linger; ioredis keeps this timer even for a socket that is
    // already gone, and the default (2 s) holds a process that failed to connect open that long.
    disconnectTimeout: 500,
    // Commands issued in one turn of the event loop (the calls of one pipelined read) go out in one write.
    enableAutoPipelining: true,
  }) as ScriptedRedis;
  redis.defineCommand("burrSave", { numberOfKeys: 4, lua: saveScript });
  redis.defineCommand("burrLoad", { numberOfKeys: 1, lua: loadScript });
  const backend = new RedisBackend(redis, options);
  await backend.connect();
  return backend;
}
