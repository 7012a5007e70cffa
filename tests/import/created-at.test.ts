/**
 * Every store keeps a creation time given with the save (the import command copies Burr's), in
 * load and in the step listing, to the millisecond; a save without one is stamped as before.
 */
import { GuardedPersister } from "../../stores/src/guard";
import { openBackend } from "../../stores/src/registry";
import { sqliteStore } from "../../stores/src/sqlite/testing";
import { postgresStore } from "../../stores/src/postgres/testing";
import { redisStore } from "../../stores/src/redis/testing";
import { mongoStore } from "../../stores/src/mongo/testing";
import type { StoreUnderTest } from "../support/subjects";
import { Code } from "../../client/src/errors";

const stores: Array<[string, () => StoreUnderTest]> = [
  ["sqlite", sqliteStore],
  ["postgres", () => postgresStore()],
  ["redis", () => redisStore()],
  ["mongo", () => mongoStore()],
];

describe.each(stores)("%s keeps a given creation time", (_name, makeStore) => {
  const store = makeStore();
  let persister: GuardedPersister;

  beforeAll(async () => {
    persister = new GuardedPersister(await openBackend(store.url));
    await persister.initialize();
  });

  afterAll(async () => {
    await persister?.close();
    await store.cleanup?.();
  });

  const step = (appId: string, sequenceId: number) => ({
    partitionKey: "import",
    appId,
    sequenceId,
    position: "act",
    state: new Uint8Array(Buffer.from(`{"n": ${sequenceId}}`)),
    status: "completed",
  });

  it("returns it from save, load and the step listing", async () => {
    const past = new Date("2024-03-01T12:34:56.789Z");
    await expect(persister.saveCreatedAt(step("old", 0), past)).resolves.toEqual({ createdAt: past });
    expect((await persister.load({ partitionKey: "import", appId: "old", sequenceId: 0 }))?.createdAt).toEqual(past);
    const listed = [];
    for await (const row of persister.listSteps({ partitionKey: "import", appId: "old" })) listed.push(row.createdAt);
    expect(listed).toEqual([past]);
  });

  it("still stamps its own time when none is given", async () => {
    const { createdAt } = await persister.save(step("new", 0));
    expect(createdAt.getTime()).toBeGreaterThan(new Date("2025-01-01T00:00:00Z").getTime());
    expect((await persister.load({ partitionKey: "import", appId: "new" }))?.createdAt).toEqual(createdAt);
  });

  it("refuses a second save of the step, keeping the first time", async () => {
    const first = new Date("2023-01-01T00:00:00.001Z");
    await persister.saveCreatedAt(step("twice", 0), first);
    await expect(persister.saveCreatedAt(step("twice", 0), new Date("2023-06-01T00:00:00Z"))).rejects.toMatchObject({ code: Code.ALREADY_EXISTS });
    expect((await persister.load({ partitionKey: "import", appId: "twice" }))?.createdAt).toEqual(first);
  });
});
