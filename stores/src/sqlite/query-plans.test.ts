/**
 * Every read the SQLite store runs is served by an index, with no full scan and no sort, so
 * load-latest, load-by-step, latest-in-partition and listing stay fast at millions of rows.
 * The plans are SQLite's own, for the store's own statements.
 */
import { SqliteSyncBackend, sqliteQueries } from "./index";

const backend = new SqliteSyncBackend({ path: ":memory:", table: "burr_state" });
backend.initialize();
afterAll(() => backend.close());

const sql = sqliteQueries("burr_state");
const reads: Array<[string, string, unknown[]]> = [
  ["load by step", sql.step, ["p", "a", 1]],
  ["load latest of an app", sql.appLatest, ["p", "a"]],
  ["load latest in a partition", sql.partitionLatest, ["p"]],
  ["first page of app ids", sql.firstApps, ["p", 1000]],
  ["next page of app ids", sql.nextApps, ["p", 5, 1000]],
];

test.each(reads)("%s searches an index, never scans or sorts", (_name, query, params) => {
  const details = (backend.db.prepare(`EXPLAIN QUERY PLAN ${query}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail);
  expect(details.join(" | ")).toMatch(/^SEARCH burr_state(_apps)? USING (COVERING )?INDEX/);
  for (const detail of details) {
    expect(detail).not.toMatch(/^SCAN/);
    expect(detail).not.toMatch(/TEMP B-TREE/);
  }
});

test("the apps upsert finds its row by primary key", () => {
  const details = (backend.db.prepare(`EXPLAIN QUERY PLAN ${sql.touchApp}`).all("p", "a", 1) as Array<{ detail: string }>).map((r) => r.detail);
  for (const detail of details) expect(detail).not.toMatch(/^SCAN/);
});
