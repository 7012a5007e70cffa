import { postgresStore } from "./testing";
import { inProcess, viaAsyncClient, viaSyncClient } from "../../../tests/support/subjects";
import { conformanceSuite } from "../../../tests/conformance/suite";

conformanceSuite("postgres in-process", async () => inProcess(postgresStore()));
conformanceSuite("postgres through the server, async client", async () => viaAsyncClient(postgresStore()));
conformanceSuite("postgres through the server, sync client", async () => viaSyncClient(postgresStore()));
