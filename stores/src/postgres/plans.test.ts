/**
 * Every query the PostgreSQL store runs is answered from an index, never by scanning the table:
 * EXPLAIN of the store's own statements over a table with a large partition and many small ones,
 * both as the planner first sees them and as the generic plans prepared statements settle on.
 */
import type { Client } from "pg";
import { openPostgres, postgresStatements } from "./index";
import { connectAdmin, dropTables, postgresUrl, uniqueTableName, withParams } from "./testing";

const table = uniqueTableName("plans");
const sql = postgresStatements("public", table);
let admin: Client;

beforeAll(async () => {
  const backend = await openPostgres(withParams(postgresUrl, { table }));
  try {
    await backend.initialize();
  } finally {
    await backend.close();
  }
  admin = await connectAdmin();
  // "big": 2,000 apps of 10 steps each; 500 small partitions of 4 apps of 5 steps.
  await admin.query(`INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, state, status)
    SELECT 'big', 'app' || (g % 2000), g / 2000, 'act', '\\x7b7d'::bytea, 'completed' FROM generate_series(0, 19999) g`);
  await admin.query(`INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, state, status)
    SELECT 'small' || (g % 500), 'app' || (g / 500 % 4), g / 2000, 'act', '\\x7b7d'::bytea, 'completed' FROM generate_series(0, 9999) g`);
  // A long history in "big" for the history statements: "long", 20,000 steps.
  await admin.query(`INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, state, status)
    SELECT 'big', 'long', g, 'act', '\\x7b7d'::bytea, 'completed' FROM generate_series(0, 19999) g`);
  await admin.query(`INSERT INTO "${table}_apps" SELECT partition_key, app_id, max(write_seq) FROM "${table}" GROUP BY 1, 2`);
  await admin.query(`ANALYZE "${table}"; ANALYZE "${table}_apps"`);
});

afterAll(async () => {
  await admin?.end();
  await dropTables([table]);
});

interface PlannedQuery {
  label: string;
  text: string;
  types: string[];
  values: (partition: string) => unknown[];
  index: string;
  /** Other indexes a small partition may be read with (a few rows: the planner may prefer another index and a sort). */
  orInSmall?: string[];
}

