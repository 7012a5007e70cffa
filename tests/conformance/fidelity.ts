/** States that a store which parses and re-serializes JSON would change. Each must come back byte for byte. */
const text = (value: string) => new Uint8Array(Buffer.from(value, "utf8"));

export const fidelityCases: Array<[string, Uint8Array]> = [
  // What Python's json.dumps writes for Burr states.
  ["integers beyond 2^63", text('{"big": 18446744073709551616, "huge": 1000000000000000000000000000000, "neg": -9223372036854775809}')],
  ["floats in repr form", text('{"one": 1.0, "negzero": -0.0, "exp": 1e+20, "tiny": 5e-324, "pi": 3.141592653589793}')],
  ["NaN and Infinity tokens", text('{"nan": NaN, "inf": Infinity, "ninf": -Infinity}')],
  ["key order with integer-like keys", text('{"b": 1, "a": 2, "10": 3, "2": 4, "__SEQUENCE_ID": 7, "__PRIOR_STEP": "x"}')],
  ["\\u0000 and other escapes", text('{"nul": "a\\u0000b", "ctl": "\\u0001\\u001f", "quote": "\\"", "slash": "\\/"}')],
  ["non-ASCII as \\u escapes", text('{"s": "\\u00e9\\u4e2d\\ud83d\\ude00", "lone": "\\ud800"}')],
  ["raw non-ASCII UTF-8", text('{"s": "é中😀 ünïcödé"}')],
  ["whitespace that JSON.stringify would drop", text('{ "a" :  [1 ,2 ] }\n')],
  ["duplicate keys", text('{"a": 1, "a": 2}')],
  ["serde markers", text('{"m": {"__burr_serde__": "pydantic", "value": {"__burr_serde__": "langchain", "x": 1.0}}}')],
  ["not JSON at all", new Uint8Array([0xff, 0xfe, 0x00, 0x80, 0xc3, 0x28, 0xed, 0xa0, 0x80])],
  ["empty", new Uint8Array(0)],
];

/** A large state of every byte value. */
export function bigState(bytes: number): Uint8Array {
  const state = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) state[i] = (i * 2654435761) >>> 24;
  return state;
}
