/**
 * No secret reaches a log line: tokens in malformed auth files (at start and on SIGHUP) and in a
 * malformed BURR_AUTH_TOKENS, and passwords in store URLs (PostgreSQL userinfo, `pa/ss@`,
 * `?password=`, Redis, MongoDB) whether the store answers, refuses them or cannot be reached.
 * Every line the server writes, on stderr and stdout, is searched for every piece of each secret.
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { repoRoot, serverScript } from "../support/server-process";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-log-secrets-"));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

const postgresUrl = new URL(process.env.BURR_TEST_POSTGRES_URL ?? "postgres://burr:burr@127.0.0.1:55432/burr");
const redisUrl = new URL(process.env.BURR_TEST_REDIS_URL ?? "redis://127.0.0.1:56379");
const mongoUrl = new URL(process.env.BURR_TEST_MONGO_URL ?? "mongodb://127.0.0.1:57017/burr");

/** A secret nothing else in a log could contain by chance (the label only tells them apart here). */
const secret = (_label: string) => `Zq${randomBytes(12).toString("hex")}Xv`;

/** No 5-character piece of the secret (a token's first characters included) is in the text. */
function expectNoPieceOf(text: string, secrets: string[]) {
  for (const s of secrets) {
    const pieces = Array.from({ length: s.length - 4 }, (_, i) => s.slice(i, i + 5));
    const leaked = pieces.filter((piece) => text.includes(piece));
    expect({ secret: s, leaked }).toEqual({ secret: s, leaked: [] });
  }
}

interface Run {
  /** Every line on stderr and stdout. */
  lines: string[];
  exitCode: number | null;
}

/**
 * Runs the server with these arguments until it exits or has started and `then` is done (it is
 * then stopped with SIGTERM). Stdout and stderr are both captured.
 */
