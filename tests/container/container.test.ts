/**
 * The container files (Dockerfile, docker-compose.yml, .dockerignore), checked without a Docker
 * engine:
 *   - read as the builder and Compose read them, against what the server accepts (its settings,
 *     its health subcommand, its port) and against each other;
 *   - the image assembled in a scratch directory from the Dockerfile's own COPY and RUN lines
 *     (the build context filtered by .dockerignore; the repository's node_modules standing in for
 *     `npm ci` and nothing installed with apt-get), then its CMD and HEALTHCHECK run as an
 *     unprivileged user on a fresh data directory it owns, as in a container on a new volume.
 * What stays unchecked: the base image's contents, apt-get and `npm ci` inside it (npm 10 there),
 * and Docker's own handling of volumes, ports and health states.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { GrpcStatePersister } from "@burr-state/client";
import { parseConfig, type ServerConfig } from "../../server/src/config";
import { healthAddress } from "../../server/src/health-check";
import { checkExposure } from "../../server/src/security";
import { storeFor } from "../../stores/src/registry";
import { parseLine, watchStarted } from "../support/server-process";
import { copyPaths, dockerIgnored, durationMs, envPairs, parseDockerfile, stageEnv, type Instruction, type Stage } from "./dockerfile";
import { readYaml } from "./yaml-subset";

const root = path.resolve(__dirname, "../..");
const read = (file: string) => fs.readFileSync(path.join(root, file), "utf8");

const dockerfileText = read("Dockerfile");
const { stages } = parseDockerfile(dockerfileText);
const buildStage = stages[0];
const runtime = stages[stages.length - 1];
const runtimeEnv = stageEnv(runtime);
const dockerignore = read(".dockerignore");

interface Healthcheck {
  test: string[];
  interval?: string;
  timeout?: string;
  start_period?: string;
  retries?: number;
}
interface Service {
  build?: string;
  image?: string;
  profiles?: string[];
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  command?: string[];
  depends_on?: string[] | Record<string, { condition?: string; required?: boolean }>;
  healthcheck?: Healthcheck;
  restart?: string;
}
const composeText = read("docker-compose.yml");
const compose = readYaml(composeText) as unknown as { services: Record<string, Service>; volumes: Record<string, unknown> };
const services = compose.services;
const server = services.server;
const databases = Object.entries(services).filter(([name]) => name !== "server");

const configSource = read("server/src/config.ts");
const healthSource = read("server/src/health-check.ts");
/** The default deadline of `main.js health`, in ms. */
const healthTimeoutMs = Number(/"timeout-ms"\]\s*\?\?\s*(\d+)/.exec(healthSource)?.[1]);

const instructions = (stage: Stage, keyword: string) => stage.instructions.filter((i) => i.keyword === keyword);
const last = <T>(items: T[]) => items[items.length - 1];
const portOf = (address: string) => Number(address.slice(address.lastIndexOf(":") + 1));

/** Compose's ${VAR}, ${VAR:-default}, ${VAR-default} and $$, with `vars` as the shell's environment. */
function interpolate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?-)([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (whole, name?: string, op?: string, fallback?: string, bare?: string) => {
    if (whole === "$$") return "$";
    const value = vars[(name ?? bare)!];
    if (op === ":-") return value ? value : fallback!;
    if (op === "-") return value !== undefined ? value : fallback!;
    return value ?? "";
  });
}

/** The server container's environment: the image's ENV, then compose's `environment:`. */
const composeEnv = (shell: Record<string, string> = {}) => ({
  ...runtimeEnv,
  ...Object.fromEntries(Object.entries(server.environment ?? {}).map(([key, value]) => [key, interpolate(String(value), shell)])),
});

/** Every BURR_* name the files mention, comments included. */
const burrNames = (text: string) => [...new Set(text.match(/\bBURR_[A-Z0-9_]+\b/g) ?? [])];

