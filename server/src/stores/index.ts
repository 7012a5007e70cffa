/** Picks the backend module from the --store URL. */
import type { Backend } from "../../../core/backend";
import { openMongo } from "./mongo";
import { openPostgres } from "./postgres";
import { openRedis } from "./redis";
import { SqliteBackend, SqliteSyncBackend, parseSqliteUrl } from "./sqlite";

export const defaultStoreUrl = "sqlite:./burr_state.db";

export const storeUrlForms = "sqlite:PATH, sqlite::memory:, postgres://..., redis://... (rediss://), mongodb://...";

export async function openBackend(url: string): Promise<Backend> {
  const scheme = url.slice(0, url.indexOf(":")).toLowerCase();
  switch (scheme) {
    case "sqlite":
      return new SqliteBackend(new SqliteSyncBackend(parseSqliteUrl(url)));
    case "postgres":
    case "postgresql":
      return openPostgres(url);
    case "redis":
    case "rediss":
      return openRedis(url);
    case "mongodb":
    case "mongodb+srv":
      return openMongo(url);
    default:
      throw new Error(`unsupported store URL ${JSON.stringify(redactUrl(url))}: use ${storeUrlForms}`);
  }
}

/** The URL with any password masked, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, "$1***@");
}
