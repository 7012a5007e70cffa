/** The one error type: gRPC codes, their names, and the shared constructors. */
import { Code, PersisterError, codeName, duplicate, notInitialized, unavailable } from "./errors";

describe("Code", () => {
  test("the gRPC status codes, by their numbers", () => {
    expect(Code).toEqual({
      OK: 0,
      CANCELLED: 1,
      UNKNOWN: 2,
      INVALID_ARGUMENT: 3,
      DEADLINE_EXCEEDED: 4,
      NOT_FOUND: 5,
      ALREADY_EXISTS: 6,
      PERMISSION_DENIED: 7,
      RESOURCE_EXHAUSTED: 8,
      FAILED_PRECONDITION: 9,
      ABORTED: 10,
      OUT_OF_RANGE: 11,
      UNIMPLEMENTED: 12,
      INTERNAL: 13,
      UNAVAILABLE: 14,
      DATA_LOSS: 15,
      UNAUTHENTICATED: 16,
    });
  });
});

describe("codeName", () => {
  test.each(Object.entries(Code))("%s is the name of %i", (name, code) => {
    expect(codeName(code)).toBe(name);
  });

  test.each([17, 99, -1, 2.5])("an unknown code %p is CODE_<n>", (code) => {
    expect(codeName(code)).toBe(`CODE_${code}`);
  });
});

describe("PersisterError", () => {
  test("carries its code, message, name and cause; is an Error", () => {
    const cause = new Error("socket closed");
    const error = new PersisterError(Code.ALREADY_EXISTS, "taken", { cause });
    expect(error).toBeInstanceOf(Error);
    expect(error).toBeInstanceOf(PersisterError);
    expect(error.code).toBe(6);
    expect(error.message).toBe("taken");
    expect(error.name).toBe("PersisterError");
    expect(error.cause).toBe(cause);
    expect(error.codeName).toBe("ALREADY_EXISTS");
    expect(String(error)).toBe("PersisterError: taken");
  });

  test("without options there is no cause", () => {
    const error = new PersisterError(Code.DATA_LOSS, "lost");
    expect(error.cause).toBeUndefined();
    expect(error.codeName).toBe("DATA_LOSS");
    expect(error.stack).toContain("lost");
  });
});

describe("shared errors", () => {
  test("notInitialized is FAILED_PRECONDITION and says what to do", () => {
    const error = notInitialized();
    expect(error.code).toBe(Code.FAILED_PRECONDITION);
    expect(error.message).toMatch(/call Initialize first/);
    expect(error.message).toMatch(/--init/);
  });

  test("unavailable is UNAVAILABLE, names what, and keeps the cause", () => {
    const cause = new Error("ECONNREFUSED");
    const error = unavailable("postgres at h:5432/db", cause);
    expect(error.code).toBe(Code.UNAVAILABLE);
    expect(error.message).toBe("postgres at h:5432/db is unavailable: ECONNREFUSED");
    expect(error.cause).toBe(cause);
    expect(unavailable("redis", "timeout").message).toBe("redis is unavailable: timeout");
  });

  test("duplicate is ALREADY_EXISTS and names the four keys, strings quoted", () => {
    const error = duplicate({ partitionKey: "", appId: "a\"b", sequenceId: 3, position: "step 1" });
    expect(error.code).toBe(Code.ALREADY_EXISTS);
    expect(error.message).toBe('a state is already saved for partition_key="" app_id="a\\"b" sequence_id=3 position="step 1"');
  });
});
