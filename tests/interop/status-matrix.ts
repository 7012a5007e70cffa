/**
 * Every TypeScript way in writes a custom status, then every way reads every app's status:
 * the async and sync clients, the embedded store (in-process, on the same store as the server)
 * and `buf curl` (JSON over reflection). Run by client/python/tests/test_status.py, which adds
 * the Python persister on both sides and checks the printed matrix.
 *
 *   node --conditions=burr-source --require tsx/cjs tests/interop/status-matrix.ts ADDRESS STORE_URL PARTITION APP...
 * prints one JSON line: { "<reader>": { "<app id>": "<status read>" } }
 */
import { execFileSync } from "node:child_process";
import * as path from "node:path";
import { GrpcStatePersister, SyncGrpcStatePersister, rawCodec } from "@burr-state/client";
import { openPersister } from "@burr-state/stores";

const [address, storeUrl, partitionKey, ...otherApps] = process.argv.slice(2) as [string, string, string, ...string[]];
const root = path.resolve(__dirname, "../..");
const state = new Uint8Array(Buffer.from('{"n": 1}'));
const written = { "ts-async": "async ✓ in_progress", "ts-sync": "sync: pending", embedded: "embedded 状态", "buf-curl": "curl 🎉 done" };

function bufCurl(method: string, body: object): Record<string, unknown> {
  const out = execFileSync(
    path.join(root, "node_modules/.bin/buf"),
    ["curl", "--protocol", "grpc", "--http2-prior-knowledge", "-d", JSON.stringify(body), `http://${address}/burr.state.v1.StatePersister/${method}`],
    { encoding: "utf8" },
  );
  return JSON.parse(out || "{}") as Record<string, unknown>;
}

async function main(): Promise<void> {
  const asyncClient = new GrpcStatePersister({ address, codec: rawCodec });
  const syncClient = new SyncGrpcStatePersister({ address, codec: rawCodec });
  const embedded = await openPersister(storeUrl, { codec: rawCodec });
  const step = (appId: string, status: string) => ({ partitionKey, appId, sequenceId: 1, position: "act", state, status });
  try {
    await asyncClient.save(step("ts-async", written["ts-async"]));
    syncClient.save(step("ts-sync", written["ts-sync"]));
    await embedded.save(step("embedded", written.embedded));
    bufCurl("Save", { partition_key: partitionKey, app_id: "buf-curl", sequence_id: 1, position: "act", state: "e30=", status: "STATUS_OTHER", status_text: written["buf-curl"] });

    const apps = [...Object.keys(written), ...otherApps];
    const matrix: Record<string, Record<string, string | undefined>> = { "ts-async": {}, "ts-sync": {}, embedded: {}, "buf-curl": {} };
    for (const appId of apps) {
      matrix["ts-async"]![appId] = (await asyncClient.load({ partitionKey, appId }))?.status;
      matrix["ts-sync"]![appId] = syncClient.load({ partitionKey, appId })?.status;
      matrix.embedded![appId] = (await embedded.load({ partitionKey, appId }))?.status;
      const loaded = bufCurl("Load", { partition_key: partitionKey, app_id: appId }) as { persistedState?: { statusText?: string } };
      matrix["buf-curl"]![appId] = loaded.persistedState?.statusText;
    }
    process.stdout.write(`${JSON.stringify({ written, matrix })}\n`);
  } finally {
    await asyncClient.close();
    syncClient.close();
    await embedded.close();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
