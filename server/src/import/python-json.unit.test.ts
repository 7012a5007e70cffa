import { pythonFloat, pythonJsonDumps } from "./python-json";

/** [text, Python's json.dumps(json.loads(text))], computed by Python 3.11. */
const fromPython: Array<[string, string]> = [
 [
  "{\"b\": 1, \"a\": [1, 2.50, -0, 1e2, 1E-7, 0.0001, 0.00001, 1e16, 1e15, 123456789012345678901234567890, 1.5e300, -2.5e-300, 1e400]}",
  "{\"b\": 1, \"a\": [1, 2.5, 0, 100.0, 1e-07, 0.0001, 1e-05, 1e+16, 1000000000000000.0, 123456789012345678901234567890, 1.5e+300, -2.5e-300, Infinity]}"
 ],
 [
  "{\"x\":\"é\\u00e9\\ud83d\\ude00😀\\n\\t\\r\\b\\f\\u0001\\u007f\\/\\\"\\\\\",\"10\":{},\"2\":[],\"x\":true}",
  "{\"x\": true, \"10\": {}, \"2\": []}"
 ],
 [
  "[null, false, NaN, -Infinity, Infinity, -0.0, 0.1, 100.0, 3.14159]",
  "[null, false, NaN, -Infinity, Infinity, -0.0, 0.1, 100.0, 3.14159]"
 ],
 [
  "{\"a\": {\"b\": {\"c\": 1.0}}}",
  "{\"a\": {\"b\": {\"c\": 1.0}}}"
 ],
 [
  " 1234567.125 ",
  "1234567.125"
 ],
 [
  "[1e21, 1e-7, 5e-324, 1.7976931348623157e308, 0.3, 123e-2, 0.000123]",
  "[1e+21, 1e-07, 5e-324, 1.7976931348623157e+308, 0.3, 1.23, 0.000123]"
 ],
 [
  "{\"__SERIALIZATION_METADATA__\": {}, \"count\": 3, \"chat\": [{\"role\": \"user\", \"content\": \"ça va?\"}]}",
  "{\"__SERIALIZATION_METADATA__\": {}, \"count\": 3, \"chat\": [{\"role\": \"user\", \"content\": \"\\u00e7a va?\"}]}"
 ],
 [
  "{}",
  "{}"
 ],
 [
  "[]",
  "[]"
 ],
 [
  "\"\"",
  "\"\""
 ]
];

describe("pythonJsonDumps", () => {
  it.each(fromPython)("writes %j as Python does", (text, expected) => {
    expect(pythonJsonDumps(text)).toBe(expected);
  });

  it("keeps a PostgreSQL jsonb text's key order (not JavaScript's, which puts integer keys first)", () => {
    expect(pythonJsonDumps('{"b": 1, "10": 2, "a": 3}')).toBe('{"b": 1, "10": 2, "a": 3}');
  });

  it.each(["", "{", '{"a" 1}', "[1,]", "01", '"\\x"', "nul", "1 2"])("refuses %j", (text) => {
    expect(() => pythonJsonDumps(text)).toThrow(/not JSON/);
  });
});

describe("pythonFloat", () => {
  it.each([
    [1, "1.0"],
    [0.1, "0.1"],
    [1e16, "1e+16"],
    [1e15, "1000000000000000.0"],
    [0.0001, "0.0001"],
    [0.00001, "1e-05"],
    [-1.5e-7, "-1.5e-07"],
    [123.456, "123.456"],
    [-0, "-0.0"],
  ])("%p is %s", (x, repr) => {
    expect(pythonFloat(x)).toBe(repr);
  });
});
