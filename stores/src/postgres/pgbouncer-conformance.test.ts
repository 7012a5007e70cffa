/**
 * The unchanged conformance suite through PgBouncer in transaction mode (`pgbouncer=true`):
 * in-process, and through the server with the async client. The sync client reaches the same
 * server code as the async one; conformance.test.ts runs it against PostgreSQL directly.
 */
import { pgbouncerUrl, postgresStore } from "./testing";
import { inProcess, viaAsyncClient } from "../../../tests/support/subjects";
import { conformanceSuite } from "../../../tests/conformance/suite";

const behindPgBouncer = () => postgresStore(pgbouncerUrl, { pgbouncer: "true" });

conformanceSuite("postgres behind PgBouncer, in-process", async () => inProcess(behindPgBouncer()));
conformanceSuite("postgres behind PgBouncer, through the server, async client", async () => viaAsyncClient(behindPgBouncer()));
