/** Codecs: JSON by default (DATA_LOSS when stored bytes are not JSON text), raw bytes untouched. */
import { jsonCodec, rawCodec, withCodec, withCodecSync, type JsonValue } from "./codec";
import { Code, PersisterError } from "./errors";
import type { AsyncStatePersister, LoadQuery, PersistedState, SaveInput, SyncStatePersister } from "./persister";

const bytes = (text: string) => new Uint8Array(Buffer.from(text, "utf8"));
const text = (data: Uint8Array) => Buffer.from(data).toString("utf8");

function decodeError(data: Uint8Array): PersisterError {
  try {
    jsonCodec.decode(data);
  } catch (error) {
    expect(error).toBeInstanceOf(PersisterError);
    return error as PersisterError;
  }
  throw new Error("expected decode to fail");
}

describe("jsonCodec", () => {
  test.each<JsonValue>([null, true, false, 0, -1.5, "", "text ü 🦜", [], [1, [2, null]], {}, { a: { b: [1, "x"] }, "ü": null }])(
    "%j round-trips",
    (value) => {
      expect(jsonCodec.decode(jsonCodec.encode(value))).toEqual(value);
    },
  );

  test("encodes as compact UTF-8 JSON text", () => {
    const encoded = jsonCodec.encode({ count: 1, name: "é" });
    expect(encoded).toBeInstanceOf(Uint8Array);
    expect(text(encoded)).toBe('{"count":1,"name":"é"}');
    expect(Array.from(jsonCodec.encode("é"))).toEqual([0x22, 0xc3, 0xa9, 0x22]);
  });

  test("decodes JSON text as Python writes it", () => {
    expect(jsonCodec.decode(bytes('{"a": 1, "b": [true, null], "c": "\\u00e9"}'))).toEqual({ a: 1, b: [true, null], c: "é" });
  });

  test.each([
    ["not JSON", bytes("{not json")],
    ["empty bytes", new Uint8Array(0)],
    ["Python's NaN", bytes('{"x": NaN}')],
    ["trailing garbage", bytes("{} x")],
  ])("%s is DATA_LOSS, pointing at rawCodec", (_, data) => {
    const error = decodeError(data);
    expect(error.code).toBe(Code.DATA_LOSS);
    expect(error.message).toMatch(/^the stored state is not JSON that JavaScript can read \(SyntaxError: .*\); load it with rawCodec$/);
    expect(error.cause).toBeInstanceOf(SyntaxError);
  });

  test.each([
    ["a lone continuation byte", [0x22, 0x80, 0x22]],
    ["an invalid byte", [0x22, 0xff, 0x22]],
    ["a truncated sequence", [0x22, 0xc3, 0x22]],
    ["an encoded surrogate", [0x22, 0xed, 0xa0, 0x80, 0x22]],
  ])("invalid UTF-8 (%s) is DATA_LOSS, not a replacement character", (_, data) => {
    const error = decodeError(new Uint8Array(data));
    expect(error.code).toBe(Code.DATA_LOSS);
    expect(error.message).toMatch(/load it with rawCodec$/);
    // The decoder's own TypeError (from Node's realm, so compared by name and code).
    expect(error.cause).toMatchObject({ name: "TypeError", code: "ERR_ENCODING_INVALID_ENCODED_DATA" });
  });

  test("decodes a view at its own offset", () => {
    const whole = bytes('xx{"a":1}yy');
    expect(jsonCodec.decode(whole.subarray(2, 9))).toEqual({ a: 1 });
  });
});

describe("rawCodec", () => {
  test("passes the same bytes through both ways", () => {
    const data = new Uint8Array([0xff, 0x00, 0x80]);
    expect(rawCodec.encode(data)).toBe(data);
    expect(rawCodec.decode(data)).toBe(data);
  });
});

const row = (state: Uint8Array): PersistedState<Uint8Array> => ({
  partitionKey: "p",
  appId: "a",
  sequenceId: 2,
  position: "step",
  state,
  status: "completed",
  createdAt: new Date(1_700_000_000_000),
});

const input = <S>(state: S): SaveInput<S> => ({ partitionKey: "p", appId: "a", sequenceId: 2, position: "step", state, status: "failed" });

