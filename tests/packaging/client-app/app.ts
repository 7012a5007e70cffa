/**
 * A small app that uses the installed @burr-state/client package as any user would, by name.
 * The packaging test compiles it with tsc and bundles it with esbuild; app.mjs is the same app
 * as an ES module. It saves and loads a state with each client against the server at
 * BURR_STATE_ADDRESS, and prints what it loaded as one line: `RESULT {...}`.
 */
import { GrpcStatePersister, SyncGrpcStatePersister } from "@burr-state/client";

// The Node globals the app uses, declared here: its tsconfig lists no types.
declare const process: { env: Record<string, string | undefined>; stdout: { write(text: string): boolean } };

const address = process.env.BURR_STATE_ADDRESS!;
const variant = process.env.BURR_STATE_VARIANT!;
const partitionKey = "packaging";

async function main(): Promise<void> {
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

  const row = (found: typeof asyncRow) => found && { appId: found.appId, sequenceId: found.sequenceId, position: found.position, status: found.status, state: found.state };
  process.stdout.write(`RESULT ${JSON.stringify({ async: row(asyncRow), sync: row(syncRow), syncReadsAsync: row(crossRow) })}\n`);
}

main().catch((error: unknown) => {
  process.stdout.write(`FAILED ${String(error)}\n`);
  throw error;
});
