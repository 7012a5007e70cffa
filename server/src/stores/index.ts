/** Picks the backend module from the --store URL; drivers load only when their scheme is used. */
import type { Backend } from "../../../core/backend";
import { SqliteBackend, SqliteSyncBackend, parseSqliteUrl } from "./sqlite";

export const defaultStoreUrl = "sqlite:./burr_state.db";

export async function openBackend(url: string): Promise<Backend> {
  const scheme = url.slice(0, url.indexOf(":")).toLowerCase();
  switch (scheme) {
    case "sqlite":
      return new SqliteBackend(new SqliteSyncBackend(parseSqliteUrl(url)));
    default:
      throw new Error(`unsupported store URL ${JSON.stringify(redactUrl(url))}: use sqlite:PATH or sqlite::memory:`);
  }
}

/** The URL with any password masked, for logs. */
export function redactUrl(url: string): string {
  return url.replace(/(\/\/[^:/@]*:)[^@/]*@/, "$1***@");
}
