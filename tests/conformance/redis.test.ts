import { redisStore } from "../support/redis-store";
import { inProcess, viaAsyncClient, viaSyncClient } from "../support/subjects";
import { conformanceSuite } from "./suite";

conformanceSuite("redis in-process", async () => inProcess(redisStore()));
conformanceSuite("redis through the server, async client", async () => viaAsyncClient(redisStore()));
conformanceSuite("redis through the server, sync client", async () => viaSyncClient(redisStore()));
