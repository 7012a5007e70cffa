/**
 * The backends a bench run can measure, selected by name. Each gets namespaces of its own (a
 * temporary directory, a PostgreSQL schema, a Redis key prefix, a MongoDB database) for the
 * server's store and for the database ceiling, and drops them at the end.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { Redis } from "ioredis";
import { MongoClient } from "mongodb";
import { Client } from "pg";
import type { BackendName, CeilingSpec } from "./ceilings";

export const backendNames: readonly BackendName[] = ["sqlite", "postgres", "redis", "mongo"];

/** The loopback databases of .ci/services.sh (source .ci/services.env to override). */
export const databaseUrls = {
  postgres: process.env.BURR_TEST_POSTGRES_URL ?? "postgres://burr:burr@127.0.0.1:55432/burr",
  redis: process.env.BURR_TEST_REDIS_URL ?? "redis://127.0.0.1:56379",
  mongo: process.env.BURR_TEST_MONGO_URL ?? "mongodb://127.0.0.1:57017/burr",
};

export interface BenchBackend {
  name: BackendName;
  /** The server's --store. */
  storeUrl: string;
  ceiling: CeilingSpec;
  /** Removes everything the run stored. */
  drop(): Promise<void>;
}

export interface BackendSettings {
  /** SQLite's synchronous setting, for the store and its ceiling alike. */
  sqliteSynchronous: "full" | "normal";
  /** Connections of the PostgreSQL ceiling's pool (the store's default pool is 10 too). */
  postgresPool: number;
}

const withDatabase = (url: string, database: string) => {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
};

/** Drops PostgreSQL schemas of a run (and everything in them). */
export async function dropPostgresSchemas(...schemas: string[]): Promise<void> {
  const client = new Client({ connectionString: databaseUrls.postgres, connectionTimeoutMillis: 5000 });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}

/** Deletes the Redis keys under these prefixes (`<prefix>:*`). */
export async function dropRedisPrefixes(...prefixes: string[]): Promise<void> {
  const redis = new Redis(databaseUrls.redis, { connectTimeout: 5000, maxRetriesPerRequest: 1 });
  try {
    for (const prefix of prefixes) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scanBuffer(cursor, "MATCH", `${prefix}:*`, "COUNT", 1000);
        cursor = next.toString();
        if (keys.length > 0) await redis.unlink(...keys);
      } while (cursor !== "0");
    }
  } finally {
    redis.disconnect();
  }
}

export const withParams = (url: string, params: Record<string, string>) => {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return parsed.toString();
};

export function benchBackend(name: BackendName, runId: string, settings: BackendSettings): BenchBackend {
  const namespace = `bench_${runId}`;
  switch (name) {
    case "sqlite": {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-bench-"));
      const query = `?synchronous=${settings.sqliteSynchronous}`;
      return {
        name,
        storeUrl: `sqlite:${path.join(dir, "store.db")}${query}`,
        ceiling: { backend: name, url: `sqlite:${path.join(dir, "ceiling.db")}${query}` },
        drop: async () => fs.rmSync(dir, { recursive: true, force: true }),
      };
    }
    case "postgres":
      return {
        name,
        storeUrl: withParams(databaseUrls.postgres, { schema: namespace }),
        ceiling: { backend: name, url: withParams(databaseUrls.postgres, { schema: namespace, pool: String(settings.postgresPool) }) },
        drop: () => dropPostgresSchemas(namespace),
      };
    case "redis": {
      const storePrefix = namespace.replaceAll("_", "-");
      const ceilingPrefix = `${storePrefix}-ceiling`;
      return {
        name,
        storeUrl: withParams(databaseUrls.redis, { prefix: storePrefix }),
        ceiling: { backend: name, url: withParams(databaseUrls.redis, { prefix: ceilingPrefix }) },
        drop: () => dropRedisPrefixes(storePrefix, ceilingPrefix),
      };
    }
    case "mongo": {
      const storeDatabase = namespace;
      const ceilingDatabase = `${namespace}_ceiling`;
      return {
        name,
        storeUrl: withDatabase(databaseUrls.mongo, storeDatabase),
        ceiling: { backend: name, url: withDatabase(databaseUrls.mongo, ceilingDatabase) },
        drop: async () => {
          const client = new MongoClient(databaseUrls.mongo, { serverSelectionTimeoutMS: 5000 });
          try {
            for (const database of [storeDatabase, ceilingDatabase]) await client.db(database).dropDatabase();
          } finally {
            await client.close();
          }
        },
      };
    }
  }
}
