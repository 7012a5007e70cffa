/**
 * A reader for the part of YAML that docker-compose.yml uses (the repository has no YAML
 * package): block mappings and sequences by indentation, `[a, "b"]` flow sequences, plain,
 * single- and double-quoted scalars, comments. Anchors, aliases, tags, block scalars (| >), flow
 * mappings, multi-line scalars and duplicate keys are errors, so the compose file stays in this
 * regular shape. Plain scalars follow YAML 1.2's core schema (null, true/false, integers, floats).
 */
export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line {
  indent: number;
  text: string;
  number: number;
}

export function readYaml(source: string): YamlValue {
  const lines: Line[] = [];
  source.split("\n").forEach((raw, i) => {
    if (raw.includes("\t")) throw new Error(`line ${i + 1}: tabs`);
    const text = stripComment(raw).trimEnd();
    if (text.trim() === "") return;
    if (/^(---|\.\.\.)\s*$/.test(text)) throw new Error(`line ${i + 1}: multiple documents`);
    lines.push({ indent: text.length - text.trimStart().length, text: text.trimStart(), number: i + 1 });
  });
  if (lines.length === 0) return null;
  const reader = new Reader(lines);
  const value = reader.block(lines[0].indent);
  if (reader.at < lines.length) throw new Error(`line ${lines[reader.at].number}: unexpected indentation`);
  return value;
}

/** `#` starts a comment at a line's start or after a space, outside quotes. */
function stripComment(line: string): string {
  let quote: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (quote) {
      if (c === "\\" && quote === '"') i++;
      else if (c === quote) quote = null;
    } else if (c === '"' || c === "'") {
      if (i === 0 || /[\s[,:-]/.test(line[i - 1])) quote = c;
    } else if (c === "#" && (i === 0 || /\s/.test(line[i - 1]))) return line.slice(0, i);
  }
  return line;
}

class Reader {
  at = 0;

  constructor(private readonly lines: Line[]) {}

  block(indent: number): YamlValue {
    const first = this.lines[this.at];
    return first.text === "-" || first.text.startsWith("- ") ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const items: YamlValue[] = [];
    while (this.at < this.lines.length && this.lines[this.at].indent === indent && /^-( |$)/.test(this.lines[this.at].text)) {
      const line = this.lines[this.at++];
      const rest = line.text.slice(1).trim();
      if (rest === "") items.push(this.nested(indent, line, true));
      else if (keyValue(rest)) throw new Error(`line ${line.number}: a mapping inside a sequence item is not read by this reader`);
      else items.push(scalar(rest, line.number));
    }
    return items;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const map: { [key: string]: YamlValue } = {};
    while (this.at < this.lines.length && this.lines[this.at].indent === indent) {
      const line = this.lines[this.at];
      if (/^-( |$)/.test(line.text)) break;
      const entry = keyValue(line.text);
      if (!entry) throw new Error(`line ${line.number}: expected "key: value", got ${JSON.stringify(line.text)}`);
      if (Object.prototype.hasOwnProperty.call(map, entry.key)) throw new Error(`line ${line.number}: duplicate key ${entry.key}`);
      this.at++;
      map[entry.key] = entry.value === "" ? this.nested(indent, line, false) : scalar(entry.value, line.number);
    }
    return map;
  }

  /** The value under `parent`: a deeper block, a sequence at the same indent (after a key), or null. */
  private nested(indent: number, parent: Line, inSequence: boolean): YamlValue {
    const next = this.lines[this.at];
    if (!next) return null;
    if (next.indent > indent) return this.block(next.indent);
    if (!inSequence && next.indent === indent && /^-( |$)/.test(next.text)) return this.sequence(indent);
    void parent;
    return null;
  }
}

function keyValue(text: string): { key: string; value: string } | null {
  let key: string;
  let rest: string;
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = closingQuote(text, 0);
    key = scalar(text.slice(0, end + 1), 0) as string;
    rest = text.slice(end + 1);
    if (!rest.startsWith(":")) return null;
  } else {
    const colon = /:(\s|$)/.exec(text);
    if (!colon || text.startsWith("[") || text.startsWith("{")) return null;
    key = text.slice(0, colon.index);
    rest = text.slice(colon.index);
  }
  if (/^[&*!|>?%@`]/.test(key)) throw new Error(`unsupported key ${key}`);
  return { key, value: rest.slice(1).trim() };
}

function closingQuote(text: string, start: number): number {
  const quote = text[start];
  for (let i = start + 1; i < text.length; i++) {
    if (quote === '"' && text[i] === "\\") i++;
    else if (text[i] === quote) {
      if (quote === "'" && text[i + 1] === "'") i++;
      else return i;
    }
  }
  throw new Error(`unclosed quote in ${text}`);
}

function scalar(text: string, line: number): YamlValue {
  if (/^[&*!|>%@`{]/.test(text)) throw new Error(`line ${line}: ${JSON.stringify(text)} is not read by this reader`);
  if (text.startsWith('"') || text.startsWith("'")) {
    const end = closingQuote(text, 0);
    if (end !== text.length - 1) throw new Error(`line ${line}: text after a quoted scalar`);
    return text.startsWith('"') ? (JSON.parse(text) as string) : text.slice(1, -1).replace(/''/g, "'");
  }
  if (text.startsWith("[")) {
    if (!text.endsWith("]")) throw new Error(`line ${line}: a flow sequence must end on its line`);
    const items: YamlValue[] = [];
    let rest = text.slice(1, -1).trim();
    while (rest !== "") {
      let item: string;
      if (rest.startsWith('"') || rest.startsWith("'")) {
        const end = closingQuote(rest, 0);
        item = rest.slice(0, end + 1);
        rest = rest.slice(end + 1).trim();
      } else {
        const comma = rest.indexOf(",");
        item = (comma < 0 ? rest : rest.slice(0, comma)).trim();
        rest = comma < 0 ? "" : rest.slice(comma);
      }
      if (/^[[{]/.test(item)) throw new Error(`line ${line}: nested flow collections are not read by this reader`);
      items.push(scalar(item, line));
      if (rest.startsWith(",")) rest = rest.slice(1).trim();
      else if (rest !== "") throw new Error(`line ${line}: expected "," in ${text}`);
    }
    return items;
  }
  if (/^(null|Null|NULL|~)$/.test(text)) return null;
  if (/^(true|True|TRUE)$/.test(text)) return true;
  if (/^(false|False|FALSE)$/.test(text)) return false;
  // Words YAML 1.1 (PyYAML, older Compose) reads as booleans: quote them.
  if (/^(yes|no|on|off|y|n)$/i.test(text)) throw new Error(`line ${line}: quote ${text}: YAML 1.1 readers take it for a boolean`);
  if (/^[-+]?\d+$/.test(text)) return Number(text);
  if (/^[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?$/.test(text)) return Number(text);
  if (/^\d+(:\d+)+$/.test(text)) throw new Error(`line ${line}: quote ${text}: YAML 1.1 readers take it for a base-60 number`);
  return text;
}
