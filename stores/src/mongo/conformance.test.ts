import { mongoStore } from "./testing";
import { inProcess, viaAsyncClient, viaSyncClient } from "../../../tests/support/subjects";
import { conformanceSuite } from "../../../tests/conformance/suite";

// The test server is FerretDB, which takes 1.5-4.5 ms per command and scans whole collections
// for queries (docs/mongo.md): the sync client's 10,000 one-at-a-time saves need two to three
// minutes, more while other suites share the machine.
jest.setTimeout(600_000);

conformanceSuite("mongo in-process", async () => inProcess(mongoStore()));
conformanceSuite("mongo through the server, async client", async () => viaAsyncClient(mongoStore()));
conformanceSuite("mongo through the server, sync client", async () => viaSyncClient(mongoStore()));
