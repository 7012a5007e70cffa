/**
 * What two servers on FerretDB can leave behind: its updates read, then write the whole document,
 * so two saves of one app racing on two servers can leave the app's `_apps` entry at the older
 * write (a lost $max). Loads and listings must still agree on the partition's latest app.
 */
import { GuardedPersister } from "../../stores/src/guard";
import { openBackend } from "../../stores/src/registry";
import { parseMongoUrl } from "../../stores/src/mongo";
import { connectAdmin, mongoStore } from "../../stores/src/mongo/testing";

const step = (appId: string, sequenceId: number) => ({
  partitionKey: "lost",
  appId,
  sequenceId,
  position: "act",
  state: new Uint8Array(Buffer.from(`${appId}@${sequenceId}`)),
  status: "completed" as const,
});

test("an app entry left below its newest write: the partition's latest load is still the listing's first app", async () => {
  const store = mongoStore();
  const persister = new GuardedPersister(await openBackend(store.url));
  const admin = await connectAdmin();
  try {
    await persister.initialize();
    await persister.save(step("racer", 0));
    await persister.save(step("other", 0));
    await persister.save(step("racer", 1));
    // The racer's step 0 save wrote its entry last, from a read taken before step 1 moved it up.
    const { database, collection } = parseMongoUrl(store.url);
    const states = admin.db(database).collection<{ _id: string; write_seq: number }>(collection);
    const racerStep0 = await states.findOne({ _id: JSON.stringify(["lost", "racer", 0, "act"]) });
    await admin
      .db(database)
      .collection<{ _id: string; last_write: number }>(`${collection}_apps`)
      .updateOne({ _id: JSON.stringify(["lost", "racer"]) }, { $set: { last_write: racerStep0!.write_seq } });

    const listed = await persister.listAppIds("lost");
    expect(listed).toEqual(["other", "racer"]);
    expect((await persister.load({ partitionKey: "lost" }))?.appId).toBe(listed[0]);
    // Loads by app are the states' own: the racer's latest is its step 1.
    expect((await persister.load({ partitionKey: "lost", appId: "racer" }))?.sequenceId).toBe(1);
  } finally {
    await admin.close();
    await persister.close();
    await store.cleanup?.();
  }
});
