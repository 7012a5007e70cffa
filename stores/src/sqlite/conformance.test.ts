import { GuardedSyncPersister } from "../guard";
import { defaultLimits } from "@burr-state/client/protocol";
import { SqliteSyncBackend, parseSqliteUrl } from "./";
import { sqliteStore } from "./testing";
import { inProcess, viaAsyncClient, viaSyncClient } from "../../../tests/support/subjects";
import { syncAsAsync } from "../../../tests/support/sync-as-async";
import { conformanceSuite } from "../../../tests/conformance/suite";

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
