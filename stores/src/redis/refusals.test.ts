/**
 * Redis refusing a write (maxmemory reached): the save answers UNAVAILABLE and leaves nothing
 * half-written, because the script's first write is the one Redis refuses.
 */
import type { Redis } from "ioredis";
import { Code } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import type { SaveInput } from "@burr-state/client/protocol";
import { openRedis } from "./index";
import { connectAdmin, freePort, keysUnder, startPrivateRedis, withPrefix, type PrivateRedis } from "./testing";

let redis: PrivateRedis;
let admin: Redis;
let store: GuardedPersister;

beforeAll(async () => {
  redis = await startPrivateRedis(await freePort(), { extraArgs: ["--maxmemory", "3mb", "--maxmemory-policy", "noeviction"] });
  admin = await connectAdmin(redis.url);
  store = new GuardedPersister(await openRedis(withPrefix(redis.url, "full")));
  await store.initialize();
});

afterAll(async () => {
  await store?.close();
  admin?.disconnect();
  await redis?.kill();
});

const save = (sequenceId: number, bytes: number): SaveInput<Uint8Array> => ({
  appId: "app",
  sequenceId,
  position: "act",
  state: new Uint8Array(bytes).fill(7),
  status: "completed",
});

test("a save over maxmemory answers UNAVAILABLE with nothing stored; saves land again once Redis has room", async () => {
  await expect(store.save(save(1, 4 * 1024 * 1024))).rejects.toMatchObject({ code: Code.UNAVAILABLE, message: expect.stringMatching(/OOM/) });
  expect((await keysUnder(admin, "full")).map(String)).toEqual(["full:meta"]);
  expect(await admin.hget("full:meta", "writes")).toBeNull();
  expect(await store.load({ appId: "app" })).toBeNull();

  await admin.config("SET", "maxmemory", "0");
  await store.save(save(2, 1024));
  expect(await store.load({ appId: "app" })).toMatchObject({ sequenceId: 2 });
  expect(await store.listAppIds(null)).toEqual(["app"]);
});
