/**
 * The server-side rows' database floor: a Save and a Load done without the server, so that
 * (no-op hop + this) is what a server adding nothing of its own would answer in.
 *
 *   direct     PostgreSQL: pg runs the store's own statements (postgresStatements: the save's
 *              one INSERT ... WITH statement of one row, the app-latest SELECT), as named
 *              prepared statements like the store's, on a pool of the store's size, in the
 *              store's own tables (created by its initialize()).
 *              Redis: the store's scripts are not exported, so the floor is the store module
 *              in-process (its JavaScript around one EVALSHA builds the keys: a few µs).
 *   in-process the store module (openBackend, as the server opens it) called in this process:
 *              the driver, the statements and the store's own code (its batchers), without
 *              gRPC, the server's layers or the guard.
 */
import { Pool } from "pg";
import { openBackend } from "../../stores/src/registry";
import { parsePostgresUrl, postgresStatements } from "../../stores/src/postgres/index";
import type { Backend } from "../../stores/src/backend";
import type { PersistedState, SaveInput, Status } from "../../client/src/persister";
import type { Surface } from "./workload";

export type DirectKind = "direct" | "in-process";

/** The store module in-process as a Surface (Save and Load only). */
async function inProcess(url: string): Promise<Surface> {
  const backend: Backend = await openBackend(url);
  await backend.initialize();
  return {
    save: (input) => backend.save(saveRow(input)),
    load: async (query) => {
      const partitionKey = query.partitionKey ?? "";
      const row = await backend.load(
        !query.appId
          ? { kind: "partition-latest", partitionKey }
          : query.sequenceId === undefined || query.sequenceId === null
            ? { kind: "app-latest", partitionKey, appId: query.appId }
            : { kind: "step", partitionKey, appId: query.appId, sequenceId: query.sequenceId },
      );
      return row && { ...row, createdAt: row.createdAt };
    },
    listAppIds: () => Promise.reject(new Error("not measured")),
    close: () => backend.close(),
  };
}

const saveRow = (input: SaveInput<Uint8Array>) => ({
  partitionKey: input.partitionKey ?? "",
  appId: input.appId,
  sequenceId: input.sequenceId,
  position: input.position,
  state: input.state,
  status: input.status,
});

interface Row {
  partition_key: string;
  app_id: string;
  sequence_id: string;
  position: string;
  state: Buffer;
  status: string;
  created_at: Date;
}

/** pg running the PostgreSQL store's save and app-latest statements, in tables its initialize() created. */
async function postgresDirect(url: string): Promise<Surface> {
  const setup = await openBackend(url);
  await setup.initialize();
  await setup.close();
  const options = parsePostgresUrl(url);
  const sql = postgresStatements(options.schema, options.table);
  const pool = new Pool({ connectionString: options.connectionString, max: options.poolSize });
  pool.on("error", () => {});
  const save = { name: "direct_save_1", text: sql.save(1) };
  // The store passes a creation time after the status when its statement takes one (imported rows; null: the database's clock).
  const parameters = Math.max(...[...save.text.matchAll(/\$(\d+)/g)].map((match) => Number(match[1])));
  const saveValues = (row: ReturnType<typeof saveRow>) => {
    const values: unknown[] = [row.partitionKey, row.appId, row.sequenceId, row.position, row.state, row.status];
    while (values.length < parameters) values.push(null);
    return values;
  };
  return {
    save: async (input) => {
      const rows = (await pool.query({ ...save, values: saveValues(saveRow(input)) })).rows;
      if (rows.length !== 1) throw new Error(`the direct save of ${input.appId}/${input.sequenceId} inserted nothing`);
    },
    load: async (query) => {
      if (!query.appId || (query.sequenceId !== undefined && query.sequenceId !== null)) throw new Error("the direct floor loads the latest step only");
      const [row] = (await pool.query<Row>({ ...sql.appLatest, values: [query.partitionKey ?? "", query.appId] })).rows;
      if (!row) return null;
      const loaded: PersistedState<Uint8Array> = {
        partitionKey: row.partition_key,
        appId: row.app_id,
        sequenceId: Number(row.sequence_id),
        position: row.position,
        state: row.state,
        status: row.status as Status,
        createdAt: row.created_at,
      };
      return loaded;
    },
    listAppIds: () => Promise.reject(new Error("not measured")),
    close: () => pool.end(),
  };
}

/** The floor of `kind` for a store URL (postgres: or redis:). */
export function openDirect(kind: DirectKind, url: string): Promise<Surface> {
  if (kind === "direct" && url.startsWith("postgres")) return postgresDirect(url);
  return inProcess(url);
}
