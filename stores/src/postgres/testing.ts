/**
 * PostgreSQL for the tests: stores on the shared test database (a table of their own per suite
 * and per fresh store, dropped afterwards), and private throwaway instances that a test may stop,
 * freeze and restart.
 */
import { execFile, execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import { promisify } from "node:util";
import { Client } from "pg";
import type { StoreUnderTest } from "../../../tests/support/subjects";

/** The shared test database (started by `.ci/services.sh up`). */
export const postgresUrl = process.env.BURR_TEST_POSTGRES_URL ?? "postgres://burr:burr@127.0.0.1:55432/burr";

/** PgBouncer in transaction mode in front of it (also started by `.ci/services.sh up`). */
export const pgbouncerUrl = process.env.BURR_TEST_PGBOUNCER_URL ?? "postgres://burr:burr@127.0.0.1:56432/burr";

let tableCounter = 0;

/** A table name no other suite or run uses (within checkIdentifier's 48 characters). */
export function uniqueTableName(label: string): string {
  const random = Math.random().toString(36).slice(2, 8);
  return `burr_${label}_${process.pid}_${++tableCounter}_${random}`;
}

/** The URL with the given query parameters set. */
export function withParams(url: string, params: Record<string, string>): string {
  const parsed = new URL(url);
  for (const [name, value] of Object.entries(params)) parsed.searchParams.set(name, value);
  return parsed.toString();
}

/** A direct connection for setting up and inspecting tables, bypassing the store. */
export async function connectAdmin(url: string = postgresUrl): Promise<Client> {
  const client = new Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await client.connect();
  return client;
}

/** Drops the states and apps tables of each store table named. */
export async function dropTables(tables: string[], url: string = postgresUrl): Promise<void> {
  if (tables.length === 0) return;
  const client = await connectAdmin(url);
  try {
    const names = tables.flatMap((table) => [`"${table}"`, `"${table}_apps"`]);
    await client.query(`DROP TABLE IF EXISTS ${names.join(", ")}`);
  } finally {
    await client.end();
  }
}

/** Stores on tables of their own at baseUrl (with `params` added), dropped afterwards. */
export function postgresStore(baseUrl: string = postgresUrl, params: Record<string, string> = {}): StoreUnderTest {
  const tables: string[] = [];
  const urlWithNewTable = (label: string) => {
    const table = uniqueTableName(label);
    tables.push(table);
    return withParams(baseUrl, { ...params, table });
  };
  return {
    url: urlWithNewTable("suite"),
    freshUrl: () => urlWithNewTable("fresh"),
    cleanup: () => dropTables(tables, baseUrl),
  };
}

/** A PostgreSQL server of the test's own, in a temporary directory, on a free loopback port. */
export interface PrivatePostgres {
  /** postgres://postgres@127.0.0.1:PORT/postgres (trust authentication, loopback only). */
  url: string;
  /** Starts it again after stop(), on the same port and data. */
  start(): Promise<void>;
  /** A fast shutdown: sessions are terminated (57P01), new connections refused. */
  stop(): Promise<void>;
  /** SIGSTOP to the server and all its processes: connections stay open but nothing answers. */
  freeze(): void;
  thaw(): void;
  /** Stops it and deletes its files. */
  destroy(): Promise<void>;
}

const run = promisify(execFile);

function postgresBinDir(): string {
  const versions = fs.existsSync("/usr/lib/postgresql") ? fs.readdirSync("/usr/lib/postgresql").sort((a, b) => Number(b) - Number(a)) : [];
  const candidates = [...versions.map((version) => `/usr/lib/postgresql/${version}/bin`), "/usr/local/bin", "/usr/bin"];
  const found = candidates.find((dir) => fs.existsSync(path.join(dir, "pg_ctl")) && fs.existsSync(path.join(dir, "initdb")));
  if (!found) throw new Error(`no PostgreSQL server binaries (pg_ctl, initdb) in ${candidates.join(", ")}`);
  return found;
}

/** PostgreSQL refuses to run as root: as root, run its tools as user postgres. */
function asPostgres(command: string, args: string[]) {
  const root = process.getuid?.() === 0;
  return run(root ? "runuser" : command, root ? ["-u", "postgres", "--", command, ...args] : args, { timeout: 60_000 });
}

async function freeLoopbackPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  const bin = postgresBinDir();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-pg-"));
  const data = path.join(dir, "data");
  const logFile = path.join(dir, "postgres.log");
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "postgres"], { encoding: "utf8" }).trim());
    const gid = Number(execFileSync("id", ["-g", "postgres"], { encoding: "utf8" }).trim());
    fs.chownSync(dir, uid, gid);
  }
  await asPostgres(path.join(bin, "initdb"), ["-D", data, "-U", "postgres", "-A", "trust", "--encoding=UTF8", "--locale=C", "--no-sync"]);
  const port = await freeLoopbackPort();
  // Throwaway data: no fsync. The socket lives in the temporary directory, not /var/run.
  const serverOptions = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off`;
  const pgCtl = (...args: string[]) => asPostgres(path.join(bin, "pg_ctl"), ["-D", data, ...args]);
  const postmasterPids = () => {
    const postmaster = Number(fs.readFileSync(path.join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    const children = execFileSync("ps", ["-o", "pid=", "--ppid", String(postmaster)], { encoding: "utf8" })
      .split("\n")
      .map((line) => Number(line.trim()))
      .filter((pid) => pid > 0);
    return [postmaster, ...children];
  };
  let running = false;
  const instance: PrivatePostgres = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    start: async () => {
      await pgCtl("start", "-w", "-t", "30", "-l", logFile, "-o", serverOptions);
      running = true;
    },
    stop: async () => {
      await pgCtl("stop", "-w", "-t", "30", "-m", "fast");
      running = false;
    },
    freeze: () => postmasterPids().forEach((pid) => process.kill(pid, "SIGSTOP")),
    thaw: () => postmasterPids().forEach((pid) => process.kill(pid, "SIGCONT")),
    destroy: async () => {
      if (running) {
        instance.thaw();
        await pgCtl("stop", "-w", "-t", "30", "-m", "immediate");
        running = false;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  await instance.start();
  return instance;
}

/** A PgBouncer of the test's own, in transaction mode, in front of `target` (the shared test database by default). */
export interface PrivatePgBouncer {
  /** postgres://USER:PASSWORD@127.0.0.1:PORT/DB, the target's credentials and database. */
  url: string;
  destroy(): Promise<void>;
}

/** Starts PgBouncer with the given extra [pgbouncer] settings (such as ignore_startup_parameters). */
export async function startPrivatePgBouncer(settings: Record<string, string> = {}, target: string = postgresUrl): Promise<PrivatePgBouncer> {
  const server = new URL(target);
  const user = decodeURIComponent(server.username);
  const password = decodeURIComponent(server.password);
  const database = decodeURIComponent(server.pathname.slice(1));
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-pgbouncer-"));
  const port = await freeLoopbackPort();
  const pidFile = path.join(dir, "pgbouncer.pid");
  const logFile = path.join(dir, "pgbouncer.log");
  const ini = [
    "[databases]",
    `${database} = host=${server.hostname} port=${server.port || 5432} dbname=${database}`,
    "[pgbouncer]",
    "listen_addr = 127.0.0.1",
    `listen_port = ${port}`,
    "unix_socket_dir =",
    "auth_type = scram-sha-256",
    `auth_file = ${path.join(dir, "userlist.txt")}`,
    "pool_mode = transaction",
    `logfile = ${logFile}`,
    `pidfile = ${pidFile}`,
    ...Object.entries(settings).map(([name, value]) => `${name} = ${value}`),
  ];
  fs.writeFileSync(path.join(dir, "pgbouncer.ini"), ini.join("\n") + "\n");
  fs.writeFileSync(path.join(dir, "userlist.txt"), `"${user}" "${password}"\n`, { mode: 0o600 });
  // PgBouncer refuses to run as root.
  if (process.getuid?.() === 0) execFileSync("chown", ["-R", "postgres:postgres", dir]);
  await asPostgres("pgbouncer", ["-d", "-q", path.join(dir, "pgbouncer.ini")]).catch((error: Error) => {
    throw new Error(`pgbouncer did not start (apt-get install pgbouncer): ${error.message}\n${fs.existsSync(logFile) ? fs.readFileSync(logFile, "utf8") : ""}`);
  });
  // The daemon writes its pid file and listens shortly after the starting process returns.
  for (let waited = 0; !(fs.existsSync(pidFile) && (await accepts(port))); waited += 50) {
    if (waited > 10_000) throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within 10 s:\n${fs.readFileSync(logFile, "utf8")}`);
    await sleep(50);
  }
  const pid = Number(fs.readFileSync(pidFile, "utf8"));
  return {
    url: `postgres://${server.username}:${server.password}@127.0.0.1:${port}/${server.pathname.slice(1)}`,
    destroy: async () => {
      process.kill(pid, "SIGINT");
      while (running(pid)) await sleep(50);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => resolve(true)).once("error", () => resolve(false));
    socket.once("close", () => socket.destroy());
    socket.once("connect", () => socket.end());
  });
}

/** Alive and not a zombie (a daemon's parent here may be an init that never reaps). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}
