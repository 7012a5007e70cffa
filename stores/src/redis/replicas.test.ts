/**
 * wait_replicas on one Redis with a replica (private redis-servers): a save is acknowledged once
 * the replica has it; with the replica gone the save fails UNAVAILABLE, saying so, although the
 * primary stored it (an UNAVAILABLE save may or may not be stored).
 */
import { Code } from "@burr-state/client/protocol";
import type { SaveInput } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import { openRedis } from "./index";
import { connectAdmin, freePort, keysUnder, startPrivateRedis, type PrivateRedis } from "./testing";

const save = (sequenceId: number): SaveInput<Uint8Array> => ({
  partitionKey: "p",
  appId: "a",
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`state ${sequenceId}`)),
  status: "completed",
});

let primary: PrivateRedis;
let replica: PrivateRedis;

beforeAll(async () => {
  primary = await startPrivateRedis(await freePort());
  replica = await startPrivateRedis(await freePort(), { extraArgs: ["--replicaof", "127.0.0.1", String(primary.port)] });
  const admin = await connectAdmin(replica.url);
  try {
    const deadline = Date.now() + 30_000;
    while (!(await admin.info("replication")).includes("master_link_status:up")) {
      if (Date.now() > deadline) throw new Error("the replica did not connect to its primary within 30 s");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    admin.disconnect();
  }
});

afterAll(async () => {
  await Promise.all([primary?.kill(), replica?.kill()]);
});

test("a save is acknowledged once the replica has it; without the replica it fails UNAVAILABLE", async () => {
  const store = new GuardedPersister(await openRedis(`${primary.url}?prefix=replicas&wait_replicas=1`));
  try {
    await store.initialize();
    await store.save(save(0));
    const onReplica = await connectAdmin(replica.url);
    try {
      // Acknowledged means on the replica already: no waiting here.
      expect((await keysUnder(onReplica, "replicas")).map(String).filter((key) => key.startsWith("replicas:row:"))).toHaveLength(1);
    } finally {
      onReplica.disconnect();
    }

    await replica.kill();
    await expect(store.save(save(1))).rejects.toMatchObject({
      code: Code.UNAVAILABLE,
      message: expect.stringMatching(/the save ran, but 0 of 1 replicas had it within 1000 ms \(wait_replicas\): a failover could lose it/),
    });
    expect(await store.load({ partitionKey: "p", appId: "a" })).toMatchObject({ sequenceId: 1 });
    // Its key is taken: a retry says so.
    await expect(store.save(save(1))).rejects.toMatchObject({ code: Code.ALREADY_EXISTS });
  } finally {
    await store.close();
  }
});
