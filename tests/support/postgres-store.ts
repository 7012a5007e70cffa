/** PostgreSQL stores for the suites: a table of its own per suite and per fresh store, dropped afterwards. */
import { Client } from "pg";
import type { StoreUnderTest } from "./subjects";

/** The shared test database (started by `.ci/services.sh up`). */
export const postgresUrl = process.env.BURR_TEST_POSTGRES_URL ?? "postgres://burr:burr@127.0.0.1:55432/burr";

let tableCounter = 0;

/** A table name no other suite or run uses (within checkIdentifier's 48 characters). */
export function uniqueTableName(label: string): string {
  const random = Math.random().toString(36).slice(2, 8);
  return `burr_${label}_${process.pid}_${++tableCounter}_${random}`;
}

/** The URL with the given query parameters set. */
export function withParams(url: string, params: Record<string, string>): string {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return parsed.toString();
}

/** A direct connection for setting up and inspecting tables, bypassing the store. */
export async function connectAdmin(url: string = postgresUrl): Promise<Client> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  return client;
}

/** Drops the states and apps tables of each store table named. */
export async function dropTables(tables: string[], url: string = postgresUrl): Promise<void> {
  if (tables.length === 0) return;
  const client = await connectAdmin(url);
  try {
    const names = tables.flatMap((table) => [`"${table}"`, `"${table}_apps"`]);
    await client.query(`DROP TABLE IF EXISTS ${names.join(", ")}`);
  } finally {
    await client.end();
  }
}

export function postgresStore(baseUrl: string = postgresUrl): StoreUnderTest {
  const tables: string[] = [];
  const urlWithNewTable = (label: string) => {
    const table = uniqueTableName(label);
    tables.push(table);
    return withParams(baseUrl, { table });
  };
  return {
    url: urlWithNewTable("suite"),
    freshUrl: () => urlWithNewTable("fresh"),
    cleanup: () => dropTables(tables, baseUrl),
  };
}
