/** Bearer tokens scoped to partitions: parsing the token file, authenticating a header, authorizing a call. */
import { createHash } from "node:crypto";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { TokenAuthority, type Grant } from "./auth";

const writer = "writer-token-0123456789";
const reader = "reader-token-abcdefghij";
const hashed = "hashed-token-ABCDEFGHIJ";
const sha256 = (text: string) => createHash("sha256").update(text, "utf8").digest("hex");

const file = (tokens: unknown[]) => JSON.stringify({ tokens });
const authority = TokenAuthority.parse(
  file([
    { name: "chat", token: writer, partitions: ["user-*", ""], access: "read-write" },
    { name: "audit", token: reader, partitions: ["*"], access: "read" },
    { name: "ops", sha256: sha256(hashed).toUpperCase(), partitions: ["team.a", "a+b(c)", "[x]", "^$", "\\d", "q?"], access: "read-write" },
  ]),
  "test tokens",
);

function grantOf(header: string): Grant {
  const result = authority.authenticate(header);
  if (result instanceof PersisterError) throw result;
  return result;
}

const parseError = (tokens: unknown[]) => () => TokenAuthority.parse(file(tokens), "auth.json");

describe("TokenAuthority.parse", () => {
  test("keeps each grant's name, access and patterns, and a digest rather than the token", () => {
    expect(authority.grants.map(({ name, access, patterns }) => ({ name, access, patterns }))).toEqual([
      { name: "chat", access: "read-write", patterns: ["user-*", ""] },
      { name: "audit", access: "read", patterns: ["*"] },
      { name: "ops", access: "read-write", patterns: ["team.a", "a+b(c)", "[x]", "^$", "\\d", "q?"] },
    ]);
    expect(authority.grants[0]!.digest.toString("hex")).toBe(sha256(writer));
    expect(authority.grants[2]!.digest.toString("hex")).toBe(sha256(hashed));
    expect(JSON.stringify(authority.grants)).not.toContain(writer);
  });

  test("not JSON: the source is named", () => {
    expect(() => TokenAuthority.parse("{tokens:", "/etc/burr/auth.json")).toThrow(/^\/etc\/burr\/auth\.json is not JSON: /);
  });

  test.each(["{}", "null", "[]", '{"tokens": []}', '{"tokens": {}}', '{"tokens": "x"}', "7"])("%s holds no tokens", (text) => {
    expect(() => TokenAuthority.parse(text, "BURR_AUTH_TOKENS")).toThrow('BURR_AUTH_TOKENS must hold {"tokens": [...]} with at least one token');
  });

  const good = { name: "n", token: writer, partitions: ["*"], access: "read" };

  test.each([null, 5, "token", false])("an entry that is not an object (%p) is refused, with its index", (entry) => {
    expect(parseError([good, entry])).toThrow("tokens[1] must be an object");
  });

  test.each([undefined, "", 3])("name %p is refused", (name) => {
    expect(parseError([{ ...good, name }])).toThrow("tokens[0].name must be a non-empty string");
  });

  test.each([undefined, "write", "READ", "rw", ""])("access %p is refused", (access) => {
    expect(parseError([{ ...good, access }])).toThrow('tokens[0].access must be "read" or "read-write"');
  });

  test.each([undefined, "*", [1], ["a", null], {}])("partitions %p is refused", (partitions) => {
    expect(parseError([{ ...good, partitions }])).toThrow("tokens[0].partitions must be a list of partition-key patterns");
  });

  const needs = 'tokens[0] needs either "token" (at least 16 characters) or "sha256" (64 hex digits), not both';
  test.each([
    ["a token shorter than 16 characters", { token: "fifteen-chars-x" }],
    ["a token that is not a string", { token: 1234567890123456789 }],
    ["neither", { token: undefined }],
    ["both", { token: writer, sha256: sha256(writer) }],
    ["a sha256 of 63 digits", { token: undefined, sha256: "a".repeat(63) }],
    ["a sha256 of 65 digits", { token: undefined, sha256: "a".repeat(65) }],
    ["a sha256 that is not hex", { token: undefined, sha256: "g".repeat(64) }],
  ])("%s is refused", (_, change) => {
    expect(parseError([{ ...good, ...change }])).toThrow(needs);
  });

  test("a token of exactly 16 characters is enough; an empty partition list is allowed", () => {
    const parsed = TokenAuthority.parse(file([{ ...good, token: "sixteen-chars-xx", partitions: [] }]), "t");
    expect(parsed.grants[0]!.patterns).toEqual([]);
  });
});

