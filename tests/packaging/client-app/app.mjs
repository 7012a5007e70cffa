// app.ts as an ES module: the same app, importing the package's ESM entry point by name.
import { GrpcStatePersister, SyncGrpcStatePersister } from "@burr-state/client";

const address = process.env.BURR_STATE_ADDRESS;
const variant = process.env.BURR_STATE_VARIANT;
const partitionKey = "packaging";

async function main() {
  const client = new GrpcStatePersister({ address });
  const asyncState = { variant, client: "async", steps: [1, 2, 3] };
  await client.save({ partitionKey, appId: `${variant}-async`, sequenceId: 0, position: "start", state: asyncState, status: "completed" });
  const asyncRow = await client.load({ partitionKey, appId: `${variant}-async` });
  await client.close();

  const sync = new SyncGrpcStatePersister({ address });
  const syncState = { variant, client: "sync", nested: { ok: true } };
  sync.save({ partitionKey, appId: `${variant}-sync`, sequenceId: 1, position: "next", state: syncState, status: "completed" });
  const syncRow = sync.load({ partitionKey, appId: `${variant}-sync` });
  // Each client reads what the other wrote: one server, one store.
  const crossRow = sync.load({ partitionKey, appId: `${variant}-async` });
  sync.close();

  const row = (found) => found && { appId: found.appId, sequenceId: found.sequenceId, position: found.position, status: found.status, state: found.state };
  process.stdout.write(`RESULT ${JSON.stringify({ async: row(asyncRow), sync: row(syncRow), syncReadsAsync: row(crossRow) })}\n`);
}

// No top-level await: esbuild can bundle this module into a CommonJS script too.
main().catch((error) => {
  process.stdout.write(`FAILED ${String(error)}\n`);
  throw error;
});