function fakeAsync(stored: PersistedState<Uint8Array> | null) {
  const saves: SaveInput<Uint8Array>[] = [];
  const loads: LoadQuery[] = [];
  const calls: string[] = [];
  const inner: AsyncStatePersister<Uint8Array> = {
    initialize: async () => void calls.push("initialize"),
    isInitialized: async () => (calls.push("isInitialized"), true),
    save: async (saved) => (saves.push(saved), { createdAt: new Date(5) }),
    load: async (query) => (loads.push(query), stored),
    listAppIds: async (partitionKey) => (calls.push(`list ${partitionKey}`), ["x", "y"]),
    streamAppIds: (partitionKey) => {
      calls.push(`stream ${partitionKey}`);
      return (async function* () {
        yield "x";
      })();
    },
    listSteps: (query) => {
      calls.push(`steps ${query.appId}`);
      return (async function* () {
        if (stored) yield query.includeState ? stored : { ...stored, state: undefined };
      })();
    },
    deleteApp: async (partitionKey, appId) => (calls.push(`delete ${partitionKey}/${appId}`), 3),
    deletePartition: async (partitionKey) => (calls.push(`delete ${partitionKey}`), { stepsDeleted: 4, appsDeleted: 2 }),
    prune: async (query) => (calls.push(`prune ${query.keepLast}`), 1),
    close: async () => void calls.push("close"),
  };
  return { inner, saves, loads, calls };
}

function fakeSync(stored: PersistedState<Uint8Array> | null) {
  const saves: SaveInput<Uint8Array>[] = [];
  const loads: LoadQuery[] = [];
  const calls: string[] = [];
  const inner: SyncStatePersister<Uint8Array> = {
    initialize: () => void calls.push("initialize"),
    isInitialized: () => (calls.push("isInitialized"), false),
    save: (saved) => (saves.push(saved), { createdAt: new Date(6) }),
    load: (query) => (loads.push(query), stored),
    listAppIds: (partitionKey) => (calls.push(`list ${partitionKey}`), ["z"]),
    *listSteps(query) {
      calls.push(`steps ${query.appId}`);
      if (stored) yield query.includeState ? stored : { ...stored, state: undefined };
    },
    deleteApp: (partitionKey, appId) => (calls.push(`delete ${partitionKey}/${appId}`), 3),
    deletePartition: (partitionKey) => (calls.push(`delete ${partitionKey}`), { stepsDeleted: 4, appsDeleted: 2 }),
    prune: (query) => (calls.push(`prune ${query.keepLast}`), 1),
    close: () => void calls.push("close"),
  };
  return { inner, saves, loads, calls };
}

describe("withCodec", () => {
  test("rawCodec gives back the persister itself", () => {
    const { inner } = fakeAsync(null);
    expect(withCodec(inner, rawCodec)).toBe(inner);
  });

  test("save encodes the state and keeps every other field", async () => {
    const { inner, saves } = fakeAsync(null);
    const persister = withCodec(inner, jsonCodec);
    await expect(persister.save(input({ n: 1 }))).resolves.toEqual({ createdAt: new Date(5) });
    expect(saves).toHaveLength(1);
    expect({ ...saves[0], state: text(saves[0]!.state) }).toEqual({ ...input({ n: 1 }), state: '{"n":1}' });
  });

  test("load decodes the state and keeps every other field; the query passes untouched", async () => {
    const stored = row(bytes('{"n":2}'));
    const { inner, loads } = fakeAsync(stored);
    const persister = withCodec(inner, jsonCodec);
    const query = { partitionKey: "p", appId: "a", sequenceId: 2 };
    await expect(persister.load(query)).resolves.toEqual({ ...stored, state: { n: 2 } });
    expect(loads).toEqual([query]);
  });

  test("nothing found stays null", async () => {
    const { inner } = fakeAsync(null);
    await expect(withCodec(inner, jsonCodec).load({})).resolves.toBeNull();
  });

  test("a state that is not JSON fails the load with DATA_LOSS", async () => {
    const { inner } = fakeAsync(row(bytes("\u0000garbage")));
    await expect(withCodec(inner, jsonCodec).load({})).rejects.toMatchObject({ code: Code.DATA_LOSS });
  });

  test("the other calls pass through", async () => {
    const { inner, calls } = fakeAsync(null);
    const persister = withCodec(inner, jsonCodec);
    await persister.initialize();
    await expect(persister.isInitialized()).resolves.toBe(true);
    await expect(persister.listAppIds("q")).resolves.toEqual(["x", "y"]);
    const streamed: string[] = [];
    for await (const appId of persister.streamAppIds(null)) streamed.push(appId);
    expect(streamed).toEqual(["x"]);
    await persister.close();
    expect(calls).toEqual(["initialize", "isInitialized", "list q", "stream null", "close"]);
  });

  test("a custom codec is used both ways", async () => {
    const upper = { encode: (s: string) => bytes(s.toUpperCase()), decode: (b: Uint8Array) => text(b).toLowerCase() };
    const { inner, saves } = fakeAsync(row(bytes("HELLO")));
    const persister = withCodec(inner, upper);
    await persister.save(input("abc"));
    expect(text(saves[0]!.state)).toBe("ABC");
    expect((await persister.load({}))?.state).toBe("hello");
  });
});

