/** The server's retention policy: off by default; --retain-last and --retain-for sweep every partition in the background. */
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const servers: ServerProcess[] = [];
const clients: GrpcStatePersister[] = [];
afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop()));
});

async function serve(args: string[]) {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--retention-interval-ms", "200", ...args]);
  servers.push(server);
  const client = new GrpcStatePersister({ address: server.address });
  clients.push(client);
  return { server, client };
}

const steps = async (client: GrpcStatePersister, partitionKey: string, appId: string) => {
  const found: number[] = [];
  for await (const step of client.listSteps({ partitionKey, appId })) found.push(step.sequenceId);
  return found;
};

async function eventually(check: () => Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error("retention did not act in time");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("--retain-last keeps the newest steps of every app in every partition; the sweep is logged", async () => {
  const { server, client } = await serve(["--retain-last", "2"]);
  for (const partitionKey of ["", "a", "b"]) {
    for (let sequenceId = 0; sequenceId < 5; sequenceId++) {
      await client.save({ partitionKey, appId: "app", sequenceId, position: "step", state: {}, status: "completed" });
    }
  }
  await eventually(async () => (await steps(client, "b", "app")).length === 2);
  for (const partitionKey of ["", "a", "b"]) expect(await steps(client, partitionKey, "app")).toEqual([4, 3]);
  expect(server.logs.some((line) => line.includes('"retention_on"'))).toBe(true);
  expect(server.logs.some((line) => line.includes('"retention_swept"'))).toBe(true);
});

test("--retain-for deletes old steps but never an app's highest", async () => {
  const { client } = await serve(["--retain-for", "1s"]);
  for (let sequenceId = 0; sequenceId < 3; sequenceId++) {
    await client.save({ partitionKey: "p", appId: "old", sequenceId, position: "step", state: {}, status: "completed" });
  }
  await eventually(async () => (await steps(client, "p", "old")).length === 1);
  expect(await steps(client, "p", "old")).toEqual([2]);
  expect((await client.load({ partitionKey: "p", appId: "old" }))?.sequenceId).toBe(2);
});

test("off by default, and a bad duration stops the start", async () => {
  const { server } = await serve([]);
  expect(server.logs.some((line) => line.includes('"retention_on"'))).toBe(false);
  await expect(startServerProcess(["--store", "sqlite::memory:", "--retain-for", "soon"])).rejects.toThrow(/30d, 12h/);
});
