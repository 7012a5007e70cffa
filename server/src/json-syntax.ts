/**
 * Where a JSON text goes wrong, without quoting it. JSON.parse's messages quote the text around
 * the error (in a token file: the token) and some give no position at all; this reports what is
 * wrong and its line and column only, so that the message may be logged.
 */
export interface JsonSyntaxError {
  problem: string;
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units. */
  column: number;
}

const maxDepth = 512;

class Failure {
  constructor(
    readonly problem: string,
    readonly offset: number,
  ) {}
}

/** The first syntax error in `text`, or null when it is valid JSON. */
export function jsonSyntaxError(text: string): JsonSyntaxError | null {
  let i = 0;
  const fail = (problem: string, at = i): never => {
    throw new Failure(i >= text.length && at >= text.length ? "the text ends too early" : problem, at);
  };
  const space = () => {
    while (i < text.length && " \t\n\r".includes(text[i]!)) i++;
  };
  const digits = () => {
    const from = i;
    while (i < text.length && text[i]! >= "0" && text[i]! <= "9") i++;
    if (i === from) fail("a malformed number");
  };
  const string = () => {
    const from = i;
    i++; // the opening quote
    for (;;) {
      if (i >= text.length) fail("an unterminated string", from);
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return;
      }
      if (c < 0x20) fail("a control character in a string (write it as an escape)");
      if (c === 0x5c) {
        const escape = text[i + 1];
        if (escape === "u") {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) fail("a malformed \\u escape");
          i += 6;
        } else if (escape !== undefined && '"\\/bfnrt'.includes(escape)) i += 2;
        else fail("an invalid escape in a string");
      } else i++;
    }
  };
  const value = (depth: number): void => {
    space();
    if (depth > maxDepth) fail(`more than ${maxDepth} levels of nesting`);
    const c = text[i];
    if (c === "{") {
      i++;
      space();
      if (text[i] === "}") {
        i++;
        return;
      }
      for (;;) {
        space();
        if (text[i] !== '"') fail("expected a property name in double quotes");
        string();
        space();
        if (text[i] !== ":") fail("expected ':' after a property name");
        i++;
        value(depth + 1);
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "}") {
          i++;
          return;
        } else fail("expected ',' or '}' after a property value");
      }
    }
    if (c === "[") {
      i++;
      space();
      if (text[i] === "]") {
        i++;
        return;
      }
      for (;;) {
        value(depth + 1);
        space();
        if (text[i] === ",") i++;
        else if (text[i] === "]") {
          i++;
          return;
        } else fail("expected ',' or ']' after an array element");
      }
    }
    if (c === '"') return string();
    if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
      if (c === "-") i++;
      if (text[i] === "0") i++;
      else digits();
      if (text[i] === ".") {
        i++;
        digits();
      }
      if (text[i] === "e" || text[i] === "E") {
        i++;
        if (text[i] === "+" || text[i] === "-") i++;
        digits();
      }
      return;
    }
    for (const literal of ["true", "false", "null"]) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return;
      }
    }
    fail("an unexpected character (strings need double quotes)");
  };
  try {
    value(0);
    space();
    if (i < text.length) fail("unexpected text after the JSON value");
    return null;
  } catch (error) {
    if (!(error instanceof Failure)) throw error;
    const before = text.slice(0, error.offset);
    const lastNewline = before.lastIndexOf("\n");
    return { problem: error.problem, line: before.split("\n").length, column: error.offset - lastNewline };
  }
}

/** JSON.parse, whose error names the problem and its line and column, never the text. */
export function parseJsonQuietly(text: string, source: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    const error = jsonSyntaxError(text);
    // (Should this scanner ever accept what JSON.parse refuses, still say nothing of the text.)
    const where = error ? `${error.problem} at line ${error.line}, column ${error.column}` : "a syntax error";
    throw new Error(`${source} is not JSON: ${where}`);
  }
}