describe("authenticate", () => {
  test.each([undefined, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", `Token ${writer}`, `Bearer ${writer} extra`, writer])(
    "%p carries no bearer token: UNAUTHENTICATED, saying what to send",
    (header) => {
      const result = authority.authenticate(header);
      expect(result).toBeInstanceOf(PersisterError);
      expect(result).toMatchObject({
        code: Code.UNAUTHENTICATED,
        message: "this server needs a bearer token: send the metadata `authorization: Bearer <token>`",
      });
    },
  );

  test.each(["Bearer wrong-token-0123456789", `Bearer ${writer}x`, `Bearer ${writer.toUpperCase()}`, `Bearer ${sha256(hashed)}`])(
    "%s is not a valid token",
    (header) => {
      expect(authority.authenticate(header)).toMatchObject({ code: Code.UNAUTHENTICATED, message: "the bearer token is not valid" });
    },
  );

  test("a valid token gives its grant", () => {
    expect(authority.authenticate(`Bearer ${writer}`)).toBe(authority.grants[0]);
    expect(authority.authenticate(`Bearer ${reader}`)).toBe(authority.grants[1]);
  });

  test("a token given by its sha256 (any hex case) authenticates with the token itself", () => {
    expect(authority.authenticate(`Bearer ${hashed}`)).toBe(authority.grants[2]);
  });

  test("the scheme is case-insensitive; spaces around the token are allowed", () => {
    expect(authority.authenticate(`bearer ${writer}`)).toBe(authority.grants[0]);
    expect(authority.authenticate(`BEARER   ${writer}  `)).toBe(authority.grants[0]);
    expect(authority.authenticate(`Bearer\t${writer}`)).toBe(authority.grants[0]);
  });

  test("the same token in two grants: the first one", () => {
    const twice = TokenAuthority.parse(
      file([
        { name: "first", token: writer, partitions: ["a"], access: "read" },
        { name: "second", sha256: sha256(writer), partitions: ["*"], access: "read-write" },
      ]),
      "t",
    );
    expect((twice.authenticate(`Bearer ${writer}`) as Grant).name).toBe("first");
  });
});

describe("authorize", () => {
  const chat = () => grantOf(`Bearer ${writer}`);
  const audit = () => grantOf(`Bearer ${reader}`);
  const ops = () => grantOf(`Bearer ${hashed}`);

  test("a read-only grant may read but not write", () => {
    expect(authority.authorize(audit(), "read", "anything")).toBeNull();
    expect(authority.authorize(audit(), "read")).toBeNull();
    const denied = authority.authorize(audit(), "write", "anything");
    expect(denied).toBeInstanceOf(PersisterError);
    expect(denied).toMatchObject({ code: Code.PERMISSION_DENIED, message: 'token "audit" is read-only' });
    expect(authority.authorize(audit(), "write")).toMatchObject({ code: Code.PERMISSION_DENIED, message: 'token "audit" is read-only' });
  });

  test("a read-write grant may do both, within its partitions", () => {
    expect(authority.authorize(chat(), "write", "user-42")).toBeNull();
    expect(authority.authorize(chat(), "read", "user-42")).toBeNull();
  });

  test.each(["user-1", "user-", "user-a-b", "user-\n", ""])("user-* and \"\" allow %j", (partition) => {
    expect(authority.authorize(chat(), "write", partition)).toBeNull();
  });

  test.each(["user", "admin-user-1", "User-1", " user-1", "users-1"])("user-* and \"\" refuse %j, naming it", (partition) => {
    expect(authority.authorize(chat(), "read", partition)).toMatchObject({
      code: Code.PERMISSION_DENIED,
      message: `token "chat" may not use partition ${JSON.stringify(partition)}`,
    });
  });

  test('"*" allows every partition, the default "" included', () => {
    for (const partition of ["", "x", "a\nb", "*"]) expect(authority.authorize(audit(), "read", partition)).toBeNull();
  });

  test("no partition named (a call without one): only the access is checked", () => {
    const none = TokenAuthority.parse(file([{ name: "none", token: writer, partitions: [], access: "read-write" }]), "t");
    const grant = none.grants[0]!;
    expect(none.authorize(grant, "write")).toBeNull();
    expect(none.authorize(grant, "read", "")).toMatchObject({ code: Code.PERMISSION_DENIED, message: 'token "none" may not use partition ""' });
  });

  test("a write by a read-only grant is refused as read-only before its partition is looked at", () => {
    const narrow = TokenAuthority.parse(file([{ name: "narrow", token: reader, partitions: ["a"], access: "read" }]), "t");
    expect(narrow.authorize(narrow.grants[0]!, "write", "b")!.message).toBe('token "narrow" is read-only');
  });

  test.each([
    ["team.a", "team.a", "teamxa"],
    ["a+b(c)", "a+b(c)", "aab(c)"],
    ["[x]", "[x]", "x"],
    ["^$", "^$", ""],
    ["\\d", "\\d", "5"],
    ["q?", "q?", "q"],
  ])("special characters are literal: %s allows %j and refuses %j", (_, allowed, refused) => {
    expect(authority.authorize(ops(), "write", allowed)).toBeNull();
    expect(authority.authorize(ops(), "write", refused)).toMatchObject({ code: Code.PERMISSION_DENIED });
  });

  test("several stars, and a star matching the empty run", () => {
    const multi = TokenAuthority.parse(file([{ name: "m", token: writer, partitions: ["a*b*c", "*-end"], access: "read" }]), "t");
    const grant = multi.grants[0]!;
    for (const partition of ["abc", "a1b2c", "aXXbYYc", "-end", "x-end"]) expect(multi.authorize(grant, "read", partition)).toBeNull();
    for (const partition of ["ab", "acb", "abcd", "end", "-endx"]) expect(multi.authorize(grant, "read", partition)).not.toBeNull();
  });
});