async function runServer(args: string[], env: NodeJS.ProcessEnv = {}, then?: (address: string, running: { lines: string[]; pid: number }) => Promise<void>): Promise<Run> {
  const child = spawn(process.execPath, [path.join(repoRoot, serverScript), "--listen", "127.0.0.1:0", ...args], {
    cwd: repoRoot,
    // A store that cannot be reached is given up on after a second (the default waits longer).
    env: { ...process.env, BURR_AUTH_TOKENS: undefined, BURR_STORE: undefined, BURR_STORE_START_TIMEOUT_MS: "1000", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const run: Run = { lines: [], exitCode: null };
  let started: (port: number) => void = () => {};
  const port = new Promise<number>((resolve) => (started = resolve));
  for (const stream of [child.stdout!, child.stderr!]) {
    let buffered = "";
    stream.setEncoding("utf8");
    stream.on("data", (data: string) => {
      buffered += data;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        run.lines.push(line);
        if (line.includes('"event":"started"')) started(JSON.parse(line).port as number);
      }
    });
    stream.on("end", () => buffered && run.lines.push(buffered));
  }
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  const first = await Promise.race([port, exited.then(() => null)]);
  if (first !== null) {
    try {
      await then?.(`127.0.0.1:${first}`, { lines: run.lines, pid: child.pid! });
    } finally {
      child.kill("SIGTERM");
    }
  }
  run.exitCode = await exited;
  return run;
}

/** A call of each kind, so that whatever the store answers is logged as it would be. */
async function exercise(address: string) {
  const client = new GrpcStatePersister({ address, codec: rawCodec, deadlineMs: 8000, retry: { attempts: 1 } });
  await Promise.allSettled([
    client.isInitialized(),
    client.save({ appId: "a", sequenceId: 0, position: "p", state: new Uint8Array([1]), status: "completed" }),
    client.load({ appId: "a" }),
    client.listAppIds(),
  ]);
  await client.close();
}

const token = (value: string) => ({ name: "t", token: value, partitions: ["*"], access: "read-write" });

/** Auth documents that are not JSON, each broken right at or just after the token. */
const malformed = (value: string) => [
  // The parser's own message quotes the text around the error.
  `{"tokens": [{"name": "t", "token": ${value}, "partitions": ["*"], "access": "read"}]}`,
  `{"tokens": [{"name": "t", "token": "${value}" "partitions": ["*"]}]}`,
  `{"tokens": [{"name": "t", "token": "${value}\t", "partitions": ["*"]}]}`,
  `{"tokens": [{"name": "t", "token": "${value}`,
  `{"tokens": [{"name": "t",\n  "token": "${value}\\x"}]}`,
  `{"tokens": [{"name": "t", "token": "${value}"}]} ${value}`,
];

describe("auth files and BURR_AUTH_TOKENS that are not JSON", () => {
  test("at start: the server exits naming the line and column, and no piece of the token", async () => {
    const value = secret("startfile");
    for (const [index, text] of malformed(value).entries()) {
      const file = path.join(dir, `start-${index}.json`);
      fs.writeFileSync(file, text);
      const run = await runServer(["--store", "sqlite::memory:", "--auth-file", file]);
      expect(run.exitCode).not.toBe(0);
      const failure = run.lines.find((line) => line.includes('"event":"start_failed"'));
      expect(failure).toMatch(/is not JSON: .*line \d+, column \d+/);
      expectNoPieceOf(run.lines.join("\n"), [value]);
    }
  });

  test("the line and column point at the error", async () => {
    const value = secret("position");
    const file = path.join(dir, "position.json");
    fs.writeFileSync(file, `{\n  "tokens": [\n    {"name": "t", "token": ${value}}\n  ]\n}\n`);
    const run = await runServer(["--store", "sqlite::memory:", "--auth-file", file]);
    expect(run.lines.find((line) => line.includes('"event":"start_failed"'))).toContain("line 3, column 28");
    expectNoPieceOf(run.lines.join("\n"), [value]);
  });

  test("in BURR_AUTH_TOKENS: the same", async () => {
    const value = secret("envtokens");
    for (const text of malformed(value)) {
      const run = await runServer(["--store", "sqlite::memory:"], { BURR_AUTH_TOKENS: text });
      expect(run.exitCode).not.toBe(0);
      expect(run.lines.find((line) => line.includes('"event":"start_failed"'))).toMatch(/BURR_AUTH_TOKENS is not JSON: .*line \d+, column \d+/);
      expectNoPieceOf(run.lines.join("\n"), [value]);
    }
  });

  test("on SIGHUP: the reload fails naming the line and column, the tokens in force stay, no piece of either token is logged", async () => {
    const kept = secret("kept");
    const broken = secret("sighup");
    const file = path.join(dir, "reload.json");
    fs.writeFileSync(file, JSON.stringify({ tokens: [token(kept)] }));
    const run = await runServer(["--store", "sqlite::memory:", "--init", "--auth-file", file], {}, async (address, running) => {
      for (const text of malformed(broken)) {
        const before = running.lines.filter((line) => line.includes('"event":"tokens_reload_failed"')).length;
        fs.writeFileSync(file, text);
        process.kill(running.pid, "SIGHUP");
        for (let i = 0; i < 600 && running.lines.filter((line) => line.includes('"event":"tokens_reload_failed"')).length === before; i++) {
          await new Promise((resolve) => setTimeout(resolve, 25));
        }
      }
      const client = new GrpcStatePersister({ address, token: kept, retry: { attempts: 1 } });
      expect(await client.isInitialized()).toBe(true);
      await client.close();
    });
    const failures = run.lines.filter((line) => line.includes('"event":"tokens_reload_failed"'));
    expect(failures).toHaveLength(malformed(broken).length);
    for (const failure of failures) expect(failure).toMatch(/is not JSON: .*line \d+, column \d+/);
    expectNoPieceOf(run.lines.join("\n"), [kept, broken]);
  });
});

describe("store URLs with passwords", () => {
  const withCredentials = (base: URL, user: string, password: string, query: Record<string, string> = {}) => {
    const url = new URL(base.toString());
    url.username = user;
    url.password = password;
    for (const [name, value] of Object.entries(query)) url.searchParams.set(name, value);
    return url.toString();
  };
  const unreachable = (base: URL) => {
    const url = new URL(base.toString());
    url.hostname = "127.0.0.1";
    url.port = "1";
    return url;
  };

  /** Starts (or fails to start) on the URL, calls it if it serves, and checks every line. */
  async function check(store: string, secrets: string[], args: string[] = []) {
    for (const text of secrets) expect(store).toContain(text);
    const run = await runServer(["--store", store, ...args], {}, exercise);
    const text = run.lines.join("\n");
    // The run said something about the store either way: it started on it or said why not.
    expect(text).toMatch(/"event":"(started|start_failed)"/);
    expectNoPieceOf(text, secrets);
    return run;
  }

  test("PostgreSQL: in the userinfo, with / @ : and ? in it, and as ?password=, reachable or not", async () => {
    const inUserinfo = secret("pguser");
    const odd = `pa/ss@${secret("pgodd")}:x?y`;
    const inQuery = secret("pgquery");
    const wrongHost = unreachable(postgresUrl);
    // A password with "/" or "@" as the user typed it, not %-encoded.
    const raw = (base: URL, password: string) => `postgres://${base.username || "burr"}:${password}@${base.host}${base.pathname}`;
    await check(raw(wrongHost, odd), [odd.slice(7)]);
    await check(raw(postgresUrl, odd), [odd.slice(7)]);
    await check(withCredentials(wrongHost, "burr", inUserinfo), [inUserinfo]);
    await check(withCredentials(postgresUrl, postgresUrl.username, inUserinfo), [inUserinfo]);
    await check(`postgres://${postgresUrl.username}@${postgresUrl.host}${postgresUrl.pathname}?password=${inQuery}`, [inQuery]);
    await check(`postgres://burr@127.0.0.1:1/burr?password=${inQuery}`, [inQuery], ["--init"]);
  });

  test("PostgreSQL: the right password, given as ?password=, is not in the started line", async () => {
    const right = decodeURIComponent(postgresUrl.password);
    const store = `postgres://${postgresUrl.username}@${postgresUrl.host}${postgresUrl.pathname}?password=${encodeURIComponent(right)}`;
    const run = await runServer(["--store", store], {}, exercise);
    const started = run.lines.find((line) => line.includes('"event":"started"'));
    expect(started).toBeDefined();
    expect(JSON.parse(started!).store).toBe(`postgres://${postgresUrl.username}@${postgresUrl.host}${postgresUrl.pathname}?password=***`);
  });

  test("Redis: a password, reachable or not", async () => {
    const password = secret("redis");
    await check(withCredentials(unreachable(redisUrl), "", password), [password]);
    await check(withCredentials(unreachable(redisUrl), "someone", password), [password]);
    await check(withCredentials(redisUrl, "default", password), [password]);
    await check(withCredentials(redisUrl, "someone", password, { prefix: "secrets" }), [password]);
  });

  test("MongoDB: a password, reachable or not", async () => {
    const password = secret("mongo");
    await check(withCredentials(unreachable(mongoUrl), "someone", password), [password]);
    await check(withCredentials(mongoUrl, "someone", password), [password]);
  });
});