describe("Dockerfile", () => {
  test("two stages on node:20-bookworm-slim; the runtime one starts afresh, not from the build stage", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    for (const stage of stages) expect(stage.image).toBe("node:20-bookworm-slim");
    expect(buildStage.name).toBe("build");
    expect(stages.map((stage) => stage.name)).not.toContain(runtime.image);
  });

  test("the build stage installs the toolchain, the workspace, builds, and prunes to production dependencies", () => {
    const runs = instructions(buildStage, "RUN").map((i) => i.args);
    expect(runs.some((run) => /apt-get install\b.*\bpython3\b/.test(run) && /\bmake\b/.test(run) && /\bg\+\+/.test(run))).toBe(true);
    const ci = runs.findIndex((run) => /^npm ci\b/.test(run));
    const build = runs.findIndex((run) => /\bnpm run build\b/.test(run));
    const prune = runs.findIndex((run) => /\bnpm prune --omit=dev\b/.test(run));
    expect(ci).toBeGreaterThanOrEqual(0);
    expect(build).toBeGreaterThan(ci);
    expect(prune).toBeGreaterThanOrEqual(build);
  });

  test("the runtime stage installs and compiles nothing, and copies only node_modules and the packages' manifests and dist/", () => {
    for (const instruction of runtime.instructions) {
      expect(`${instruction.keyword} ${instruction.args}`).not.toMatch(/\b(apt-get|apt|npm|npx|node-gyp|python3?|g\+\+|gcc|make|build-essential|tsc|tsx|esbuild)\b/);
    }
    const allowed = new Set(["/app/node_modules", ...["client", "stores", "server"].flatMap((pkg) => [`/app/${pkg}/package.json`, `/app/${pkg}/dist`])]);
    const copies = instructions(runtime, "COPY");
    expect(copies.length).toBeGreaterThan(0);
    for (const copy of copies) {
      expect(copy.flags.from).toBe(buildStage.name);
      for (const source of copyPaths(copy).sources) expect(allowed).toContain(source);
    }
    expect(instructions(runtime, "ADD")).toEqual([]);
  });

  test("it runs as the unprivileged user `node`, who owns /data (created before USER and before VOLUME)", () => {
    const users = instructions(runtime, "USER");
    expect(users.length).toBeGreaterThan(0);
    const user = last(users).args.split(":")[0];
    expect(user).toBe("node");
    expect(["root", "0"]).not.toContain(user);
    const at = (instruction: Instruction) => runtime.instructions.indexOf(instruction);
    const setup = instructions(runtime, "RUN").find((run) => /\bmkdir -p \/data\b/.test(run.args));
    expect(setup).toBeDefined();
    const chown = /\bchown (?:-R )?([^\s:]+)(?::(\S+))? \/data\b/.exec(setup!.args);
    expect(chown?.[1]).toBe(user);
    expect(at(setup!)).toBeLessThan(at(last(users)));
    const volume = instructions(runtime, "VOLUME").find((v) => /\/data\b/.test(v.args));
    if (volume) expect(at(setup!)).toBeLessThan(at(volume));
    expect(last(instructions(runtime, "WORKDIR"))?.args).toBe("/app");
    // Everything the container runs comes after USER: CMD and HEALTHCHECK run as `node`.
    for (const keyword of ["CMD", "HEALTHCHECK"]) expect(at(last(instructions(runtime, keyword)))).toBeGreaterThan(at(last(users)));
  });

  test("ENV: the listen address, the store in /data, a capped heap; EXPOSE is the listen port", () => {
    expect(runtimeEnv.BURR_LISTEN).toBe("0.0.0.0:50051");
    expect(runtimeEnv.BURR_STORE).toBe("sqlite:/data/burr_state.db");
    expect(runtimeEnv.NODE_OPTIONS).toBe("--max-old-space-size=256");
    expect(path.posix.dirname(runtimeEnv.BURR_STORE.replace(/^sqlite:/, ""))).toBe("/data");
    const exposed = instructions(runtime, "EXPOSE").flatMap((e) => e.args.split(/\s+/)).map((port) => Number(port.replace(/\/tcp$/, "")));
    expect(exposed).toEqual([portOf(runtimeEnv.BURR_LISTEN)]);
  });

  test("HEALTHCHECK runs the server's own gRPC health check, with more time than its deadline", () => {
    const checks = instructions(runtime, "HEALTHCHECK");
    expect(checks).toHaveLength(1);
    const check = checks[0];
    const command = /^CMD\s+([\s\S]*)$/.exec(check.args);
    expect(command).not.toBeNull();
    expect(JSON.parse(command![1])).toEqual(["node", "/app/server/dist/main.js", "health"]);
    expect(healthTimeoutMs).toBeGreaterThan(0);
    expect(durationMs(check.flags.timeout ?? "30s")).toBeGreaterThan(healthTimeoutMs);
    // With no --address the health check asks BURR_LISTEN's port on loopback.
    expect(healthAddress(undefined, runtimeEnv)).toBe(`127.0.0.1:${portOf(runtimeEnv.BURR_LISTEN)}`);
  });

  test("CMD runs node on the server's bin directly (no npm, no tsx, no shell)", () => {
    const cmd = last(instructions(runtime, "CMD"));
    expect(cmd.exec).not.toBeNull();
    const bin = (JSON.parse(read("server/package.json")) as { bin: Record<string, string> }).bin["burr-state-server"];
    expect(cmd.exec).toEqual(["node", path.posix.join("/app/server", bin)]);
    expect(instructions(runtime, "ENTRYPOINT")).toEqual([]);
  });

  test("the image's defaults are accepted by the server, which refuses 0.0.0.0 until told how it is protected", () => {
    const config = parseConfig([], runtimeEnv) as ServerConfig;
    expect(config).toMatchObject({ listen: "0.0.0.0:50051", store: "sqlite:/data/burr_state.db", init: true, insecure: false });
    expect(() => checkExposure(config, false)).toThrow(/refusing to listen on 0\.0\.0\.0:50051/);
    expect(() => checkExposure(parseConfig([], { ...runtimeEnv, BURR_INSECURE: "1" }) as ServerConfig, false)).not.toThrow();
    expect(() => checkExposure(config, true)).not.toThrow();
  });
});

