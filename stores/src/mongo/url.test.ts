/** The store URL: what the backend takes for itself, and what it hands to the driver untouched. */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { mongoClientOptions, parseMongoUrl } from "./index";
import { refusal } from "../../../tests/support/refusal";


describe("mongo store URL", () => {
  test("defaults: database burr, collection burr_state", () => {
    expect(parseMongoUrl("mongodb://127.0.0.1:27017")).toEqual({
      driverUrl: "mongodb://127.0.0.1:27017",
      database: "burr",
      collection: "burr_state",
    });
    expect(parseMongoUrl("mongodb://127.0.0.1:27017/").database).toBe("burr");
  });

  test("collection is removed before the driver sees the URL; every other part stays as written", () => {
    const url = "mongodb://user:p%40ss%2Fw@h1:1,h2:2/states?replicaSet=rs0&collection=my_states&authSource=admin&readPreferenceTags=dc:ny,rack:1";
    expect(parseMongoUrl(url)).toEqual({
      driverUrl: "mongodb://user:p%40ss%2Fw@h1:1,h2:2/states?replicaSet=rs0&authSource=admin&readPreferenceTags=dc:ny,rack:1",
      database: "states",
      collection: "my_states",
    });
    expect(parseMongoUrl("mongodb+srv://cluster.example.com/db?collection=c").driverUrl).toBe("mongodb+srv://cluster.example.com/db");
  });

  test.each(["bad-name", "a.b", "$x", "", "1st", "x".repeat(49), "system.views"])("collection %j is refused", (collection) => {
    const error = refusal(() => parseMongoUrl(`mongodb://h/db?collection=${encodeURIComponent(collection)}`));
    expect({ code: error.code, message: error.message }).toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/collection name/) });
  });

  test.each(["a.b", "a b", "a$b", "x".repeat(65)])("database %j is refused", (database) => {
    const error = refusal(() => parseMongoUrl(`mongodb://h/${encodeURIComponent(database)}`));
    expect({ code: error.code, message: error.message }).toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/database name/) });
  });

  test("bounded timeouts and no driver read retries by default; the URL's own values win", () => {
    expect(mongoClientOptions("mongodb://h/db")).toMatchObject({
      serverSelectionTimeoutMS: 3000,
      connectTimeoutMS: 3000,
      socketTimeoutMS: 5000,
      waitQueueTimeoutMS: 5000,
      retryReads: false,
    });
    const options = mongoClientOptions("mongodb://h/db?sockettimeoutms=20000&serverSelectionTimeoutMS=1000&retryReads=true");
    expect(options).not.toHaveProperty("socketTimeoutMS");
    expect(options).not.toHaveProperty("serverSelectionTimeoutMS");
    expect(options).not.toHaveProperty("retryReads");
    expect(options).toMatchObject({ connectTimeoutMS: 3000 });
  });

  test("a value holding = is read whole", () => {
    expect(parseMongoUrl("mongodb://h/db?authMechanismProperties=A:b=c&collection=c1").driverUrl).toBe("mongodb://h/db?authMechanismProperties=A:b=c");
    expect(refusal(() => parseMongoUrl("mongodb://h/db?collection=states=1")).message).toMatch(/"states=1"/);
  });
});