describe("withCodecSync", () => {
  test("rawCodec gives back the persister itself", () => {
    const { inner } = fakeSync(null);
    expect(withCodecSync(inner, rawCodec)).toBe(inner);
  });

  test("save encodes, load decodes, null stays null", () => {
    const stored = row(bytes("[1,2]"));
    const { inner, saves, loads } = fakeSync(stored);
    const persister = withCodecSync(inner, jsonCodec);
    expect(persister.save(input(["a"]))).toEqual({ createdAt: new Date(6) });
    expect(text(saves[0]!.state)).toBe('["a"]');
    expect(saves[0]!.status).toBe("failed");
    expect(persister.load({ appId: "a" })).toEqual({ ...stored, state: [1, 2] });
    expect(loads).toEqual([{ appId: "a" }]);
    expect(withCodecSync(fakeSync(null).inner, jsonCodec).load({})).toBeNull();
  });

  test("bad bytes fail the load with DATA_LOSS", () => {
    const persister = withCodecSync(fakeSync(row(new Uint8Array([0xff]))).inner, jsonCodec);
    expect(() => persister.load({})).toThrow(expect.objectContaining({ code: Code.DATA_LOSS }));
  });

  test("the other calls pass through", () => {
    const { inner, calls } = fakeSync(null);
    const persister = withCodecSync(inner, jsonCodec);
    persister.initialize();
    expect(persister.isInitialized()).toBe(false);
    expect(persister.listAppIds(undefined)).toEqual(["z"]);
    persister.close();
    expect(calls).toEqual(["initialize", "isInitialized", "list undefined", "close"]);
  });
});

describe("withCodec: history calls", () => {
  const row: PersistedState<Uint8Array> = { partitionKey: "p", appId: "a", sequenceId: 1, position: "s", state: new Uint8Array(Buffer.from('{"n":1}')), status: "completed", createdAt: new Date(1) };

  test("listSteps decodes a state only when it was asked for; deletes and prune pass through", async () => {
    const { inner, calls } = fakeAsync(row);
    const json = withCodec(inner, jsonCodec);
    const steps = [];
    for await (const step of json.listSteps({ appId: "a", includeState: true })) steps.push(step);
    for await (const step of json.listSteps({ appId: "a" })) steps.push(step);
    expect(steps.map((step) => step.state)).toEqual([{ n: 1 }, undefined]);
    expect(await json.deleteApp("p", "a")).toBe(3);
    expect(await json.deletePartition("p")).toEqual({ stepsDeleted: 4, appsDeleted: 2 });
    expect(await json.prune({ keepLast: 2 })).toBe(1);
    expect(calls).toEqual(["steps a", "steps a", "delete p/a", "delete p", "prune 2"]);
  });

  test("the sync wrapper does the same", () => {
    const { inner } = fakeSync(row);
    const json = withCodecSync(inner, jsonCodec);
    expect([...json.listSteps({ appId: "a", includeState: true })].map((step) => step.state)).toEqual([{ n: 1 }]);
    expect([...json.listSteps({ appId: "a" })].map((step) => step.state)).toEqual([undefined]);
    expect(json.deleteApp("p", "a")).toBe(3);
  });
});
