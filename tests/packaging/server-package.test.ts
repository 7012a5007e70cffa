/**
 * @burr-state/server as its users get it: the three packed tarballs (client, stores, server)
 * installed into an empty directory outside the repository; then `npx burr-state-server --help`
 * works and the installed bin serves on the embedded default store and answers its own health
 * check. Installing builds better-sqlite3 from source when no prebuilt binary can be fetched
 * (about a minute on the CI machine).
 */
import { execFile, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { repoRoot } from "../support/server-process";

const run = promisify(execFile);
let dir: string;

/** Without the repository's npm and node settings (a --conditions flag would point at sources that are not shipped). */
const env = () => {
  const clean: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (/^npm_/i.test(key) || key === "NODE_OPTIONS" || key === "NODE_PATH") continue;
    clean[key] = value;
  }
  return clean;
};

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-server-package-"));
  const packs = path.join(dir, "packs");
  fs.mkdirSync(packs);
  await run("npm", ["pack", "--workspace", "client", "--workspace", "stores", "--workspace", "server", "--pack-destination", packs], { cwd: repoRoot, env: env() });
  const tarballs = fs.readdirSync(packs).map((name) => path.join(packs, name));
  expect(tarballs.length).toBe(3);
  const app = path.join(dir, "app");
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, "package.json"), JSON.stringify({ name: "server-user", private: true }));
  await run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline", ...tarballs], { cwd: app, env: env(), timeout: 600_000, maxBuffer: 64 * 1024 * 1024 });
}, 660_000);

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

test("npx burr-state-server --help lists the settings", async () => {
  const { stdout } = await run("npx", ["--no-install", "burr-state-server", "--help"], { cwd: path.join(dir, "app"), env: env() });
  expect(stdout).toMatch(/Usage: burr-state-server/);
  expect(stdout).toMatch(/--store VALUE/);
  expect(stdout).toMatch(/burr-state-server health/);
});

test("the installed bin serves the default store, initialized, and passes its own health check", async () => {
  const app = path.join(dir, "app");
  const server = spawn(path.join(app, "node_modules/.bin/burr-state-server"), ["--listen", "127.0.0.1:0"], { cwd: app, env: env(), stdio: ["ignore", "ignore", "pipe"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let text = "";
      server.stderr!.on("data", (data: Buffer) => {
        text += data.toString();
        const started = /"event":"started".*?"port":(\d+)/.exec(text);
        if (started) resolve(Number(started[1]));
      });
      server.once("exit", (code) => reject(new Error(`exited ${code}: ${text}`)));
    });
    const { stdout } = await run(path.join(app, "node_modules/.bin/burr-state-server"), ["health", "--address", `127.0.0.1:${port}`], { cwd: app, env: env() });
    expect(stdout).toContain("SERVING");
    expect(fs.existsSync(path.join(app, "burr_state.db"))).toBe(true);
    // Only compiled JavaScript runs: no TypeScript sources and no tsx in what was installed.
    expect(fs.existsSync(path.join(app, "node_modules/tsx"))).toBe(false);
    expect(fs.readdirSync(path.join(app, "node_modules/@burr-state/server/dist")).some((name) => name.endsWith(".ts") && !name.endsWith(".d.ts"))).toBe(false);
  } finally {
    server.kill("SIGTERM");
  }
}, 60_000);
