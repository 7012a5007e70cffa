import { postgresStore } from "../support/postgres-store";
import { inProcess, viaAsyncClient, viaSyncClient } from "../support/subjects";
import { conformanceSuite } from "./suite";

conformanceSuite("postgres in-process", async () => inProcess(postgresStore()));
conformanceSuite("postgres through the server, async client", async () => viaAsyncClient(postgresStore()));
conformanceSuite("postgres through the server, sync client", async () => viaSyncClient(postgresStore()));
