import { sqliteStore } from "../support/stores";
import { inProcess, viaAsyncClient, viaSyncClient } from "../support/subjects";
import { conformanceSuite } from "./suite";

conformanceSuite("sqlite in-process", async () => inProcess(sqliteStore()));
conformanceSuite("sqlite through the server, async client", async () => viaAsyncClient(sqliteStore()));
conformanceSuite("sqlite through the server, sync client", async () => viaSyncClient(sqliteStore()));
