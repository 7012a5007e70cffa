/**
 * A store made by version 1 (statuses limited to "completed" and "failed" by a CHECK) is brought
 * up to date when opened: its rows, write order and listing are kept, and any status saves. One
 * made by version 2 gets the index History reads.
 */
import Database from "better-sqlite3";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GuardedPersister } from "../guard";
import { openSqlite } from "./index";

/** Version 1's schema, verbatim. */
const version1 = (t: string) => `
  CREATE TABLE ${t} (
    write_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key TEXT NOT NULL, app_id TEXT NOT NULL, sequence_id INTEGER NOT NULL, position TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('completed', 'failed')),
    state BLOB NOT NULL, created_at INTEGER NOT NULL);
  CREATE UNIQUE INDEX ${t}_key ON ${t} (partition_key, app_id, sequence_id, position);
  CREATE INDEX ${t}_app_step ON ${t} (partition_key, app_id, sequence_id);
  CREATE INDEX ${t}_partition_recent ON ${t} (partition_key);
  CREATE TABLE ${t}_apps (partition_key TEXT NOT NULL, app_id TEXT NOT NULL, last_write INTEGER NOT NULL, PRIMARY KEY (partition_key, app_id)) WITHOUT ROWID;
  CREATE INDEX ${t}_apps_recent ON ${t}_apps (partition_key, last_write);`;

test("a version 1 file: old rows kept, custom statuses accepted, write order continues", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-upgrade-"));
  const file = path.join(dir, "v1.db");
  const old = new Database(file);
  old.exec(version1("burr_state"));
  const insert = old.prepare("INSERT INTO burr_state (partition_key, app_id, sequence_id, position, status, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const touch = old.prepare("INSERT OR REPLACE INTO burr_state_apps VALUES (?, ?, ?)");
  for (const [app, seq, status] of [["a", 0, "completed"], ["b", 0, "completed"], ["a", 1, "failed"]] as const) {
    const { lastInsertRowid } = insert.run("p", app, seq, "act", status, Buffer.from(`${app}${seq}`), Date.now());
    touch.run("p", app, lastInsertRowid);
  }
  expect(() => insert.run("p", "c", 0, "act", "in_progress", Buffer.from("x"), Date.now())).toThrow(/CHECK/);
  old.close();

  const persister = new GuardedPersister(await openSqlite(`sqlite:${file}`));
  try {
    expect(await persister.isInitialized()).toBe(true);
    expect((await persister.load({ partitionKey: "p", appId: "a" }))?.status).toBe("failed");
    await persister.save({ partitionKey: "p", appId: "b", sequenceId: 1, position: "act", state: new Uint8Array([1]), status: "in_progress" });
    expect((await persister.load({ partitionKey: "p" }))?.status).toBe("in_progress");
    expect(await persister.listAppIds("p")).toEqual(["b", "a"]);
    await persister.initialize();
    expect(Buffer.from((await persister.load({ partitionKey: "p", appId: "a", sequenceId: 0 }))!.state).toString()).toBe("a0");
  } finally {
    await persister.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

/** Version 2's schema (before History), verbatim. */
const version2 = (t: string) => `
  CREATE TABLE ${t} (
    write_seq INTEGER PRIMARY KEY AUTOINCREMENT,
    partition_key TEXT NOT NULL, app_id TEXT NOT NULL, sequence_id INTEGER NOT NULL, position TEXT NOT NULL,
    status TEXT NOT NULL, state BLOB NOT NULL, created_at INTEGER NOT NULL);
  CREATE UNIQUE INDEX ${t}_key ON ${t} (partition_key, app_id, sequence_id, position);
  CREATE INDEX ${t}_app_step ON ${t} (partition_key, app_id, sequence_id);
  CREATE INDEX ${t}_partition_recent ON ${t} (partition_key);
  CREATE TABLE ${t}_apps (partition_key TEXT NOT NULL, app_id TEXT NOT NULL, last_write INTEGER NOT NULL, PRIMARY KEY (partition_key, app_id)) WITHOUT ROWID;
  CREATE INDEX ${t}_apps_recent ON ${t}_apps (partition_key, last_write);`;

test("a version 2 file gets <table>_steps (and loses <table>_app_step, which it extends) when opened: history reads it", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-upgrade-"));
  const file = path.join(dir, "v2.db");
  const old = new Database(file);
  old.exec(version2("burr_state"));
  const insert = old.prepare("INSERT INTO burr_state (partition_key, app_id, sequence_id, position, status, state, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)");
  const touch = old.prepare("INSERT OR REPLACE INTO burr_state_apps VALUES (?, ?, ?)");
  for (let seq = 0; seq < 5; seq++) touch.run("p", "a", insert.run("p", "a", seq, "act", "completed", Buffer.from(`a${seq}`), Date.now()).lastInsertRowid);
  old.close();

  const persister = new GuardedPersister(await openSqlite(`sqlite:${file}`));
  try {
    const indexes = new Database(file, { readonly: true });
    const names = indexes.prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'burr_state' ORDER BY name").pluck().all();
    indexes.close();
    expect(names).toEqual(expect.arrayContaining(["burr_state_steps", "burr_state_key", "burr_state_partition_recent"]));
    expect(names).not.toContain("burr_state_app_step");
    const steps: number[] = [];
    for await (const step of persister.listSteps({ partitionKey: "p", appId: "a", limit: 3 })) steps.push(step.sequenceId);
    expect(steps).toEqual([4, 3, 2]);
    expect(await persister.prune({ partitionKey: "p", keepLast: 2 })).toBe(3);
    expect(await persister.deleteApp("p", "a")).toBe(2);
    expect(await persister.listAppIds("p")).toEqual([]);
    await persister.initialize(); // idempotent on an upgraded file
  } finally {
    await persister.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
