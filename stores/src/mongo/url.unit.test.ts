/**
 * The MongoDB store URL, beyond url.test.ts (defaults, collection removal, refused names, driver
 * timeouts): mongodb+srv, decoding, empty and encoded parameters, and the fixed BSON mapping.
 */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { mongoClientOptions, parseMongoUrl } from "./index";

describe("parseMongoUrl", () => {
  test("mongodb+srv with credentials: the database from the path, the rest untouched", () => {
    expect(parseMongoUrl("mongodb+srv://u:p%2Fq@cluster.example.com/app_db?retryWrites=true&w=majority")).toEqual({
      driverUrl: "mongodb+srv://u:p%2Fq@cluster.example.com/app_db?retryWrites=true&w=majority",
      database: "app_db",
      collection: "burr_state",
    });
  });

  test("several hosts and no path: database burr", () => {
    expect(parseMongoUrl("mongodb://h1:1,h2:2")).toEqual({ driverUrl: "mongodb://h1:1,h2:2", database: "burr", collection: "burr_state" });
  });

  test("a query of only collection leaves no dangling ?", () => {
    expect(parseMongoUrl("mongodb://h/db?collection=c1").driverUrl).toBe("mongodb://h/db");
    expect(parseMongoUrl("mongodb://h/db?").driverUrl).toBe("mongodb://h/db");
  });

  test("empty parameters are dropped", () => {
    expect(parseMongoUrl("mongodb://h/db?&a=1&&b=2&").driverUrl).toBe("mongodb://h/db?a=1&b=2");
  });

  test("the database and the collection are percent-decoded; the driver gets the URL as written", () => {
    expect(parseMongoUrl("mongodb://h/my%2Ddb?collection=my%5Fstates")).toEqual({
      driverUrl: "mongodb://h/my%2Ddb",
      database: "my-db",
      collection: "my_states",
    });
    expect(parseMongoUrl("mongodb://h/db?collectio%6E=c2").collection).toBe("c2");
  });

  test("the last collection given wins", () => {
    expect(parseMongoUrl("mongodb://h/db?collection=c1&collection=c2").collection).toBe("c2");
  });

  test("database names: up to 64 of letters, digits, _ and -", () => {
    expect(parseMongoUrl(`mongodb://h/${"d".repeat(64)}`).database).toBe("d".repeat(64));
    expect(parseMongoUrl("mongodb://h/A-b_9").database).toBe("A-b_9");
    let error: unknown;
    try {
      parseMongoUrl("mongodb://h/a%2Fb");
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(PersisterError);
    expect(error).toMatchObject({
      code: Code.INVALID_ARGUMENT,
      message: 'database name "a/b" is not allowed: use letters, digits, _ and - (at most 64)',
    });
  });

  test("a refused collection names the collection", () => {
    expect(() => parseMongoUrl("mongodb://h/db?collection=a-b")).toThrow(/^collection name "a-b" is not allowed/);
  });
});

describe("mongoClientOptions", () => {
  test("the defaults, including the application name, and the fixed BSON-to-JS mapping", () => {
    expect(mongoClientOptions("mongodb://h/db")).toEqual({
      serverSelectionTimeoutMS: 3000,
      connectTimeoutMS: 3000,
      socketTimeoutMS: 5000,
      waitQueueTimeoutMS: 5000,
      retryReads: false,
      appName: "burr-state-persister",
      promoteLongs: true,
      promoteValues: true,
      promoteBuffers: false,
      useBigInt64: false,
    });
  });

  test("the URL's appName wins; the BSON mapping cannot be changed by the URL", () => {
    const options = mongoClientOptions("mongodb://h/db?appName=mine&promoteLongs=false&useBigInt64=true");
    expect(options).not.toHaveProperty("appName");
    expect(options).toMatchObject({ promoteLongs: true, useBigInt64: false, promoteValues: true, promoteBuffers: false });
  });

  test("a default's name elsewhere in the URL (not as a parameter) does not remove it", () => {
    expect(mongoClientOptions("mongodb://retryreads/db?w=1")).toMatchObject({ retryReads: false });
  });
});
