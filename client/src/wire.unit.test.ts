/** The wire mapping the clients share: requests from domain calls, answers back, errors as PersisterErrors. */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { Code, PersisterError } from "./errors";
import type { LoadQuery, SaveInput } from "./persister";
import { listRequest, loadRequest, persistedState, persisterError, saveRequest, savedAt } from "./wire";
import {
  LoadResponseSchema,
  SaveResponseSchema,
  Status as WireStatus,
} from "./gen/burr/state/v1/state_persister_pb";
import { refusal } from "../../tests/support/refusal";


const state = new Uint8Array([1, 2, 3]);
const save = (overrides: Partial<SaveInput<Uint8Array>> = {}): SaveInput<Uint8Array> => ({
  partitionKey: "p",
  appId: "app",
  sequenceId: 4,
  position: "step",
  state,
  status: "completed",
  ...overrides,
});

describe("saveRequest", () => {
  test("maps every field: sequence_id as a bigint, the state bytes as given", () => {
    const request = saveRequest(save());
    expect(request).toMatchObject({
      $typeName: "burr.state.v1.SaveRequest",
      partitionKey: "p",
      appId: "app",
      sequenceId: 4n,
      position: "step",
      status: WireStatus.COMPLETED,
    });
    expect(request.state).toBe(state);
  });

  test("Burr's two statuses map to their enum values", () => {
    expect(saveRequest(save({ status: "completed" })).status).toBe(WireStatus.COMPLETED);
    expect(saveRequest(save({ status: "failed" })).status).toBe(WireStatus.FAILED);
  });

  test.each([undefined, null, ""])("partition_key %p is sent as \"\"", (partitionKey) => {
    expect(saveRequest(save({ partitionKey })).partitionKey).toBe("");
  });

  test("2^53 - 1 is sent exactly", () => {
    expect(saveRequest(save({ sequenceId: Number.MAX_SAFE_INTEGER })).sequenceId).toBe(9007199254740991n);
  });

  test("the input rules apply before anything is sent", () => {
    const empty = refusal(() => saveRequest(save({ appId: "" })));
    expect(empty.code).toBe(Code.INVALID_ARGUMENT);
    expect(empty.message).toBe("app_id must not be empty");
    expect(refusal(() => saveRequest(save({ sequenceId: -1 }))).message).toBe("sequence_id must be >= 0, got -1");
    expect(refusal(() => saveRequest(save({ position: "a\u0000" }))).message).toBe("position must not contain NUL characters");
    expect(refusal(() => saveRequest(save({ state: "x" as unknown as Uint8Array }))).message).toBe("state must be bytes");
  });

  test("size limits are the server's to apply: long keys pass here", () => {
    const long = "k".repeat(5000);
    expect(saveRequest(save({ appId: long, partitionKey: long, position: long })).appId).toBe(long);
  });
});

describe("loadRequest", () => {
  test.each([
    [{}, { partitionKey: "", appId: undefined, sequenceId: undefined }],
    [{ partitionKey: null, appId: null, sequenceId: null }, { partitionKey: "", appId: undefined, sequenceId: undefined }],
    [{ partitionKey: "p", appId: "" }, { partitionKey: "p", appId: undefined, sequenceId: undefined }],
    [{ partitionKey: "p", appId: "a" }, { partitionKey: "p", appId: "a", sequenceId: undefined }],
    [{ appId: "a", sequenceId: 0 }, { partitionKey: "", appId: "a", sequenceId: 0n }],
    [{ partitionKey: "p", appId: "a", sequenceId: 9 }, { partitionKey: "p", appId: "a", sequenceId: 9n }],
  ] as Array<[LoadQuery, object]>)("%j", (query, expected) => {
    const request = loadRequest(query);
    expect(request.$typeName).toBe("burr.state.v1.LoadRequest");
    expect({ partitionKey: request.partitionKey, appId: request.appId, sequenceId: request.sequenceId }).toStrictEqual(expected);
  });

  test("a sequence_id without an app_id is refused before sending", () => {
    const error = refusal(() => loadRequest({ partitionKey: "p", sequenceId: 1 }));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("sequence_id needs an app_id: a step belongs to one app");
  });

  test("bad keys are refused with the field named; long ones pass", () => {
    expect(refusal(() => loadRequest({ appId: "\uD800" })).message).toBe("app_id must be valid Unicode (it has a lone surrogate)");
    expect(loadRequest({ appId: "a".repeat(3000) }).appId).toHaveLength(3000);
  });
});

describe("listRequest", () => {
  test.each([undefined, null, ""])("%p is the default partition", (partitionKey) => {
    const request = listRequest(partitionKey);
    expect(request.$typeName).toBe("burr.state.v1.ListAppIdsRequest");
    expect(request.partitionKey).toBe("");
  });

  test("a partition is sent as given; a bad one is refused", () => {
    expect(listRequest("user-1").partitionKey).toBe("user-1");
    const error = refusal(() => listRequest("a\u0000b"));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe("partition_key must not contain NUL characters");
  });
});

