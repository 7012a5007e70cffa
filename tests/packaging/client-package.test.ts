/**
 * @burr-state/client as its users get it: `npm pack` of the built workspace, installed from the
 * tarball into an app outside the repository, then used by name from that app compiled with
 * tsc, run as an ES module, and bundled with esbuild into one file run where no node_modules
 * exist. Each variant saves and loads with both the async and the sync client against a real
 * server. Also: what the tarball holds, and that installing it pulls no database driver, no
 * server and no development tool.
 *
 * The app's sources are client-app/app.ts and its ES-module twin client-app/app.mjs.
 */
import { execFile } from "node:child_process";
import * as fs from "node:fs/promises";
import * as os from "node:os";
import * as path from "node:path";
import { repoRoot, startServerProcess, type ServerProcess } from "../support/server-process";

const fixtures = path.join(__dirname, "client-app");
const bin = (name: string) => path.join(repoRoot, "node_modules", ".bin", name);

/** The environment of every child: this one without what npm or jest set for the repository. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    // npm's per-run settings (npm_package_*, npm_config_local_prefix, ...) describe the repository.
    if (/^npm_(package_|lifecycle_|command$|config_(call|local_prefix|prefix|global|workspaces?|include_workspace_root)$)/i.test(key)) continue;
    // A --conditions=burr-source here would point the package at sources it does not ship.
    if (key === "NODE_OPTIONS" || key === "NODE_PATH") continue;
    env[key] = value;
  }
  return { ...env, ...extra };
}

interface Output {
  stdout: string;
  stderr: string;
}

/** Runs a command; fails with its whole output when it exits non-zero. */
function run(command: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}, timeoutMs = 150_000): Promise<Output> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { cwd, env: cleanEnv(env), timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        const how = error.killed ? `killed (${error.signal ?? "timeout"})` : `exit ${String(error.code)}`;
        reject(new Error(`${command} ${args.join(" ")} (in ${cwd}): ${how}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
      } else {
        resolve({ stdout, stderr });
      }
    });
  });
}

const node = (args: string[], cwd: string, variant: string) =>
  run(process.execPath, args, cwd, { BURR_STATE_ADDRESS: server.address, BURR_STATE_VARIANT: variant }, 60_000);

/** What the app prints for `variant`: each client's state read back, and the async one's read by the sync client. */
function expected(variant: string) {
  const asyncRow = { appId: `${variant}-async`, sequenceId: 0, position: "start", status: "completed", state: { variant, client: "async", steps: [1, 2, 3] } };
  return {
    async: asyncRow,
    sync: { appId: `${variant}-sync`, sequenceId: 1, position: "next", status: "completed", state: { variant, client: "sync", nested: { ok: true } } },
    syncReadsAsync: asyncRow,
  };
}

function result(output: Output): unknown {
  const line = output.stdout.split("\n").find((text) => text.startsWith("RESULT "));
  if (!line) throw new Error(`the app printed no RESULT line\n--- stdout\n${output.stdout}\n--- stderr\n${output.stderr}`);
  return JSON.parse(line.slice("RESULT ".length));
}

/** Every package under a node_modules folder, nested ones included, by name. */
async function installedPackages(modules: string): Promise<Set<string>> {
  const found = new Set<string>();
  const walk = async (dir: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true }).catch(() => []);
    for (const entry of entries) {
      if (!entry.isDirectory() && !entry.isSymbolicLink()) continue;
      if (entry.name.startsWith(".")) continue;
      const names = entry.name.startsWith("@")
        ? (await fs.readdir(path.join(dir, entry.name))).map((scoped) => `${entry.name}/${scoped}`)
        : [entry.name];
      for (const name of names) {
        found.add(name);
        await walk(path.join(dir, name, "node_modules"));
      }
    }
  };
  await walk(modules);
  return found;
}

let server: ServerProcess;
const tempDirs: string[] = [];
const tempDir = async (prefix: string) => {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
};
let appDir: string;
let packedFiles: string[];

beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init"]);

  // jest's global setup has built client/dist; pack it as `npm publish` would.
  const packDir = await tempDir("burr-client-pack-");
  const packed = await run("npm", ["pack", "--workspace", "client", "--pack-destination", packDir, "--json"], repoRoot);
  const [pack] = JSON.parse(packed.stdout) as { name: string; filename: string; files: { path: string }[] }[];
  expect(pack.name).toBe("@burr-state/client");
  packedFiles = pack.files.map((file) => file.path).sort();

  appDir = await tempDir("burr-client-app-");
  await fs.writeFile(path.join(appDir, "package.json"), JSON.stringify({ name: "burr-client-packaging-app", version: "1.0.0", private: true, type: "commonjs" }, null, 2));
  await run("npm", ["install", path.join(packDir, pack.filename), "--no-audit", "--no-fund", "--prefer-offline"], appDir);
  await fs.copyFile(path.join(fixtures, "app.ts"), path.join(appDir, "app.ts"));
  await fs.copyFile(path.join(fixtures, "app.mjs"), path.join(appDir, "app.mjs"));
}, 240_000);

afterAll(async () => {
  await server?.stop();
  for (const dir of tempDirs) await fs.rm(dir, { recursive: true, force: true });
});

test("the tarball holds the built runtime files only: no sources, no tests, no build state", () => {
  const stray = packedFiles.filter((file) => {
    if (file === "package.json" || /^(README|LICENSE)(\.md)?$/i.test(file)) return false;
    return !/^dist\/.+\.(js|mjs|d\.ts)$/.test(file) || /\.test\.|(^|\/)(tests?|testing|__tests__)\//.test(file);
  });
  expect(stray).toEqual([]);
  for (const entry of ["dist/index.js", "dist/index.mjs", "dist/index.d.ts", "dist/protocol.js", "dist/protocol.mjs", "dist/protocol.d.ts", "dist/sync-worker-source.js"]) {
    expect(packedFiles).toContain(entry);
  }
});

test("installing it brings grpc-js and protobuf-es, and no database driver, server or development tool", async () => {
  const installed = await installedPackages(path.join(appDir, "node_modules"));
  for (const wanted of ["@burr-state/client", "@grpc/grpc-js", "@bufbuild/protobuf"]) expect(installed).toContain(wanted);
  const forbidden = [
    "@burr-state/stores", "@burr-state/server",
    "better-sqlite3", "bindings", "prebuild-install",
    "pg", "pg-pool", "pg-protocol", "pg-connection-string",
    "ioredis", "@ioredis/commands", "redis-parser",
    "mongodb", "bson", "mongodb-connection-string-url", "@mongodb-js/saslprep",
    "prom-client", "@grpc/reflection",
    "tsx", "esbuild", "typescript", "ts-jest", "jest",
  ];
  expect(forbidden.filter((name) => installed.has(name))).toEqual([]);

  const manifest = JSON.parse(await fs.readFile(path.join(appDir, "node_modules/@burr-state/client/package.json"), "utf8")) as Record<string, unknown>;
  expect(Object.keys(manifest.dependencies as object).sort()).toEqual(["@bufbuild/protobuf", "@grpc/grpc-js"]);
  // The sync client's worker travels inside the package, bundled at build time.
  const { bundledWorker } = require(path.join(appDir, "node_modules/@burr-state/client/dist/sync-worker-source.js")) as { bundledWorker: string };
  expect(bundledWorker.length).toBeGreaterThan(10_000);
});

test("a TypeScript app compiled with tsc (strict, no skipLibCheck) uses both clients", async () => {
  // The app lists no types of its own (its code declares the Node globals it uses); Node's come
  // only as grpc-js's declarations reference them. No skipLibCheck: the package's .d.ts must check.
  const tsconfig = {
    compilerOptions: { target: "ES2022", module: "node16", moduleResolution: "node16", lib: ["ES2022"], types: [], strict: true, outDir: "out" },
    files: ["app.ts"],
  };
  await fs.writeFile(path.join(appDir, "tsconfig.json"), JSON.stringify(tsconfig, null, 2));
  await run(bin("tsc"), ["-p", "tsconfig.json"], appDir);
  expect(result(await node(["out/app.js"], appDir, "tsc"))).toEqual(expected("tsc"));
});

test("the same app as an ES module uses both clients", async () => {
  expect(result(await node(["app.mjs"], appDir, "esm"))).toEqual(expected("esm"));
});

test("the same app bundled with esbuild runs alone: no node_modules, the sync worker inside the bundle", async () => {
  const bundleDir = await tempDir("burr-client-bundle-");
  // From the TypeScript app (the package's require entry) and from the ES module (its import entry).
  for (const [source, outfile] of [["app.ts", "from-ts.js"], ["app.mjs", "from-esm.js"]]) {
    const built = await run(bin("esbuild"), [source, "--bundle", "--platform=node", "--target=node20", "--log-level=warning", `--outfile=${path.join(bundleDir, outfile)}`], appDir);
    // No warnings either: an app bundling the client should not have to mark anything external.
    expect(built.stderr.trim()).toBe("");
  }
  // Nothing left to resolve from: the app's packages are gone, and the bundles sit in a folder of their own.
  await fs.rm(path.join(appDir, "node_modules"), { recursive: true, force: true });
  expect(await fs.readdir(bundleDir)).toEqual(["from-esm.js", "from-ts.js"]);
  expect(result(await node(["from-ts.js"], bundleDir, "bundle-ts"))).toEqual(expected("bundle-ts"));
  expect(result(await node(["from-esm.js"], bundleDir, "bundle-esm"))).toEqual(expected("bundle-esm"));
});
