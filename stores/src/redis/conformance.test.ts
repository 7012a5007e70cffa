import { redisStore } from "./testing";
import { inProcess, viaAsyncClient, viaSyncClient } from "../../../tests/support/subjects";
import { conformanceSuite } from "../../../tests/conformance/suite";

conformanceSuite("redis in-process", async () => inProcess(redisStore()));
conformanceSuite("redis through the server, async client", async () => viaAsyncClient(redisStore()));
conformanceSuite("redis through the server, sync client", async () => viaSyncClient(redisStore()));
