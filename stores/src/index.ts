/**
 * @burr-state/stores: the stores behind the server, usable in-process. Each store's driver is an
 * optional peer dependency: install the one you use (better-sqlite3, pg, ioredis or mongodb).
 */
export { openPersister, openSyncSqlitePersister, type EmbeddedOptions } from "./embedded";
export { openBackend, defaultStoreUrl, storeUrlForms, stores, redactUrl, type StoreEntry } from "./registry";
export { GuardedPersister, GuardedSyncPersister, type GuardOptions } from "./guard";
export type { Backend, SyncBackend, StoredRow, AppIdCursor } from "./backend";
