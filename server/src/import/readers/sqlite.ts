/** SQLitePersister's table: state as the JSON text Burr wrote, created_at as CURRENT_TIMESTAMP (seconds, UTC). */
import Database from "better-sqlite3";
import { parseBurrTime } from "../burr-time";
import { describeStep, partitionOf, sequenceIdOf, utf8, type BurrReader, type BurrStep } from "./step";

interface Row {
  partition_key: string | null;
  app_id: string;
  sequence_id: number | bigint;
  position: string;
  status: string;
  state: string | Buffer;
  created_at: string | null;
}

export function openSqliteReader(path: string, table: string, partition: string | null): BurrReader {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  const where = partition === null ? "" : "WHERE partition_key = ?";
  const args = partition === null ? [] : [partition];
  return {
    count: async () => (db.prepare(`SELECT count(*) AS n FROM ${table} ${where}`).get(...args) as { n: number }).n,
    async *steps(): AsyncIterable<BurrStep> {
      // created_at has whole seconds: rowid keeps Burr's insert order within one.
      const rows = db.prepare(`SELECT partition_key, app_id, sequence_id, position, status, state, created_at FROM ${table} ${where} ORDER BY created_at, rowid`);
      for (const row of rows.iterate(...args) as IterableIterator<Row>) {
        const at = describeStep(row.partition_key, row.app_id, row.sequence_id);
        yield {
          partitionKey: partitionOf(row.partition_key),
          appId: row.app_id,
          sequenceId: sequenceIdOf(row.sequence_id, at),
          position: row.position,
          // Verbatim: Burr wrote json.dumps of the serialized state, as the Python persister does.
          state: typeof row.state === "string" ? utf8(row.state) : new Uint8Array(row.state),
          status: row.status,
          createdAt: parseBurrTime(row.created_at),
        };
      }
    },
    close: async () => void db.close(),
  };
}
