/**
 * ListAppIds over 100,000 apps of one partition, through the server: streamed in many chunks
 * (keyset pages, never one big result), each app once, in exact write order.
 */
import * as grpc from "@grpc/grpc-js";
import type { Client } from "pg";
import { rawCodec } from "@burr-state/client/protocol";
import { serviceDefinition } from "@burr-state/client/protocol";
import { GrpcStatePersister } from "@burr-state/client";
import { StatePersister, type ListAppIdsResponse } from "@burr-state/client/gen/burr/state/v1/state_persister_pb";
import { connectAdmin, postgresStore } from "./testing";
import { startServerProcess, type ServerProcess } from "../../../tests/support/server-process";
import type { StoreUnderTest } from "../../../tests/support/subjects";

const appCount = 100_000;
const partition = "crowd";
const appId = (n: number) => `app_${String(n).padStart(6, "0")}`;

let store: StoreUnderTest;
let server: ServerProcess;
let client: GrpcStatePersister<Uint8Array>;
let admin: Client;

beforeAll(async () => {
  store = postgresStore();
  server = await startServerProcess(["--store", store.url, "--init"]);
  client = new GrpcStatePersister({ address: server.address, codec: rawCodec });
  admin = await connectAdmin();
  const table = new URL(store.url).searchParams.get("table")!;
  // Written in one statement, app_000001 first: write order is the only thing that orders them.
  await admin.query(
    `INSERT INTO "${table}" (partition_key, app_id, sequence_id, position, state, status)
     SELECT $1, 'app_' || lpad(g::text, 6, '0'), 0, 'start', '\\x7b7d'::bytea, 'completed'
     FROM generate_series(1, ${appCount}) AS g ORDER BY g`,
    [partition],
  );
  await admin.query(`INSERT INTO "${table}_apps" (partition_key, app_id, last_write) SELECT partition_key, app_id, write_seq FROM "${table}" WHERE partition_key = $1`, [partition]);
  await admin.query(`ANALYZE "${table}"; ANALYZE "${table}_apps"`);
  // Through the server: an app written again moves to the front, and a new one goes before it.
  await client.save({ partitionKey: partition, appId: appId(50_000), sequenceId: 1, position: "again", state: new Uint8Array(2), status: "completed" });
  await client.save({ partitionKey: partition, appId: "newest", sequenceId: 0, position: "start", state: new Uint8Array(2), status: "completed" });
});

afterAll(async () => {
  await client?.close();
  await server?.stop("SIGTERM");
  await admin?.end();
  await store?.cleanup?.();
});

function expectedOrder(): string[] {
  const ids = ["newest", appId(50_000)];
  for (let n = appCount; n >= 1; n--) if (n !== 50_000) ids.push(appId(n));
  return ids;
}

test("the raw stream arrives in many bounded chunks that together are the exact list", async () => {
  const RawClient = grpc.makeGenericClientConstructor(serviceDefinition(StatePersister), StatePersister.typeName);
  const raw = new RawClient(server.address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": -1 });
  try {
    const stream = raw.listAppIds({ partitionKey: partition }, { deadline: Date.now() + 60_000 }) as grpc.ClientReadableStream<ListAppIdsResponse>;
    const chunkSizes: number[] = [];
    const ids: string[] = [];
    for await (const chunk of stream as AsyncIterable<ListAppIdsResponse>) {
      chunkSizes.push(chunk.appIds.length);
      ids.push(...chunk.appIds);
    }
    // The server forwards the store's pages as they are read: many chunks, none empty.
    expect(chunkSizes.length).toBeGreaterThan(10);
    expect(Math.min(...chunkSizes)).toBeGreaterThan(0);
    expect(ids).toEqual(expectedOrder());
  } finally {
    raw.close();
  }
});

test("the async client streams each app once, most recently written first", async () => {
  const ids: string[] = [];
  for await (const id of client.streamAppIds(partition)) ids.push(id);
  expect(ids).toHaveLength(appCount + 1);
  expect(ids).toEqual(expectedOrder());
  expect((await client.load({ partitionKey: partition }))?.appId).toBe("newest");
});