describe("docker-compose.yml", () => {
  const pyYaml = spawnSync("python3", ["-c", "import yaml"], { encoding: "utf8" }).status === 0;
  (pyYaml ? test : test.skip)("this reader and PyYAML read it the same", () => {
    const out = execFileSync("python3", ["-c", "import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))"], { input: composeText, encoding: "utf8" });
    expect(compose).toEqual(JSON.parse(out));
  });

  test("the header shows how to start it: SQLite by default, and each database with its profile and BURR_STORE", () => {
    const usage = composeText
      .split("\n")
      .filter((line) => line.startsWith("#"))
      .map((line) => /^#\s+(?:BURR_STORE=(\S+)\s+)?docker compose\s+(?:--profile\s+(\S+)\s+)?up\b/.exec(line))
      .filter((match): match is RegExpExecArray => match !== null);
    expect(usage.some((match) => !match[1] && !match[2])).toBe(true);
    const defaultPorts: Record<string, number> = { postgres: 5432, redis: 6379, mongo: 27017 };
    for (const [name, service] of databases) {
      for (const profile of service.profiles ?? []) {
        const line = usage.find((match) => match[2] === profile);
        expect(line?.[1]).toBeDefined();
        const url = new URL(line![1]);
        expect(storeFor(line![1]).name).toBe(name);
        expect(url.hostname).toBe(name);
        expect(Number(url.port)).toBe(defaultPorts[name]);
        if (name === "postgres") {
          const env = service.environment!;
          expect([decodeURIComponent(url.username), decodeURIComponent(url.password), url.pathname.slice(1)]).toEqual([env.POSTGRES_USER, env.POSTGRES_PASSWORD, env.POSTGRES_DB]);
        }
        // That BURR_STORE is what the server then gets.
        expect(composeEnv({ BURR_STORE: line![1] }).BURR_STORE).toBe(line![1]);
      }
    }
  });

  test("server: built here, SQLite in the `state` volume at /data by default, no profile", () => {
    expect(server.build).toBe(".");
    expect(server.profiles).toBeUndefined();
    const env = composeEnv();
    expect(env.BURR_STORE).toBe(runtimeEnv.BURR_STORE);
    expect(server.volumes).toContain("state:/data");
    expect(Object.keys(compose.volumes)).toContain("state");
    const config = parseConfig([], env) as ServerConfig;
    expect(config).toMatchObject({ store: "sqlite:/data/burr_state.db", init: true, insecure: true });
    expect(() => checkExposure(config, false)).not.toThrow();
  });

  test("server: the container port is the listen port, published on the host's loopback only (it runs with BURR_INSECURE)", () => {
    const env = composeEnv();
    const listenPort = portOf(env.BURR_LISTEN);
    expect(listenPort).toBe(portOf(runtimeEnv.BURR_LISTEN));
    expect(server.ports?.length).toBeGreaterThan(0);
    for (const port of server.ports!) {
      const [hostIp, hostPort, containerPort] = port.split(":");
      expect(Number(containerPort)).toBe(listenPort);
      expect(Number(hostPort)).toBeGreaterThan(0);
      if ((parseConfig([], env) as ServerConfig).insecure) expect(hostIp).toBe("127.0.0.1");
    }
  });

  test("server: its healthcheck is the image's gRPC health check", () => {
    const check = JSON.parse(/^CMD\s+([\s\S]*)$/.exec(last(instructions(runtime, "HEALTHCHECK")).args)![1]) as string[];
    expect(server.healthcheck?.test).toEqual(["CMD", ...check]);
    expect(durationMs(server.healthcheck!.timeout ?? "30s")).toBeGreaterThan(healthTimeoutMs);
  });

  test("each database: its own profile, a healthcheck, a named volume; Redis with its append-only file", () => {
    const images: Record<string, string> = { postgres: "postgres:16", redis: "redis:7", mongo: "mongo:7" };
    expect(databases.map(([name]) => name).sort()).toEqual(Object.keys(images).sort());
    for (const [name, service] of databases) {
      expect(service.image).toBe(images[name]);
      expect(service.profiles).toEqual([name]);
      expect(service.healthcheck?.test?.[0]).toMatch(/^CMD(-SHELL)?$/);
      const volume = service.volumes?.[0].split(":")[0];
      expect(Object.keys(compose.volumes)).toContain(volume);
    }
    expect(services.redis.command?.join(" ")).toMatch(/--appendonly yes/);
  });

  test("server: waits for a started database, but needs none (no hard depends_on on a profiled service)", () => {
    const dependsOn = server.depends_on ?? {};
    expect(Array.isArray(dependsOn)).toBe(false);
    for (const [name, dependency] of Object.entries(dependsOn as Record<string, { condition?: string; required?: boolean }>)) {
      expect(services[name]).toBeDefined();
      if (services[name].profiles) expect(dependency.required).toBe(false);
      expect(dependency.condition).toBe("service_healthy");
      expect(services[name].healthcheck).toBeDefined();
    }
  });
});

describe("the settings the files name", () => {
  test("every BURR_* variable in the Dockerfile and compose file is one the server or its health check reads", () => {
    const names = burrNames(`${dockerfileText}\n${composeText}`);
    expect(names.length).toBeGreaterThan(0);
    for (const name of names) expect(`${name}: ${new RegExp(`\\b${name}\\b`).test(configSource + healthSource)}`).toBe(`${name}: true`);
  });

  test("each BURR_* value the files set is read by parseConfig: it changes the parsed settings", () => {
    const set: Array<[string, string]> = [
      ...instructions(runtime, "ENV").flatMap((i) => envPairs(i.args)),
      ...Object.entries(composeEnv()).filter(([key]) => key in (server.environment ?? {})),
    ].filter(([key]) => key.startsWith("BURR_"));
    expect(set.length).toBeGreaterThan(0);
    for (const [key, value] of set) {
      // A store of its own, so that init is not forced on as for the default store.
      const base = key === "BURR_STORE" ? {} : { BURR_STORE: "sqlite::memory:" };
      expect(parseConfig([], { ...base, [key]: value })).not.toEqual(parseConfig([], base));
    }
  });
});

describe(".dockerignore", () => {
  test("leaves out installs, builds, git, databases and local Python/benchmark files", () => {
    for (const file of [
      "node_modules/typescript/package.json",
      "client/node_modules/x/index.js",
      "client/dist/index.js",
      "server/dist/main.js",
      "stores/dist/index.js",
      ".git/HEAD",
      "burr_state.db",
      "burr_state.db-wal",
      "burr_state.db-shm",
      "client/python/.venv/bin/python",
      "bench/results/profiles/run.cpuprofile",
    ]) {
      expect(`${file}: ${dockerIgnored(dockerignore, file)}`).toBe(`${file}: true`);
    }
  });

  test("keeps every file the build stage copies", () => {
    for (const copy of instructions(buildStage, "COPY").filter((c) => !c.flags.from)) {
      for (const source of copyPaths(copy).sources) {
        expect(fs.existsSync(path.join(root, source))).toBe(true);
        expect(`${source}: ${dockerIgnored(dockerignore, source)}`).toBe(`${source}: false`);
      }
    }
  });
});

// ------------------------------------------------------------------ the image, assembled

/** Who the container's user stands for here: `node` if this machine has one, else `nobody`; null when not root (run as oneself). */
function containerUser(): { name: string; uid: number; gid: number } | null {
  if (process.getuid?.() !== 0) return null;
  for (const name of ["node", "nobody"]) {
    const uid = spawnSync("id", ["-u", name], { encoding: "utf8" });
    const gid = spawnSync("id", ["-g", name], { encoding: "utf8" });
    if (uid.status === 0 && gid.status === 0) return { name, uid: Number(uid.stdout), gid: Number(gid.stdout) };
  }
  throw new Error("running as root, but neither user node nor nobody exists");
}

/** COPY into `stageRoot` (a directory standing for /): from the build context (filtered) or another stage's root. */
function applyCopy(copy: Instruction, workdir: string, stageRoot: string, from: string | null) {
  const { sources, destination } = copyPaths(copy);
  const dest = path.join(stageRoot, path.posix.resolve(workdir, destination));
  const intoDir = destination.endsWith("/") || sources.length > 1;
  for (const source of sources) {
    const src = from ? path.join(from, source) : path.join(root, source);
    if (!fs.existsSync(src)) throw new Error(`COPY ${source}: not found`);
    if (!from && dockerIgnored(dockerignore, source)) throw new Error(`COPY ${source}: left out by .dockerignore`);
    if (fs.statSync(src).isDirectory()) {
      fs.cpSync(src, dest, {
        recursive: true,
        verbatimSymlinks: true,
        filter: (file) => from !== null || !dockerIgnored(dockerignore, path.relative(root, file).split(path.sep).join("/")),
      });
    } else {
      const target = intoDir ? path.join(dest, path.basename(source)) : dest;
      fs.mkdirSync(path.dirname(target), { recursive: true });
      fs.copyFileSync(src, target);
    }
  }
}

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });

describe("the image, assembled from the Dockerfile and run as an unprivileged user", () => {
  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "burr-container-"));
  const buildRoot = path.join(scratch, "build");
  const runtimeRoot = path.join(scratch, "runtime");
  const user = containerUser();
  let buildLog = "";

  /** argv run as the container's user (setpriv execs it: signals reach node directly). */
  const asUser = (argv: string[]) =>
    user ? ["setpriv", `--reuid=${user.uid}`, `--regid=${user.gid}`, "--clear-groups", "--", ...argv] : argv;
  /** A container-side path (/app/...) in the assembled runtime. */
  const inImage = (file: string) => path.join(runtimeRoot, file);
  /** The Dockerfile's CMD or HEALTHCHECK argv, as run here. */
  const imageArgv = (argv: string[]) => [argv[0] === "node" ? process.execPath : argv[0], ...argv.slice(1).map((arg) => (arg.startsWith("/app/") ? inImage(arg) : arg))];
  const containerEnv = (overrides: Record<string, string>): Record<string, string> => ({ PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ...runtimeEnv, ...overrides });

  beforeAll(() => {
    fs.chmodSync(scratch, 0o755);
    // The build stage: its COPY lines, `npm ci` stood in for by the repository's (CI's) install, its other RUN lines as written.
    let workdir = "/";
    const env: Record<string, string> = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: scratch, npm_config_offline: "true" };
    for (const instruction of buildStage.instructions) {
      if (instruction.keyword === "WORKDIR") {
        workdir = path.posix.resolve(workdir, instruction.args);
        fs.mkdirSync(path.join(buildRoot, workdir), { recursive: true });
      } else if (instruction.keyword === "ENV") Object.assign(env, Object.fromEntries(envPairs(instruction.args)));
      else if (instruction.keyword === "COPY") applyCopy(instruction, workdir, buildRoot, null);
      else if (instruction.keyword === "RUN") {
        if (/^apt-get update\b/.test(instruction.args)) continue;
        if (/^npm ci$/.test(instruction.args)) {
          // A real copy, not hard links: npm rewrites files such as node_modules/.package-lock.json in place.
          execFileSync("cp", ["-a", path.join(root, "node_modules"), path.join(buildRoot, workdir, "node_modules")]);
          continue;
        }
        if (/(^|[\s;&|(=])\/(?!dev\/null)/.test(instruction.args)) throw new Error(`line ${instruction.line}: an absolute path; this test runs build RUN lines in a scratch copy`);
        const result = spawnSync("sh", ["-c", instruction.args], { cwd: path.join(buildRoot, workdir), env, encoding: "utf8" });
        buildLog += `$ ${instruction.args}\n${result.stdout}${result.stderr}`;
        if (result.status !== 0) throw new Error(`RUN at line ${instruction.line} failed (${result.status}):\n${buildLog}`);
      } else if (!["ARG", "LABEL"].includes(instruction.keyword)) throw new Error(`build stage: ${instruction.keyword} is not simulated`);
    }
    // The runtime stage's files (its RUN only prepares /data, which each test makes itself).
    workdir = "/";
    for (const instruction of runtime.instructions) {
      if (instruction.keyword === "WORKDIR") {
        workdir = path.posix.resolve(workdir, instruction.args);
        fs.mkdirSync(path.join(runtimeRoot, workdir), { recursive: true });
      } else if (instruction.keyword === "COPY") applyCopy(instruction, workdir, runtimeRoot, buildRoot);
    }
  }, 300_000);

  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    fs.rmSync(scratch, { recursive: true, force: true });
  });

  test("node_modules holds the production dependencies only: no TypeScript, esbuild, jest or tsx", () => {
    const modules = inImage("/app/node_modules");
    for (const dev of ["typescript", "esbuild", "jest", "ts-jest", "tsx", "@types/jest", "fast-check", "@bufbuild/buf", ".bin/tsc", ".bin/esbuild", ".bin/jest", ".bin/tsx"]) {
      expect(`${dev}: ${fs.existsSync(path.join(modules, dev))}`).toBe(`${dev}: false`);
    }
    for (const needed of ["@grpc/grpc-js", "better-sqlite3/build/Release/better_sqlite3.node", "pg", "ioredis", "mongodb", "prom-client"]) {
      expect(`${needed}: ${fs.existsSync(path.join(modules, needed))}`).toBe(`${needed}: true`);
    }
    // The workspace links resolve inside the image.
    for (const pkg of ["client", "stores", "server"]) {
      expect(fs.realpathSync(path.join(modules, "@burr-state", pkg))).toBe(fs.realpathSync(inImage(`/app/${pkg}`)));
    }
    // No sources: only manifests and compiled output.
    for (const pkg of ["client", "stores", "server"]) expect(fs.readdirSync(inImage(`/app/${pkg}`)).sort()).toEqual(["dist", "package.json"]);
  });

  /** Runs the image's CMD as the container user; resolves at its "started" line. */
  function startContainer(env: Record<string, string>) {
    const cmd = imageArgv(last(instructions(runtime, "CMD")).exec!);
    const argv = asUser(cmd);
    const child: ChildProcess = spawn(argv[0], argv.slice(1), { cwd: inImage("/app"), env, stdio: ["ignore", "ignore", "pipe"] });
    children.push(child);
    const logs: string[] = [];
    const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
    /** Its exit code; killed (and so null) if it is still running after 30 s. */
    const exitCode = () => {
      const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
      return exited.finally(() => clearTimeout(timer));
    };
    const started = watchStarted(child, logs, exited);
    started.catch(() => undefined);
    return { child, logs, exitCode, started };
  }

  test("on a fresh data directory it owns, the container user's server starts, reports SERVING to the HEALTHCHECK, and stores states", async () => {
    const data = path.join(scratch, "data");
    fs.mkdirSync(data, { mode: 0o755 });
    if (user) fs.chownSync(data, user.uid, user.gid);
    const port = await freePort();
    const dbFile = path.join(data, "burr_state.db");
    // The image's environment, with a loopback port of this machine and the scratch /data.
    const env = containerEnv({ BURR_LISTEN: `127.0.0.1:${port}`, BURR_STORE: runtimeEnv.BURR_STORE.replace("/data/", `${data}/`) });
    expect(env.BURR_STORE).toBe(`sqlite:${dbFile}`);
    const container = startContainer(env);
    try {
      const started = await container.started;
      expect(started).toMatchObject({ port, backend: "sqlite" });

      const check = /^CMD\s+([\s\S]*)$/.exec(last(instructions(runtime, "HEALTHCHECK")).args)![1];
      const health = imageArgv(JSON.parse(check) as string[]);
      const argv = asUser(health);
      const result = spawnSync(argv[0], argv.slice(1), { cwd: inImage("/app"), env, encoding: "utf8", timeout: 20_000 });
      expect(`${result.status} ${result.stdout}`).toBe(`0 127.0.0.1:${port}: SERVING\n`);

      const client = new GrpcStatePersister({ address: `127.0.0.1:${port}` });
      try {
        expect(await client.isInitialized()).toBe(true);
        await client.save({ partitionKey: "container", appId: "app-1", sequenceId: 0, position: "start", state: { written: "by the container user" }, status: "completed" });
        const row = await client.load({ partitionKey: "container", appId: "app-1" });
        expect(row?.state).toEqual({ written: "by the container user" });
      } finally {
        await client.close();
      }
      expect(fs.statSync(dbFile).uid).toBe(user?.uid ?? process.getuid!());
    } finally {
      container.child.kill("SIGTERM");
    }
    // `docker stop` sends SIGTERM: a clean exit.
    expect(await container.exitCode()).toBe(0);
    expect(container.logs.map(parseLine).some((event) => event?.event === "stopped")).toBe(true);
  });

  test("a data directory the user cannot write to: the server exits non-zero, naming the file and the cause", async () => {
    const data = path.join(scratch, "root-owned");
    fs.mkdirSync(data, { mode: 0o755 });
    if (!user) fs.chmodSync(data, 0o555);
    const dbFile = path.join(data, "burr_state.db");
    const container = startContainer(containerEnv({ BURR_LISTEN: `127.0.0.1:${await freePort()}`, BURR_STORE: `sqlite:${dbFile}` }));
    expect(await container.exitCode()).toBe(1);
    const failure = container.logs.map(parseLine).find((event) => event?.event === "start_failed");
    expect(failure?.cause).toEqual(expect.stringContaining(dbFile));
    expect(failure?.cause).toMatch(/unable to open database file/);
    expect(fs.readdirSync(data)).toEqual([]);
  });

  test("the image's environment alone (0.0.0.0, no tokens, TLS or BURR_INSECURE): the server refuses to start, saying why", async () => {
    const data = path.join(scratch, "unused");
    fs.mkdirSync(data);
    if (user) fs.chownSync(data, user.uid, user.gid);
    const listen = `0.0.0.0:${await freePort()}`;
    const container = startContainer(containerEnv({ BURR_LISTEN: listen, BURR_STORE: `sqlite:${data}/burr_state.db` }));
    expect(await container.exitCode()).toBe(1);
    const failure = container.logs.map(parseLine).find((event) => event?.event === "start_failed");
    expect(failure?.cause).toEqual(expect.stringContaining(`refusing to listen on ${listen}`));
    expect(failure?.cause).toMatch(/--insecure/);
  });
});