const queries: PlannedQuery[] = [
  { label: "load by step", text: sql.step.text, types: ["text", "text", "bigint"], values: (p) => [p, "app3", 3], index: `${table}_by_app` },
  { label: "app latest", text: sql.appLatest.text, types: ["text", "text"], values: (p) => [p, "app3"], index: `${table}_by_app` },
  { label: "partition latest", text: sql.partitionLatest.text, types: ["text"], values: (p) => [p], index: `${table}_by_write` },
  { label: "load by step, batched", text: sql.steps.text, types: ["text[]", "text[]", "bigint[]"], values: (p) => [[p, p], ["app3", "app4"], [3, 1]], index: `${table}_by_app` },
  { label: "app latest, batched", text: sql.appLatests.text, types: ["text[]", "text[]"], values: (p) => [[p, p], ["app3", "app4"]], index: `${table}_by_app` },
  { label: "partition latest, batched", text: sql.partitionLatests.text, types: ["text[]"], values: (p) => [[p, "small1"]], index: `${table}_by_write` },
  { label: "first page of app ids", text: sql.firstApps.text, types: ["text", "bigint"], values: (p) => [p, 1000], index: `${table}_apps_by_write` },
  { label: "next page of app ids", text: sql.nextApps.text, types: ["text", "bigint", "bigint"], values: (p) => [p, 15000, 1000], index: `${table}_apps_by_write` },
  // History (issue 13): ListSteps pages, the deletes' batches and the apps they forget, Prune's pages, cutoffs and batches.
  { label: "first page of steps", text: sql.stepsFirst.text, types: ["text", "text", "bigint"], values: (p) => [p, "long", 1000], index: `${table}_by_app` },
  { label: "next page of steps", text: sql.stepsNext.text, types: ["text", "text", "bigint", "bigint", "bigint"], values: (p) => [p, "long", 15000, 0, 1000], index: `${table}_by_app` },
  { label: "first page of steps with states", text: sql.stepsFirstWithState.text, types: ["text", "text", "bigint"], values: (p) => [p, "long", 1000], index: `${table}_by_app` },
  { label: "next page of steps with states", text: sql.stepsNextWithState.text, types: ["text", "text", "bigint", "bigint", "bigint"], values: (p) => [p, "long", 15000, 0, 1000], index: `${table}_by_app` },
  { label: "a delete's bound", text: sql.partitionBound.text, types: ["text"], values: (p) => [p], index: `${table}_by_write` },
  {
    label: "a batch of DeleteApp",
    text: sql.deleteAppRows.text,
    types: ["text", "text", "bigint", "bigint", "bigint", "bigint", "boolean"],
    values: (p) => [p, "long", 5000, 0, 1_000_000, 1000, false],
    index: `${table}_by_app`,
  },
  { label: "a batch of DeletePartition: its steps", text: sql.partitionRows.text, types: ["text", "bigint", "bigint", "bigint"], values: (p) => [p, 0, 100000, 1000], index: `${table}_by_write` },
  {
    label: "a batch of DeletePartition: locking its apps",
    text: sql.lockAppsOf.text,
    types: ["text", "text[]"],
    values: (p) => [p, ["app3", "app4", "long"]],
    index: `${table}_apps_pkey`,
  },
  // By ctid: a TID scan, with no index (the rows were found through _by_write); write_seq checked on each.
  { label: "a batch of DeletePartition: deleting its steps", text: sql.deleteRows.text, types: ["tid[]", "bigint[]"], values: () => ['{"(0,1)","(0,2)"}', [1, 2]], index: "" },
  { label: "locking an app's row", text: sql.lockApp.text, types: ["text", "text"], values: (p) => [p, "app3"], index: `${table}_apps_pkey` },
  { label: "locking a page of apps", text: sql.lockApps.text, types: ["text", "text", "bigint"], values: (p) => [p, "", 1000], index: `${table}_apps_pkey`, orInSmall: [`${table}_apps_by_write`] },
  // The locked rows by ctid (a TID scan), each app's steps looked for through _by_app.
  { label: "forgetting apps with no step left", text: sql.forgetApps.text, types: ["tid[]"], values: () => ['{"(0,1)","(0,2)"}'], index: `${table}_by_app` },
  { label: "Prune's apps of a partition", text: sql.partitionApps.text, types: ["text", "text", "bigint"], values: (p) => [p, "app1", 1000], index: `${table}_apps_pkey`, orInSmall: [`${table}_apps_by_write`] },
  { label: "Prune's apps of every partition", text: sql.anyApps.text, types: ["text", "text", "bigint"], values: (p) => [p, "app1", 1000], index: `${table}_apps_pkey` },
  { label: "Prune's cutoffs", text: sql.pruneCutoffs.text, types: ["text[]", "text[]", "bigint"], values: (p) => [[p, p], ["app3", "app4"], 1], index: `${table}_by_app` },
  {
    label: "a batch of Prune",
    text: sql.pruneRows.text,
    types: ["text[]", "text[]", "bigint[]", "bigint[]", "bigint", "timestamptz"],
    values: (p) => [[p, p], ["app3", "app4"], [9, 9], [100000, 100000], 500, "2030-01-01T00:00:00Z"],
    index: `${table}_by_app`,
  },
];

async function customPlan(query: PlannedQuery, partition: string): Promise<string> {
  const result = await admin.query(`EXPLAIN ${query.text}`, query.values(partition));
  return result.rows.map((row: Record<string, string>) => row["QUERY PLAN"]).join("\n");
}

/** The plan a prepared statement uses once PostgreSQL stops re-planning it per call. */
async function genericPlan(query: PlannedQuery, partition: string): Promise<string> {
  const name = `plan_${Math.random().toString(36).slice(2, 10)}`;
  await admin.query(`PREPARE ${name}(${query.types.join(", ")}) AS ${query.text}`);
  try {
    await admin.query("SET plan_cache_mode = force_generic_plan");
    const literal = (value: unknown): string =>
      Array.isArray(value) ? `ARRAY[${value.map(literal).join(", ")}]` : typeof value === "string" ? `'${value}'` : String(value);
    const literals = query.values(partition).map(literal);
    const result = await admin.query(`EXPLAIN EXECUTE ${name}(${literals.join(", ")})`);
    return result.rows.map((row: Record<string, string>) => row["QUERY PLAN"]).join("\n");
  } finally {
    await admin.query("RESET plan_cache_mode");
    await admin.query(`DEALLOCATE ${name}`);
  }
}

describe.each(["big", "small7"])("partition %s", (partition) => {
  test.each(queries.map((query) => [query.label, query] as const))("%s reads its index", async (_label, query) => {
    for (const plan of [await customPlan(query, partition), await genericPlan(query, partition)]) {
      expect(plan).not.toMatch(/Seq Scan/);
      if (query.index === "") {
        expect(plan).toMatch(new RegExp(`Tid Scan on ${table} `));
        continue;
      }
      expect(plan).toMatch(/Index (Only )?Scan/);
      const indexes = [query.index, ...(partition === "big" ? [] : (query.orInSmall ?? []))];
      expect(plan).toMatch(new RegExp(`(using|on) (${indexes.join("|")}) `));
      // In a large partition the index order answers ORDER BY ... LIMIT with no sort at all.
      if (partition === "big") expect(plan).not.toMatch(/Sort/);
    }
  });
});
