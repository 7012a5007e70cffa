/**
 * Every read the SQLite store runs is served by an index, with no full scan and no sort, so
 * load-latest, load-by-step, latest-in-partition and listing stay fast at millions of rows; so
 * is every statement of ListSteps, DeleteApp, DeletePartition and Prune (keyset pages and
 * batches). The plans are SQLite's own, for the store's own statements.
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

/** History (issue 13): each statement with the index it must search (SQLite's plan details, in order). */
const history: Array<[string, string, unknown[], RegExp]> = [
  ["first page of steps", sql.stepsFirst, ["p", "a", 1000], /^SEARCH burr_state USING INDEX burr_state_steps \(partition_key=\? AND app_id=\?\)$/],
  ["next page of steps", sql.stepsNext, ["p", "a", 5, 9, 1000], /^SEARCH burr_state USING INDEX burr_state_steps \(partition_key=\? AND app_id=\? AND sequence_id<\?\)$/],
  ["first page of steps with states", sql.stepsFirstWithState, ["p", "a", 1000], /^SEARCH burr_state USING INDEX burr_state_steps /],
  ["next page of steps with states", sql.stepsNextWithState, ["p", "a", 5, 9, 1000], /^SEARCH burr_state USING INDEX burr_state_steps /],
  ["a delete's bound", sql.partitionBound, ["p"], /^SEARCH burr_state USING COVERING INDEX burr_state_partition_recent \(partition_key=\?\)$/],
  [
    "a batch of DeleteApp",
    sql.deleteAppRows,
    ["p", "a", -1, 0, 100, 1000],
    /^SEARCH burr_state USING INTEGER PRIMARY KEY \(rowid=\?\) \| LIST SUBQUERY 1 \| SEARCH burr_state USING COVERING INDEX burr_state_steps \(partition_key=\? AND app_id=\? AND sequence_id>\?\)$/,
  ],
  [
    "a batch of DeletePartition",
    sql.deletePartitionRows,
    ["p", 0, 100, 1000],
    /^SEARCH burr_state USING INTEGER PRIMARY KEY \(rowid=\?\) \| LIST SUBQUERY 1 \| SEARCH burr_state USING COVERING INDEX burr_state_partition_recent \(partition_key=\? AND rowid>\? AND rowid<\?\)$/,
  ],
  [
    "forgetting an app with no step left",
    sql.forgetApp,
    ["p", "a", "p", "a"],
    /^SEARCH burr_state_apps USING PRIMARY KEY \(partition_key=\? AND app_id=\?\) \| SCALAR SUBQUERY 1 \| SEARCH burr_state USING COVERING INDEX burr_state_steps \(partition_key=\? AND app_id=\?\)$/,
  ],
  ["the next apps of a partition", sql.partitionApps, ["p", "a", 1000], /^SEARCH burr_state_apps USING PRIMARY KEY \(partition_key=\? AND app_id>\?\)$/],
  ["the next apps of every partition", sql.anyApps, ["p", "a", 1000], /^SEARCH burr_state_apps USING PRIMARY KEY \(\(partition_key,app_id\)>\(\?,\?\)\)$/],
  ["Prune's cutoff", sql.pruneCutoff, ["p", "a", 2], /^SEARCH burr_state USING COVERING INDEX burr_state_steps \(partition_key=\? AND app_id=\?\)$/],
  ["Prune's candidates (created_at from the index)", sql.pruneCandidates, ["p", "a", 5, 9, 1000], /^SEARCH burr_state USING COVERING INDEX burr_state_steps \(partition_key=\? AND app_id=\? AND sequence_id<\?\)$/],
  ["deleting one step", sql.deleteRow, [9], /^SEARCH burr_state USING INTEGER PRIMARY KEY \(rowid=\?\)$/],
];

test.each(history)("%s searches its index in its order, never scans or sorts", (_name, query, params, plan) => {
  const details = (backend.db.prepare(`EXPLAIN QUERY PLAN ${query}`).all(...params) as Array<{ detail: string }>).map((row) => row.detail);
  expect(details.join(" | ")).toMatch(plan);
  for (const detail of details) expect(detail).not.toMatch(/^SCAN|TEMP B-TREE/);
});

test("ListSteps without states reads no column from the state on (created_at comes from the index)", () => {
  const { rootpage } = backend.db.prepare("SELECT rootpage FROM sqlite_master WHERE name = 'burr_state'").get() as { rootpage: number };
  const columns = (backend.db.prepare("SELECT name FROM pragma_table_info('burr_state') ORDER BY cid").pluck().all() as string[]);
  const state = columns.indexOf("state");
  for (const [query, params] of [
    [sql.stepsFirst, ["p", "a", 1000]],
    [sql.stepsNext, ["p", "a", 5, 9, 1000]],
  ] as const) {
    const program = backend.db.prepare(`EXPLAIN ${query}`).all(...params) as Array<{ opcode: string; p1: number; p2: number }>;
    const table = program.find((op) => op.opcode === "OpenRead" && op.p2 === rootpage)!.p1;
    const read = program.filter((op) => op.opcode === "Column" && op.p1 === table).map((op) => columns[op.p2]);
    expect(read.sort()).toEqual(["position", "status"]);
    expect(read.every((name) => columns.indexOf(name!) < state)).toBe(true);
  }
});
