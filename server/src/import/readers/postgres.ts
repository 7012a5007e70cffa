/**
 * PostgreSQLPersister's table: state as jsonb (so its text is PostgreSQL's, rewritten here to
 * what the Python persister writes for the state Burr loads from it), created_at a timestamp
 * without time zone in the writer's session time zone (read in the server's default one).
 */
import { Client } from "pg";
import { pythonJsonDumps } from "../python-json";
import { describeStep, partitionOf, sequenceIdOf, utf8, type BurrReader, type BurrStep } from "./step";

interface Row {
  partition_key: string | null;
  app_id: string;
  sequence_id: number;
  position: string;
  status: string;
  state: string;
  created_at: Date | null;
}

const pageSize = 500;

export async function openPostgresReader(connectUrl: string, table: string, partition: string | null): Promise<BurrReader> {
  const client = new Client({ connectionString: connectUrl, connectionTimeoutMillis: 10_000 });
  await client.connect();
  const where = partition === null ? "" : "WHERE partition_key = $1";
  const args = partition === null ? [] : [partition];
  return {
    count: async () => Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table} ${where}`, args)).rows[0]!.n),
    async *steps(): AsyncIterable<BurrStep> {
      // One snapshot, read in pages through a cursor. created_at has microseconds; ties (same
      // transaction start) go by the step's key, as Burr's table keeps no insert order.
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      try {
        await client.query(
          `DECLARE burr_steps NO SCROLL CURSOR FOR
             SELECT partition_key, app_id, sequence_id, position, status, state::text AS state, created_at::timestamptz AS created_at
             FROM ${table} ${where}
             ORDER BY created_at NULLS FIRST, partition_key, app_id, sequence_id, position`,
          args,
        );
        for (;;) {
          const { rows } = await client.query<Row>(`FETCH ${pageSize} FROM burr_steps`);
          for (const row of rows) {
            const at = describeStep(row.partition_key, row.app_id, row.sequence_id);
            let state: string;
            try {
              state = pythonJsonDumps(row.state);
            } catch (error) {
              throw new Error(`${at}: ${(error as Error).message}`);
            }
            yield {
              partitionKey: partitionOf(row.partition_key),
              appId: row.app_id,
              sequenceId: sequenceIdOf(row.sequence_id, at),
              position: row.position,
              state: utf8(state),
              status: row.status,
              createdAt: row.created_at,
            };
          }
          if (rows.length < pageSize) break;
        }
      } finally {
        await client.query("ROLLBACK");
      }
    },
    close: () => client.end(),
  };
}
