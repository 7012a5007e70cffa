/**
 * Tables made by version 1 (statuses limited to "completed" and "failed" by a CHECK) are brought
 * up to date by the first save or Initialize: old rows kept, any status saves.
 */
import type { Client } from "pg";
import { GuardedPersister } from "../guard";
import { openPostgres } from "./index";
import { connectAdmin, dropTables, postgresUrl, uniqueTableName, withParams } from "./testing";

const table = uniqueTableName("upgrade");
let admin: Client;

beforeAll(async () => {
  admin = await connectAdmin();
});

afterAll(async () => {
  await admin.end();
  await dropTables([table]);
});

test("a version 1 table: old rows kept, the CHECK dropped, custom statuses accepted", async () => {
  // Version 1's tables, as its Initialize made them.
  await admin.query(`
    CREATE TABLE "${table}" (
      write_seq bigint GENERATED ALWAYS AS IDENTITY,
      partition_key text COLLATE "C" NOT NULL, app_id text COLLATE "C" NOT NULL,
      sequence_id bigint NOT NULL CHECK (sequence_id >= 0), position text COLLATE "C" NOT NULL,
      status text NOT NULL CHECK (status IN ('completed', 'failed')),
      state bytea NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),
      CONSTRAINT "${table}_key" PRIMARY KEY (partition_key, app_id, sequence_id, position));
    CREATE TABLE "${table}_apps" (partition_key text COLLATE "C" NOT NULL, app_id text COLLATE "C" NOT NULL, last_write bigint NOT NULL, PRIMARY KEY (partition_key, app_id));
    INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, status, state) VALUES ('p', 'a', 0, 'act', 'failed', 'a0');
    INSERT INTO "${table}_apps" VALUES ('p', 'a', 1);`);
  await expect(admin.query(`INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, status, state) VALUES ('p', 'a', 1, 'act', 'pending', 'x')`)).rejects.toThrow(/status_check/);

  const persister = new GuardedPersister(await openPostgres(withParams(postgresUrl, { table })));
  try {
    expect(await persister.isInitialized()).toBe(true);
    await persister.save({ partitionKey: "p", appId: "a", sequenceId: 1, position: "act", state: new Uint8Array([1]), status: "in_progress" });
    expect((await persister.load({ partitionKey: "p", appId: "a" }))?.status).toBe("in_progress");
    expect((await persister.load({ partitionKey: "p", appId: "a", sequenceId: 0 }))?.status).toBe("failed");
    const { rows } = await admin.query("SELECT conname FROM pg_constraint WHERE conrelid = $1::regclass AND contype = 'c'", [`"${table}"`]);
    expect(rows.map((r: { conname: string }) => r.conname)).not.toContain(`${table}_status_check`);
    await persister.initialize(); // idempotent on an upgraded table
  } finally {
    await persister.close();
  }
});