describe("savedAt", () => {
  test("the server's timestamp, to the millisecond", () => {
    const when = new Date("2024-05-06T07:08:09.123Z");
    expect(savedAt(create(SaveResponseSchema, { createdAt: timestampFromDate(when) }))).toEqual(when);
  });

  test("no timestamp: the epoch", () => {
    expect(savedAt(create(SaveResponseSchema, {}))).toEqual(new Date(0));
  });
});

describe("persistedState", () => {
  const stored = (status: "completed" | "failed", createdAt?: Date) =>
    create(LoadResponseSchema, {
      persistedState: {
        partitionKey: "p",
        appId: "a",
        sequenceId: 12n,
        position: "step",
        state,
        status: status === "completed" ? WireStatus.COMPLETED : WireStatus.FAILED,
        // Set as a current server sets it (older clients ignore it).
        statusText: status,
        createdAt: createdAt && timestampFromDate(createdAt),
      },
    });

  test("nothing found: null", () => {
    expect(persistedState(create(LoadResponseSchema, {}))).toBeNull();
  });

  test("a row comes back in domain terms", () => {
    const when = new Date("2025-01-02T03:04:05.678Z");
    expect(persistedState(stored("completed", when))).toEqual({
      partitionKey: "p",
      appId: "a",
      sequenceId: 12,
      position: "step",
      state,
      status: "completed",
      createdAt: when,
    });
  });

  test.each(["completed", "failed"] as const)("status %s round-trips through a save request", (status) => {
    const sent = saveRequest(save({ status }));
    const answer = stored(status);
    expect(answer.persistedState!.status).toBe(sent.status);
    expect(persistedState(answer)!.status).toBe(status);
  });

  test("no timestamp: the epoch", () => {
    expect(persistedState(stored("failed"))!.createdAt).toEqual(new Date(0));
  });
});

describe("persisterError", () => {
  const grpcError = (code: number, details: string, message = `${code} ${details}`) =>
    Object.assign(new Error(message), { code, details, metadata: {} });

  test("a PersisterError is returned as it is", () => {
    const error = new PersisterError(Code.ALREADY_EXISTS, "dup");
    expect(persisterError(error, "h:1")).toBe(error);
  });

  test.each([
    [Code.CANCELLED],
    [Code.INVALID_ARGUMENT],
    [Code.NOT_FOUND],
    [Code.ALREADY_EXISTS],
    [Code.PERMISSION_DENIED],
    [Code.RESOURCE_EXHAUSTED],
    [Code.FAILED_PRECONDITION],
    [Code.INTERNAL],
    [Code.DATA_LOSS],
    [Code.UNAUTHENTICATED],
  ])("a grpc-js error with code %i keeps its code and its details", (code) => {
    const cause = grpcError(code, "what the server said");
    const error = persisterError(cause, "h:1");
    expect(error).toBeInstanceOf(PersisterError);
    expect(error.code).toBe(code);
    expect(error.message).toBe("what the server said");
    expect(error.cause).toBe(cause);
  });

  test.each([Code.UNAVAILABLE, Code.DEADLINE_EXCEEDED])("code %i names the server", (code) => {
    const error = persisterError(grpcError(code, "No connection established"), "10.0.0.1:50051");
    expect(error.code).toBe(code);
    expect(error.message).toBe("No connection established (server 10.0.0.1:50051)");
  });

  test("empty details: the message; neither: \"no details\"", () => {
    expect(persisterError(grpcError(Code.INTERNAL, "", "13 INTERNAL: boom"), "h:1").message).toBe("13 INTERNAL: boom");
    expect(persisterError({ code: Code.ABORTED }, "h:1").message).toBe("no details");
    expect(persisterError({ code: Code.UNAVAILABLE }, "h:1").message).toBe("no details (server h:1)");
  });

  test.each([0, 17, -1, 2.5e9])("code %p is not a failure code: UNKNOWN naming the server", (code) => {
    const cause = grpcError(code, "d", "odd");
    const error = persisterError(cause, "h:1");
    expect(error.code).toBe(Code.UNKNOWN);
    expect(error.message).toBe("odd (server h:1)");
    expect(error.cause).toBe(cause);
  });

  test("anything else thrown is UNKNOWN, naming the server", () => {
    expect(persisterError(new Error("socket hang up"), "h:1")).toMatchObject({ code: Code.UNKNOWN, message: "socket hang up (server h:1)" });
    expect(persisterError("boom", "h:1")).toMatchObject({ code: Code.UNKNOWN, message: "boom (server h:1)" });
    expect(persisterError(null, "h:1")).toMatchObject({ code: Code.UNKNOWN, message: "null (server h:1)" });
    expect(persisterError(undefined, "h:1")).toMatchObject({ code: Code.UNKNOWN, message: "undefined (server h:1)" });
    expect(persisterError({ code: "14", message: "text code" }, "h:1")).toMatchObject({ code: Code.UNKNOWN, message: "text code (server h:1)" });
  });
});
