/** The input rules every backend shares: each refusal's code, and a message that names the field. */
import { Code, PersisterError } from "./errors";
import type { LoadQuery, SaveInput } from "./persister";
import { checkLoad, checkPartition, checkSave, defaultLimits, type Limits } from "./validation";
import { refusal } from "../../tests/support/refusal";


const state = new Uint8Array([123, 125]);
const save = (overrides: Partial<Record<keyof SaveInput<Uint8Array>, unknown>> = {}): SaveInput<Uint8Array> =>
  ({ partitionKey: "p", appId: "app", sequenceId: 0, position: "start", state, status: "completed", ...overrides }) as SaveInput<Uint8Array>;

// Keys of at most 16 bytes: still room for the status "completed".
const small: Limits = { maxKeyBytes: 16, maxStateBytes: 4 };
const loneHigh = "a\uD800b";
const loneLow = "\uDC00";

describe("defaultLimits", () => {
  test("1 KiB keys, 16 MiB minus 16 KiB of state", () => {
    expect(defaultLimits).toEqual({ maxKeyBytes: 1024, maxStateBytes: 16 * 1024 * 1024 - 16 * 1024 });
  });
});

describe("checkSave", () => {
  test("a valid save comes back as its row, the same state bytes", () => {
    const row = checkSave(save({ sequenceId: 7, status: "failed" }));
    expect(row).toEqual({ partitionKey: "p", appId: "app", sequenceId: 7, position: "start", state, status: "failed" });
    expect(row.state).toBe(state);
  });

  test.each([undefined, null, ""])("partition_key %p is the default partition \"\"", (partitionKey) => {
    expect(checkSave(save({ partitionKey })).partitionKey).toBe("");
  });

  test.each([null, undefined, 42, "text"])("a request that is not an object (%p) is INVALID_ARGUMENT", (input) => {
    const error = refusal(() => checkSave(input as unknown as SaveInput<Uint8Array>));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("save needs a request object");
  });

  describe.each([
    ["app_id", "appId"],
    ["position", "position"],
  ] as const)("%s (required)", (field, prop) => {
    test.each([undefined, null, ""])("%p is refused as empty", (value) => {
      const error = refusal(() => checkSave(save({ [prop]: value })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} must not be empty`);
    });

    test("a non-string is refused", () => {
      const error = refusal(() => checkSave(save({ [prop]: 5 })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} must be a string`);
    });
  });

  describe.each([
    ["partition_key", "partitionKey"],
    ["app_id", "appId"],
    ["position", "position"],
  ] as const)("%s", (field, prop) => {
    test("NUL characters are refused", () => {
      const error = refusal(() => checkSave(save({ [prop]: "a\u0000b" })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} must not contain NUL characters`);
    });

    test.each([loneHigh, loneLow, "x\uDBFF"])("a lone surrogate (%j) is refused", (value) => {
      const error = refusal(() => checkSave(save({ [prop]: value })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} must be valid Unicode (it has a lone surrogate)`);
    });

    test("a surrogate pair (one astral character) is fine", () => {
      expect(checkSave(save({ [prop]: "🦜" }))[prop]).toBe("🦜");
    });

    test("the limit counts UTF-8 bytes: exactly at the limit passes, one byte over is refused", () => {
      expect(checkSave(save({ [prop]: "x".repeat(16) }), small)[prop]).toBe("x".repeat(16));
      // "é" is 2 bytes: 8 of them are 16 bytes (passes) though only 8 characters; 9 are 18 bytes.
      expect(checkSave(save({ [prop]: "é".repeat(8) }), small)[prop]).toBe("é".repeat(8));
      const error = refusal(() => checkSave(save({ [prop]: "é".repeat(9) }), small));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} is 18 bytes long; the limit is 16`);
      expect(refusal(() => checkSave(save({ [prop]: "x".repeat(17) }), small)).message).toBe(`${field} is 17 bytes long; the limit is 16`);
    });

    test("the default limit is 1024 bytes", () => {
      expect(() => checkSave(save({ [prop]: "k".repeat(1024) }))).not.toThrow();
      const error = refusal(() => checkSave(save({ [prop]: "k".repeat(1025) })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`${field} is 1025 bytes long; the limit is 1024`);
    });
  });

  describe("sequence_id", () => {
    test.each([0, 1, 2 ** 31, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER])("%p is accepted", (sequenceId) => {
      expect(checkSave(save({ sequenceId })).sequenceId).toBe(sequenceId);
    });

    test("2^53 - 1 is the largest accepted", () => {
      expect(checkSave(save({ sequenceId: 2 ** 53 - 1 })).sequenceId).toBe(9007199254740991);
    });

    test.each([2 ** 53, 2 ** 60, Number.MAX_VALUE])("%p is over the limit", (sequenceId) => {
      const error = refusal(() => checkSave(save({ sequenceId })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`sequence_id must be at most 9007199254740991, got ${sequenceId}`);
    });

    test.each([-1, -(2 ** 53)])("%p is negative", (sequenceId) => {
      const error = refusal(() => checkSave(save({ sequenceId })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`sequence_id must be >= 0, got ${sequenceId}`);
    });

    test.each([
      [1.5, "1.5"],
      [Number.NaN, "NaN"],
      [Number.POSITIVE_INFINITY, "Infinity"],
      ["3", "3"],
      [undefined, "undefined"],
      [null, "null"],
      [3n, "3"],
    ])("%p is not an integer", (sequenceId, shown) => {
      const error = refusal(() => checkSave(save({ sequenceId })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe(`sequence_id must be an integer, got ${shown}`);
    });

    test("-0 is accepted (it is the integer 0)", () => {
      expect(checkSave(save({ sequenceId: -0 })).sequenceId === 0).toBe(true);
    });
  });

  describe("status", () => {
    test.each(["completed", "failed"] as const)("%s is accepted", (status) => {
      expect(checkSave(save({ status })).status).toBe(status);
    });

    // Refused whether status is one of the two Burr values or (as the protocol now allows) any key-like string.
    test.each([undefined, null, "", 1, "comp\u0000leted", "x".repeat(1025), "completed\uD800"])("%j is refused", (status) => {
      const error = refusal(() => checkSave(save({ status })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toMatch(/^status /);
    });
  });

  describe("state", () => {
    test("a Buffer is bytes too", () => {
      const buffer = Buffer.from("{}");
      expect(checkSave(save({ state: buffer })).state).toBe(buffer);
    });

    test.each([undefined, null, "{}", [1, 2], new ArrayBuffer(2)])("%p is not bytes", (value) => {
      const error = refusal(() => checkSave(save({ state: value })));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe("state must be bytes");
    });

    test("empty state is allowed", () => {
      expect(checkSave(save({ state: new Uint8Array(0) })).state.byteLength).toBe(0);
    });

    test("over the size limit is RESOURCE_EXHAUSTED, exactly at it is fine", () => {
      expect(checkSave(save({ state: new Uint8Array(4) }), small).state.byteLength).toBe(4);
      const error = refusal(() => checkSave(save({ state: new Uint8Array(5) }), small));
      expect(error.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(error.message).toBe("state is 5 bytes; the limit is 4");
    });

    test("the default limit is 16 MiB - 16 KiB", () => {
      const limit = 16 * 1024 * 1024 - 16 * 1024;
      expect(() => checkSave(save({ state: new Uint8Array(limit) }))).not.toThrow();
      const error = refusal(() => checkSave(save({ state: new Uint8Array(limit + 1) })));
      expect(error.code).toBe(Code.RESOURCE_EXHAUSTED);
      expect(error.message).toBe(`state is ${limit + 1} bytes; the limit is ${limit}`);
    });

    test("a subarray's own length is what counts", () => {
      const view = new Uint8Array(100).subarray(10, 14);
      expect(checkSave(save({ state: view }), small).state).toBe(view);
    });
  });

  test("fields are checked in order: the first bad one is reported", () => {
    const error = refusal(() => checkSave(save({ appId: "", sequenceId: -1, position: "", status: "x" })));
    expect(error.message).toBe("app_id must not be empty");
  });
});

describe("checkLoad", () => {
  test.each([
    [{}, { kind: "partition-latest", partitionKey: "" }],
    [{ partitionKey: "p" }, { kind: "partition-latest", partitionKey: "p" }],
    [{ partitionKey: null, appId: null, sequenceId: null }, { kind: "partition-latest", partitionKey: "" }],
    [{ partitionKey: "p", appId: "" }, { kind: "partition-latest", partitionKey: "p" }],
    [{ appId: "a" }, { kind: "app-latest", partitionKey: "", appId: "a" }],
    [{ partitionKey: "p", appId: "a", sequenceId: null }, { kind: "app-latest", partitionKey: "p", appId: "a" }],
    [{ partitionKey: "p", appId: "a", sequenceId: 0 }, { kind: "step", partitionKey: "p", appId: "a", sequenceId: 0 }],
    [{ appId: "a", sequenceId: Number.MAX_SAFE_INTEGER }, { kind: "step", partitionKey: "", appId: "a", sequenceId: Number.MAX_SAFE_INTEGER }],
  ] as Array<[LoadQuery, unknown]>)("%j -> %j", (query, key) => {
    expect(checkLoad(query)).toEqual(key);
  });

  test.each([undefined, null, ""])("partition_key %p means the default partition", (partitionKey) => {
    expect(checkLoad({ partitionKey, appId: "a" })).toEqual({ kind: "app-latest", partitionKey: "", appId: "a" });
  });

  test.each([0, 5])("sequence_id %p without an app_id is refused", (sequenceId) => {
    for (const appId of [undefined, null, ""]) {
      const error = refusal(() => checkLoad({ partitionKey: "p", appId, sequenceId }));
      expect(error.code).toBe(Code.INVALID_ARGUMENT);
      expect(error.message).toBe("sequence_id needs an app_id: a step belongs to one app");
    }
  });

  test.each([
    [-1, "sequence_id must be >= 0, got -1"],
    [1.25, "sequence_id must be an integer, got 1.25"],
    [2 ** 53, "sequence_id must be at most 9007199254740991, got 9007199254740992"],
  ])("a step's sequence_id %p is checked", (sequenceId, message) => {
    const error = refusal(() => checkLoad({ appId: "a", sequenceId }));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(message);
  });

  test("keys follow the key rules, with the field named", () => {
    expect(refusal(() => checkLoad({ partitionKey: "a\u0000" })).message).toBe("partition_key must not contain NUL characters");
    expect(refusal(() => checkLoad({ appId: loneHigh })).message).toBe("app_id must be valid Unicode (it has a lone surrogate)");
    const long = refusal(() => checkLoad({ appId: "x".repeat(17) }, small));
    expect(long.code).toBe(Code.INVALID_ARGUMENT);
    expect(long.message).toBe("app_id is 17 bytes long; the limit is 16");
    expect(refusal(() => checkLoad({ partitionKey: "x".repeat(1025) })).message).toBe("partition_key is 1025 bytes long; the limit is 1024");
    expect(refusal(() => checkLoad({ appId: 7 as unknown as string })).message).toBe("app_id must be a string");
  });

  test.each([null, undefined, "q"])("a query that is not an object (%p) is INVALID_ARGUMENT", (query) => {
    const error = refusal(() => checkLoad(query as unknown as LoadQuery));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("load needs a query object");
  });
});

describe("checkPartition", () => {
  test.each([undefined, null, ""])("%p is the default partition \"\"", (partitionKey) => {
    expect(checkPartition(partitionKey)).toBe("");
  });

  test("a partition comes back as given", () => {
    expect(checkPartition("user-1")).toBe("user-1");
    expect(checkPartition("x".repeat(16), small)).toBe("x".repeat(16));
  });

  test.each([
    ["a\u0000", "partition_key must not contain NUL characters"],
    [loneLow, "partition_key must be valid Unicode (it has a lone surrogate)"],
    [12, "partition_key must be a string"],
    ["x".repeat(1025), "partition_key is 1025 bytes long; the limit is 1024"],
  ])("%j is refused", (partitionKey, message) => {
    const error = refusal(() => checkPartition(partitionKey));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(message);
  });

  test("the limit is the one given", () => {
    expect(refusal(() => checkPartition("x".repeat(17), small)).message).toBe("partition_key is 17 bytes long; the limit is 16");
  });
});
