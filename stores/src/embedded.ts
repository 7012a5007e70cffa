/**
 * In-process persisters: the server's own backends behind the same interfaces, for a
 * TypeScript app that needs no server. The same rules apply (guard.ts).
 */
import { jsonCodec, withCodec, withCodecSync, type JsonValue, type StateCodec } from "@burr-state/client/protocol";
import { GuardedPersister, GuardedSyncPersister, type GuardOptions } from "./guard";
import type { AsyncStatePersister, SyncStatePersister } from "@burr-state/client/protocol";
import { openBackend } from "./registry";

export interface EmbeddedOptions<S> extends GuardOptions {
  codec?: StateCodec<S>;
}

/** Any backend by URL (sqlite:PATH, and the others the server supports), async. */
export async function openPersister<S = JsonValue>(url: string, options: EmbeddedOptions<S> = {}): Promise<AsyncStatePersister<S>> {
  const persister = new GuardedPersister(await openBackend(url), options);
  return withCodec(persister, options.codec ?? (jsonCodecFor<S>()));
}

/** The SQLite backend, blocking: `sqlite:./state.db` or `sqlite::memory:`. */
export function openSyncSqlitePersister<S = JsonValue>(url: string, options: EmbeddedOptions<S> = {}): SyncStatePersister<S> {
  // Loaded here, not at import: only SQLite users need better-sqlite3.
  const { SqliteSyncBackend, parseSqliteUrl } = require("./sqlite") as typeof import("./sqlite");
  const persister = new GuardedSyncPersister(new SqliteSyncBackend(parseSqliteUrl(url)), options);
  return withCodecSync(persister, options.codec ?? (jsonCodecFor<S>()));
}

const jsonCodecFor = <S>() => jsonCodec as unknown as StateCodec<S>;
