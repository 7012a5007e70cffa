/**
 * Just enough of Docker's file formats for tests/container: a Dockerfile's instructions grouped
 * in stages, and .dockerignore's patterns. Not a general implementation: what this repository's
 * files use, read the way the Docker builder reads it, and an error for anything else.
 */

export interface Instruction {
  /** Upper case: FROM, RUN, COPY, ENV, ... */
  keyword: string;
  /** Leading --name=value options (FROM, COPY, RUN, HEALTHCHECK). */
  flags: Record<string, string>;
  /** The rest, continuation lines joined with a space. */
  args: string;
  /** The exec (JSON array) form, when the arguments are one. */
  exec: string[] | null;
  /** 1-based line where the instruction starts. */
  line: number;
}

export interface Stage {
  image: string;
  name: string | null;
  /** FROM itself excluded. */
  instructions: Instruction[];
}

/** Parser directives and comments are dropped; a trailing backslash continues the instruction. */
export function parseDockerfile(text: string): { stages: Stage[]; instructions: Instruction[] } {
  const instructions: Instruction[] = [];
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let line = lines[i].trim();
    if (line === "" || line.startsWith("#")) continue;
    const parts: string[] = [];
    // Docker removes comment lines (and tolerates empty ones) inside a continued instruction.
    while (line.endsWith("\\")) {
      parts.push(line.slice(0, -1).trim());
      do i++;
      while (i < lines.length && (lines[i].trim() === "" || lines[i].trim().startsWith("#")));
      if (i >= lines.length) throw new Error(`line ${start + 1}: the file ends inside a continued instruction`);
      line = lines[i].trim();
    }
    parts.push(line);
    const joined = parts.filter((part) => part !== "").join(" ");
    const match = /^([A-Za-z]+)(?:\s+([\s\S]*))?$/.exec(joined);
    if (!match) throw new Error(`line ${start + 1}: not an instruction: ${joined}`);
    let rest = match[2] ?? "";
    const flags: Record<string, string> = {};
    for (let flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest); flag; flag = /^--([a-z-]+)=(\S+)\s*/.exec(rest)) {
      flags[flag[1]] = flag[2];
      rest = rest.slice(flag[0].length);
    }
    instructions.push({ keyword: match[1].toUpperCase(), flags, args: rest, exec: execForm(rest), line: start + 1 });
  }
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(instruction.args);
      if (!from) throw new Error(`line ${instruction.line}: FROM ${instruction.args}`);
      stages.push({ image: from[1], name: from[2] ?? null, instructions: [] });
    } else if (stages.length === 0) {
      if (instruction.keyword !== "ARG") throw new Error(`line ${instruction.line}: ${instruction.keyword} before the first FROM`);
    } else stages[stages.length - 1].instructions.push(instruction);
  }
  return { stages, instructions };
}

function execForm(args: string): string[] | null {
  if (!args.startsWith("[")) return null;
  try {
    const value: unknown = JSON.parse(args);
    return Array.isArray(value) && value.every((item) => typeof item === "string") ? value : null;
  } catch {
    return null;
  }
}

/** ENV's KEY=VALUE pairs (quotes removed, backslash escapes kept literal), or its old `KEY VALUE` form. */
export function envPairs(args: string): Array<[string, string]> {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(args)) {
    const old = /^([A-Za-z_][A-Za-z0-9_]*)\s+([\s\S]*)$/.exec(args);
    if (!old) throw new Error(`ENV ${args}`);
    return [[old[1], old[2]]];
  }
  const pairs: Array<[string, string]> = [];
  let rest = args.trim();
  while (rest !== "") {
    const key = /^([A-Za-z_][A-Za-z0-9_]*)=/.exec(rest);
    if (!key) throw new Error(`ENV: cannot read ${JSON.stringify(rest)}`);
    rest = rest.slice(key[0].length);
    let value = "";
    while (rest !== "" && !/^\s/.test(rest)) {
      const quote = rest[0];
      if (quote === '"' || quote === "'") {
        const end = rest.indexOf(quote, 1);
        if (end < 0) throw new Error(`ENV ${key[1]}: unclosed quote`);
        value += rest.slice(1, end);
        rest = rest.slice(end + 1);
      } else {
        value += rest[0];
        rest = rest.slice(1);
      }
    }
    if (value.includes("$")) throw new Error(`ENV ${key[1]}: variable substitution is not read by this parser`);
    pairs.push([key[1], value]);
    rest = rest.trimStart();
  }
  return pairs;
}

/** The environment a stage's later instructions see: its ENV lines in order. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {};
  for (const instruction of stage.instructions) {
    if (instruction.keyword === "ENV") for (const [key, value] of envPairs(instruction.args)) env[key] = value;
  }
  return env;
}

/** COPY's sources and destination (shell or exec form). */
export function copyPaths(instruction: Instruction): { sources: string[]; destination: string } {
  const words = instruction.exec ?? instruction.args.split(/\s+/).filter(Boolean);
  if (words.length < 2) throw new Error(`line ${instruction.line}: COPY needs a source and a destination`);
  return { sources: words.slice(0, -1), destination: words[words.length - 1] };
}

/** HEALTHCHECK's flags in milliseconds (Go durations such as 10s, 1m30s, 500ms). */
export function durationMs(text: string): number {
  let total = 0;
  let rest = text;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  while (rest !== "") {
    const part = /^(\d+(?:\.\d+)?)(ms|s|m|h)/.exec(rest);
    if (!part) throw new Error(`not a duration: ${text}`);
    total += Number(part[1]) * units[part[2]];
    rest = rest.slice(part[0].length);
  }
  return total;
}

/**
 * .dockerignore: is `file` (a path relative to the context, with / separators) left out?
 * Later lines win; `!` re-includes; a pattern that matches a directory leaves out all under it;
 * `*` and `?` stay within one path segment, `**` spans any number of them.
 */
export function dockerIgnored(patterns: string, file: string): boolean {
  const rules = patterns
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line !== "" && !line.startsWith("#"))
    .map((line) => {
      const negated = line.startsWith("!");
      const pattern = (negated ? line.slice(1) : line).trim().replace(/^\/+/, "").replace(/\/+$/, "");
      return { negated, regex: globRegex(pattern) };
    });
  const segments = file.split("/");
  const prefixes = segments.map((_, i) => segments.slice(0, i + 1).join("/"));
  let ignored = false;
  for (const rule of rules) {
    if (prefixes.some((prefix) => rule.regex.test(prefix))) ignored = !rule.negated;
  }
  return ignored;
}

function globRegex(pattern: string): RegExp {
  let source = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (pattern.startsWith("**/", i)) {
      source += "(?:.*/)?";
      i += 2;
    } else if (pattern.startsWith("**", i)) {
      source += ".*";
      i += 1;
    } else if (c === "*") source += "[^/]*";
    else if (c === "?") source += "[^/]";
    else if (c === "[" || c === "\\") throw new Error(`.dockerignore: ${pattern}: character classes and escapes are not read by this parser`);
    else source += c.replace(/[.+^${}()|]/g, "\\$&");
  }
  return new RegExp(`^${source}$`);
}
