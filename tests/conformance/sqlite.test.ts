import { GuardedSyncPersister } from "../../stores/src/guard";
import { defaultLimits } from "../../client/src/validation";
import { SqliteSyncBackend, parseSqliteUrl } from "../../stores/src/sqlite";
import { sqliteStore } from "../support/stores";
import { inProcess, viaAsyncClient, viaSyncClient } from "../support/subjects";
import { syncAsAsync } from "../support/sync-as-async";
import { conformanceSuite } from "./suite";

conformanceSuite("sqlite in-process", async () => inProcess(sqliteStore()));

conformanceSuite("sqlite in-process, synchronous", async () => {
  const store = sqliteStore();
  const openAt = (url: string) => syncAsAsync(new GuardedSyncPersister(new SqliteSyncBackend(parseSqliteUrl(url))));
  return {
    open: async () => openAt(store.url),
    openUninitialized: async () => openAt(store.freshUrl()),
    restart: async () => {},
    maxStateBytes: defaultLimits.maxStateBytes,
    teardown: async () => store.cleanup?.(),
  };
});

conformanceSuite("sqlite through the server, async client", async () => viaAsyncClient(sqliteStore()));
conformanceSuite("sqlite through the server, sync client", async () => viaSyncClient(sqliteStore()));
