/** The unchanged conformance suite against a real Redis Cluster (three masters, three replicas). */
import { redisClusterUrl, redisStore } from "./testing";
import { inProcess, viaAsyncClient, viaSyncClient } from "../../../tests/support/subjects";
import { conformanceSuite } from "../../../tests/conformance/suite";

conformanceSuite("redis cluster in-process", async () => inProcess(redisStore(redisClusterUrl)));
conformanceSuite("redis cluster through the server, async client", async () => viaAsyncClient(redisStore(redisClusterUrl)));
conformanceSuite("redis cluster through the server, sync client", async () => viaSyncClient(redisStore(redisClusterUrl)));
