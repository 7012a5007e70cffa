/** Syntax errors located by line and column, with no text of the input in the message. */
import { jsonSyntaxError, parseJsonQuietly } from "./json-syntax";

describe("jsonSyntaxError", () => {
  test.each([
    "{}",
    "[]",
    ' {"a": [1, -2.5e+3, 0, true, false, null, "x\\n\\u00e9\\"", {}]} \n',
    '"just a string"',
    "0",
    JSON.stringify({ tokens: [{ name: "é ☃ 😀", token: "a\u0001b" }] }),
  ])("valid JSON: null (%s)", (text) => {
    expect(() => JSON.parse(text)).not.toThrow();
    expect(jsonSyntaxError(text)).toBeNull();
  });

  test.each([
    ["", 1, 1, /ends too early/],
    ["{", 1, 2, /ends too early/],
    ['{"a": secret}', 1, 7, /unexpected character/],
    ['{"a": "secret" "b": 1}', 1, 16, /',' or '}'/],
    ['{"a": "sec\tret"}', 1, 11, /control character/],
    ['{"a": "secret', 1, 7, /unterminated string/],
    ['{"a": "sec\\xret"}', 1, 11, /invalid escape/],
    ['{"a": "\\u12g4"}', 1, 8, /\\u escape/],
    ["{a: 1}", 1, 2, /property name/],
    ['{"a" 1}', 1, 6, /':'/],
    ["[1 2]", 1, 4, /',' or ']'/],
    ["[1,]", 1, 4, /unexpected character/],
    ['{"a": 1,}', 1, 9, /property name/],
    ["01", 1, 2, /after the JSON value/],
    ["-", 1, 2, /ends too early/],
    ["1.e5", 1, 3, /malformed number/],
    ['{"a": 1} secret', 1, 10, /after the JSON value/],
    ['{\n  "tokens": [\n    {"name": "t", "token": secret}\n  ]\n}', 3, 28, /unexpected character/],
    ["tru", 1, 1, /unexpected character/],
  ])("%j: line %d, column %d", (text, line, column, problem) => {
    expect(() => JSON.parse(text)).toThrow();
    expect(jsonSyntaxError(text)).toEqual({ line, column, problem: expect.stringMatching(problem) });
  });

  test("deep nesting is an error, not a stack overflow", () => {
    expect(jsonSyntaxError("[".repeat(100_000))).toMatchObject({ problem: expect.stringMatching(/nesting/) });
  });
});

describe("parseJsonQuietly", () => {
  test("parses JSON", () => {
    expect(parseJsonQuietly('{"a": [1]}', "f.json")).toEqual({ a: [1] });
  });

  test("names the source, the problem and the place, never the text", () => {
    const secret = "SECRETTOKEN0123456789";
    for (const text of [`{"token": ${secret}}`, `{"token": "${secret}" }}`, `{"token": "${secret}`, `{"token": "${secret}\t"}`]) {
      let message = "";
      try {
        parseJsonQuietly(text, "tokens.json");
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toMatch(/^tokens\.json is not JSON: .+ at line 1, column \d+$/);
      for (let i = 0; i + 3 <= secret.length; i++) expect(message).not.toContain(secret.slice(i, i + 3));
    }
  });
});
