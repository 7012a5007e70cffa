/**
 * Every example in README.md, extracted and run verbatim against a freshly started `npm start`
 * (the default store, on 127.0.0.1:50051, as a new user would have it):
 *   sh      run with bash from the repository root (the Python install block makes .venv there)
 *   ts      written to files, type-checked with tsc against the built packages, run with tsx
 *   python  run with the .venv the README's install block made, twice (the second run resumes)
 *   json    parsed (a tokens file must be one the server accepts)
 *   text    diagrams: not code
 * A block that cannot run here says so in its fence: ```sh not-run: <why>. Any other language
 * fails the test, so a new kind of example cannot go unrun.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import { promisify } from "node:util";
import { TokenAuthority } from "../../server/src/auth";
import { repoRoot } from "../support/server-process";

const run = promisify(execFile);

interface Example {
  language: string;
  notRun?: string;
  code: string;
  line: number;
}

function examples(markdown: string): Example[] {
  const found: Example[] = [];
  // Fences may be indented (inside a list item); the code loses that indentation.
  const fence = /^( *)```(\w*)([^\n]*)\n([\s\S]*?)^\1```\s*$/gm;
  for (let match = fence.exec(markdown); match; match = fence.exec(markdown)) {
    const indent = match[1]!;
    const notRun = /^not-run:\s*(.+)$/.exec(match[3]!.trim())?.[1];
    const code = match[4]!.split("\n").map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line)).join("\n");
    found.push({ language: match[2]!, notRun, code, line: markdown.slice(0, match.index).split("\n").length });
  }
  return found;
}

const readme = examples(fs.readFileSync(path.join(repoRoot, "README.md"), "utf8"));
const byLanguage = (language: string) => readme.filter((example) => example.language === language && !example.notRun);
const workDir = path.join(repoRoot, "tests/docs/.examples");
const defaultDb = path.join(repoRoot, "burr_state.db");
const venvPython = path.join(repoRoot, ".venv/bin/python");

let server: ChildProcess;

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(false);
    });
    socket.once("error", () => resolve(true));
  });
}

/** `npm start` with no settings of ours (BURR_* cleared), until its "started" line. */
async function npmStart(): Promise<ChildProcess> {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith("BURR_")));
  const child = spawn("npm", ["start"], { cwd: repoRoot, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const logs: string[] = [];
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`npm start did not serve in 120 s:\n${logs.join("")}`)), 120_000);
    const watch = (data: Buffer) => {
      logs.push(data.toString());
      if (/"event":"started"/.test(data.toString())) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", watch);
    child.stderr!.on("data", watch);
    child.once("exit", (code) => reject(new Error(`npm start exited with ${code}:\n${logs.join("")}`)));
  });
  return child;
}

beforeAll(async () => {
  expect(await portFree(50051)).toBe(true); // the README's examples talk to the default port
  // The default store is ./burr_state.db in the repository: never touch a file someone already has there.
  expect(fs.existsSync(defaultDb) ? `${defaultDb} exists: move it away to run this test` : "").toBe("");
  fs.rmSync(workDir, { recursive: true, force: true });
  fs.mkdirSync(workDir, { recursive: true });
  server = await npmStart();
}, 180_000);

afterAll(() => {
  if (server?.pid) process.kill(-server.pid, "SIGTERM"); // npm and the node process it started
  for (const suffix of ["", "-wal", "-shm"]) fs.rmSync(`${defaultDb}${suffix}`, { force: true });
  fs.rmSync(workDir, { recursive: true, force: true });
});

test("every example is of a kind this test runs, and every skipped one says why", () => {
  const kinds = new Set(["sh", "ts", "python", "json", "text"]);
  expect(readme.filter((example) => !kinds.has(example.language)).map((e) => `line ${e.line}: ${e.language || "(no language)"}`)).toEqual([]);
  expect(readme.filter((example) => example.notRun !== undefined && example.notRun.length < 10)).toEqual([]);
  expect(byLanguage("sh").length + byLanguage("ts").length + byLanguage("python").length).toBeGreaterThanOrEqual(8);
});

describe("shell examples", () => {
  test.each(byLanguage("sh").map((example) => [example.line, example]))("README.md line %i runs", async (_line, example) => {
    const { stdout } = await run("bash", ["-euo", "pipefail", "-c", example.code], { cwd: repoRoot, timeout: 300_000, maxBuffer: 64 * 1024 * 1024 });
    if (example.code.includes("StatePersister/Load")) expect(stdout).toContain('"appId": "demo"');
    if (example.code.includes("Health/Check")) expect(stdout).toContain("SERVING");
    if (example.code.includes(" import --from")) expect(stdout).toMatch(/written 2, already present 0[\s\S]*written 0, already present 2/);
  }, 300_000);
});

describe("TypeScript examples", () => {
  const files = byLanguage("ts").map((example) => ({ example, file: path.join(workDir, `readme-line-${example.line}.mts`) }));

  beforeAll(() => {
    for (const { example, file } of files) fs.writeFileSync(file, example.code);
    fs.writeFileSync(
      path.join(workDir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { module: "nodenext", target: "es2022", strict: true, noEmit: true, skipLibCheck: true, types: ["node"] }, include: ["*.mts"] }),
    );
  });

  test("they type-check against the built packages", async () => {
    await run(path.join(repoRoot, "node_modules/.bin/tsc"), ["-p", path.join(workDir, "tsconfig.json")], { cwd: workDir }).catch((error: { stdout?: string }) => {
      throw new Error(`tsc: ${error.stdout}`);
    });
  }, 120_000);

  test.each(files.map(({ example, file }) => [example.line, file]))("README.md line %i runs", async (_line, file) => {
    const { stdout } = await run(path.join(repoRoot, "node_modules/.bin/tsx"), [file], { cwd: workDir, timeout: 60_000 });
    expect(stdout.length).toBeGreaterThan(0);
  }, 90_000);
});

describe("Python examples", () => {
  test.each(byLanguage("python").map((example) => [example.line, example]))(
    "README.md line %i runs with the package the README installs, and resumes on a second run",
    async (_line, example) => {
      expect(fs.existsSync(venvPython) ? "" : "the README's install block did not make .venv").toBe("");
      const file = path.join(workDir, `readme-line-${example.line}.py`);
      fs.writeFileSync(file, example.code);
      const first = await run(venvPython, [file], { cwd: workDir, timeout: 60_000 });
      const second = await run(venvPython, [file], { cwd: workDir, timeout: 60_000 });
      if (/count/.test(example.code)) expect([first.stdout.trim(), second.stdout.trim()]).toEqual(["1", "2"]);
    },
    120_000,
  );
});

describe("JSON examples", () => {
  test.each(byLanguage("json").map((example) => [example.line, example]))("README.md line %i parses (a tokens file: as the server reads it)", (_line, example) => {
    const document = JSON.parse(example.code.replace("<hex SHA-256 of the token>", "0".repeat(64))) as { tokens?: unknown };
    if (document.tokens) expect(TokenAuthority.parse(JSON.stringify(document), "README").grants.length).toBeGreaterThan(0);
  });
});
