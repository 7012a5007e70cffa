/**
 * MongoDB stores for the suites: collections of their own in the test database (FerretDB on
 * loopback here, started by `.ci/services.sh up`), dropped when the suite is done.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { MongoClient } from "mongodb";
import { parseMongoUrl } from "./";
import type { StoreUnderTest } from "../../../tests/support/subjects";
import { namespacedStore } from "../../../tests/support/namespaced-store";
import { acceptsConnections, startDatabaseProcess, type DatabaseProcess } from "../../../tests/support/database-process";

export { freePort } from "../../../tests/support/database-process";

export const mongoUrl = process.env.BURR_TEST_MONGO_URL ?? "mongodb://127.0.0.1:57017/burr";

/**
 * The URL the suites' stores use on the shared database. FerretDB, the test server here, scans
 * the whole collection for every query (docs/mongo.md): once the conformance suite has stored
 * its 10,000 apps and 24 MiB of big states, a load takes seconds, and every other suite's calls
 * wait behind those scans. So the stores allow more than the 5 s default socket timeout.
 */
export const sharedStoreUrl = /sockettimeoutms=/i.test(mongoUrl) ? mongoUrl : `${mongoUrl}${mongoUrl.includes("?") ? "&" : "?"}socketTimeoutMS=30000`;

let collectionCounter = 0;

/** A collection name no other suite or run uses. */
export function uniqueCollection(label: string): string {
  return `t_${label}_${process.pid}_${++collectionCounter}_${Math.random().toString(36).slice(2, 8)}`;
}

/** The store URL for one collection. */
export function withCollection(url: string, collection: string): string {
  return `${url}${url.includes("?") ? "&" : "?"}collection=${collection}`;
}

/** A plain client, for looking behind the store's back and cleaning up. */
export async function connectAdmin(url: string = mongoUrl): Promise<MongoClient> {
  return new MongoClient(url, { serverSelectionTimeoutMS: 5_000 }).connect();
}

/** Drops each store's collections: the states and their `_apps` and `_meta` companions. */
export async function dropStores(collections: string[], url: string = mongoUrl): Promise<void> {
  const client = await connectAdmin(url);
  try {
    const db = client.db(parseMongoUrl(url).database);
    const existing = new Set((await db.listCollections({}, { nameOnly: true }).toArray()).map((c) => c.name));
    for (const name of collections.flatMap((c) => [c, `${c}_apps`, `${c}_meta`])) {
      if (existing.has(name)) await db.dropCollection(name);
    }
  } finally {
    await client.close();
  }
}

export function mongoStore(baseUrl: string = sharedStoreUrl): StoreUnderTest {
  return {
    ...namespacedStore({
      unique: uniqueCollection,
      urlOf: (collection) => withCollection(baseUrl, collection),
      drop: (collections) => dropStores(collections, baseUrl),
    }),
    // FerretDB answers a find by scanning the collection in Go: with thousands of states and
    // tens of calls in flight, one call can wait well past the default 10 s.
    clientDeadlineMs: 60_000,
    // The bulk delete's steps: FerretDB scans the whole collection for every delete batch (2-6 s
    // each once the suite has stored its 10,000 apps), so 100,000 steps would take the better part
    // of an hour. 5,000 took 45 s to delete in the full suite (10,000 took 60-100 s), well inside
    // the clients' 60 s deadline for the one DeleteApp call.
    bulkSteps: 5_000,
  };
}

/** The FerretDB binary `.ci/services.sh` builds (BURR_FERRETDB_BIN names another). */
export function ferretDbBinary(): string {
  const candidates = [process.env.BURR_FERRETDB_BIN, "/var/tmp/burr-ci/bin/ferretdb", path.join(os.homedir(), "go/bin/ferretdb")];
  const found = candidates.find((candidate) => candidate && fs.existsSync(candidate));
  if (!found) throw new Error(`no ferretdb binary: run .ci/services.sh up, or set BURR_FERRETDB_BIN (looked at ${candidates.filter(Boolean).join(", ")})`);
  return found;
}

/** A FerretDB of the test's own (SQLite files under `dir`), which the test may kill and start again. */
export type PrivateFerretDb = DatabaseProcess;

export async function startPrivateFerretDb(port: number, dir: string): Promise<PrivateFerretDb> {
  for (const sub of ["data", "state"]) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  const args = [
    "--handler=sqlite",
    `--sqlite-url=file:${path.join(dir, "data")}/`,
    `--state-dir=${path.join(dir, "state")}`,
    `--listen-addr=127.0.0.1:${port}`,
    "--debug-addr=-",
    "--telemetry=disable",
    "--log-level=warn",
  ];
  return startDatabaseProcess(ferretDbBinary(), args, {
    port,
    url: `mongodb://127.0.0.1:${port}/burr`,
    answers: () => acceptsConnections(port),
    withinMs: 30_000,
  });
}
