/**
 * Python's `json.dumps(json.loads(text))` for a JSON text, in TypeScript: the exact state bytes
 * the Python persister writes for a state Burr read from `text`. Burr's PostgreSQL table keeps
 * states as jsonb, whose text differs from what Burr wrote (separators, escapes, key order);
 * a state read back from it and saved again by the Python persister gets these bytes.
 *
 * As in Python: objects keep their keys' first positions and last values, integers keep all
 * their digits, other numbers become doubles written as Python's repr writes them (1.0, 1e-05,
 * 1e+16, Infinity), strings are escaped to ASCII (\uXXXX, lower case), separators are ", " and ": ".
 */

type Value = string | number | bigint | boolean | null | Value[] | Map<string, Value> | { int: string } | { float: number };

const maxDepth = 10_000;

export function pythonJsonDumps(text: string): string {
  return dump(parse(text));
}

function parse(text: string): Value {
  let i = 0;
  const fail = (what: string): never => {
    throw new Error(`not JSON: ${what} at offset ${i}`);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const literal = (word: string, value: Value): Value => {
    if (!text.startsWith(word, i)) fail("an unexpected character");
    i += word.length;
    return value;
  };
  const string = (): string => {
    i++; // the opening quote
    let out = "";
    for (;;) {
      const c = text[i];
      if (c === undefined) fail("an unterminated string");
      if (c === '"') break;
      if (c === "\\") {
        const e = text[i + 1];
        const simple: Record<string, string> = { '"': '"', "\\": "\\", "/": "/", b: "\b", f: "\f", n: "\n", r: "\r", t: "\t" };
        if (e === "u") {
          const hex = text.slice(i + 2, i + 6);
          if (!/^[0-9a-fA-F]{4}$/.test(hex)) fail("a bad \\u escape");
          out += String.fromCharCode(parseInt(hex, 16));
          i += 6;
        } else if (e !== undefined && e in simple) {
          out += simple[e];
          i += 2;
        } else fail("a bad escape");
      } else {
        if (c < " ") fail("a control character in a string");
        out += c;
        i++;
      }
    }
    i++;
    return out;
  };
  const number = (): Value => {
    const match = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 1_000_000));
    if (!match) return fail("an unexpected character");
    i += match[0].length;
    return match[2] === undefined && match[3] === undefined ? { int: match[0] } : { float: Number(match[0]) };
  };
  const value = (depth: number): Value => {
    if (depth > maxDepth) fail("nesting too deep");
    space();
    const c = text[i];
    if (c === "{") {
      i++;
      const object = new Map<string, Value>();
      space();
      if (text[i] === "}") return i++, object;
      for (;;) {
        space();
        if (text[i] !== '"') fail("a key that is not a string");
        const key = string();
        space();
        if (text[i] !== ":") fail("a missing ':'");
        i++;
        object.set(key, value(depth + 1)); // a repeated key: its first place, its last value (as a Python dict)
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") return i++, object;
        else fail("a missing ',' or '}'");
      }
    }
    if (c === "[") {
      i++;
      const array: Value[] = [];
      space();
      if (text[i] === "]") return i++, array;
      for (;;) {
        array.push(value(depth + 1));
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") return i++, array;
        else fail("a missing ',' or ']'");
      }
    }
    if (c === '"') return string();
    if (c === "t") return literal("true", true);
    if (c === "f") return literal("false", false);
    if (c === "n") return literal("null", null);
    // Python's json.loads also reads these (Burr's SQLite and Redis layouts may hold them).
    if (c === "N") return literal("NaN", { float: NaN });
    if (c === "I") return literal("Infinity", { float: Infinity });
    if (c === "-" && text.startsWith("-Infinity", i)) return literal("-Infinity", { float: -Infinity });
    return number();
  };
  const result = value(0);
  space();
  if (i < text.length) fail("text after the value");
  return result;
}

function dump(value: Value): string {
  if (value === null) return "null";
  if (value === true) return "true";
  if (value === false) return "false";
  if (typeof value === "string") return pythonString(value);
  if (Array.isArray(value)) return `[${value.map(dump).join(", ")}]`;
  if (value instanceof Map) return `{${[...value].map(([key, item]) => `${pythonString(key)}: ${dump(item)}`).join(", ")}}`;
  if (typeof value === "object" && "int" in value) return value.int === "-0" ? "0" : value.int;
  if (typeof value === "object" && "float" in value) return pythonFloat(value.float);
  throw new Error(`unexpected value ${String(value)}`);
}

const escapes: Record<string, string> = { '"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f" };

/** json.dumps with ensure_ascii: everything outside ' '..'~' as \uXXXX of its UTF-16 units. */
export function pythonString(text: string): string {
  return `"${text.replace(/[\\"]|[^ -~]/g, (c) => escapes[c] ?? `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}"`;
}

/** Python's repr of a float (also what json.dumps writes). */
export function pythonFloat(x: number): string {
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "Infinity";
  if (x === -Infinity) return "-Infinity";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  // toExponential() gives the shortest digits that read back as x, as Python's repr uses.
  const [mantissa, exponent] = Math.abs(x).toExponential().split("e") as [string, string];
  const digits = mantissa.replace(".", "");
  const point = Number(exponent) + 1; // where the decimal point goes, counted from the first digit
  const sign = x < 0 ? "-" : "";
  if (point > -4 && point <= 16) {
    if (point <= 0) return `${sign}0.${"0".repeat(-point)}${digits}`;
    if (point >= digits.length) return `${sign}${digits}${"0".repeat(point - digits.length)}.0`;
    return `${sign}${digits.slice(0, point)}.${digits.slice(point)}`;
  }
  const e = point - 1;
  const fraction = digits.length > 1 ? `.${digits.slice(1)}` : "";
  return `${sign}${digits[0]}${fraction}e${e < 0 ? "-" : "+"}${String(Math.abs(e)).padStart(2, "0")}`;
}
