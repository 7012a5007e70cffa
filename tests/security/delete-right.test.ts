/**
 * Deleting is a right of its own: read-write tokens cannot delete; a token with "delete": true
 * deletes within its partitions only; a Prune of every partition needs the pattern "*". ListSteps
 * needs read. Every delete is logged with partition, app and count, never state.
 */
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { Code, PersisterError } from "../../client/src/errors";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const tokens = {
  tokens: [
    { name: "writer", token: "writer-token-0123456789", partitions: ["*"], access: "read-write" },
    { name: "eraser", token: "eraser-token-0123456789", partitions: ["user-*"], access: "read", delete: true },
    { name: "janitor", token: "janitor-token-012345678", partitions: ["*"], access: "read", delete: true },
    { name: "outsider", token: "outsider-token-01234567", partitions: ["other"], access: "read" },
  ],
};

let server: ServerProcess;
const persisters: GrpcStatePersister[] = [];
const as = (token: string) => {
  const persister = new GrpcStatePersister({ address: server.address, token, retry: { attempts: 1 } });
  persisters.push(persister);
  return persister;
};

beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init"], { BURR_AUTH_TOKENS: JSON.stringify(tokens) });
  const writer = as("writer-token-0123456789");
  for (const partitionKey of ["user-1", "user-2", "team"]) {
    for (let sequenceId = 0; sequenceId < 3; sequenceId++) {
      await writer.save({ partitionKey, appId: "app", sequenceId, position: "step", state: { secret: "never-logged" }, status: "completed" });
    }
  }
});

afterAll(async () => {
  await Promise.all(persisters.map((persister) => persister.close()));
  await server.stop();
});

async function codeOf(work: Promise<unknown>): Promise<string> {
  return work.then(
    () => "OK",
    (error: unknown) => (error instanceof PersisterError ? error.codeName : String(error)),
  );
}

test("read-write is not enough to delete or prune", async () => {
  const writer = as("writer-token-0123456789");
  expect(await codeOf(writer.deleteApp("user-1", "app"))).toBe("PERMISSION_DENIED");
  expect(await codeOf(writer.deletePartition("user-1"))).toBe("PERMISSION_DENIED");
  expect(await codeOf(writer.prune({ partitionKey: "user-1", keepLast: 1 }))).toBe("PERMISSION_DENIED");
  const steps = [];
  for await (const step of writer.listSteps({ partitionKey: "user-1", appId: "app" })) steps.push(step.sequenceId);
  expect(steps).toEqual([2, 1, 0]);
});

test("a delete grant works within its partitions only; every partition needs the pattern *", async () => {
  const eraser = as("eraser-token-0123456789");
  expect(await codeOf(eraser.deleteApp("team", "app"))).toBe("PERMISSION_DENIED");
  expect(await codeOf(eraser.prune({ keepLast: 1 }))).toBe("PERMISSION_DENIED");
  expect(await eraser.prune({ partitionKey: "user-2", keepLast: 1 })).toBe(2);
  expect(await eraser.deleteApp("user-1", "app")).toBe(3);
  const janitor = as("janitor-token-012345678");
  expect(await janitor.prune({ keepLast: 2 })).toBe(1); // team keeps 2 of 3; user-2 has 1 left
  expect(await janitor.deletePartition("team")).toEqual({ stepsDeleted: 2, appsDeleted: 1 });
  expect(Code.PERMISSION_DENIED).toBe(7);
});

test("ListSteps needs read on the partition", async () => {
  const outsider = as("outsider-token-01234567");
  const listing = async () => {
    for await (const _ of outsider.listSteps({ partitionKey: "user-2", appId: "app" })) void _;
  };
  expect(await codeOf(listing())).toBe("PERMISSION_DENIED");
});

test("every delete is logged with partition, app and count, and no state", () => {
  const deletes = server.logs.filter((line) => /"event":"(deleted_app|deleted_partition|pruned)"/.test(line));
  expect(deletes.some((line) => line.includes('"deleted_app"') && line.includes('"partitionKey":"user-1"') && line.includes('"stepsDeleted":3'))).toBe(true);
  expect(deletes.some((line) => line.includes('"deleted_partition"') && line.includes('"appsDeleted":1'))).toBe(true);
  expect(deletes.filter((line) => line.includes('"pruned"')).length).toBe(2);
  expect(server.logs.some((line) => line.includes("never-logged"))).toBe(false);
});
