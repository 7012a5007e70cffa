/**
 * Runs a server in a child process and waits for its "started" log line: the real server as
 * `npm start` runs it (the compiled server/dist/main.js), or a TypeScript script such as the
 * benchmark's no-op server (through tsx, with the workspace packages resolved to their sources).
 * Shared by the tests and the benchmark.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";

export const repoRoot = path.resolve(__dirname, "../..");

/** The compiled server, built by `npm run build` (jest's global setup builds it). */
export const serverScript = "server/dist/main.js";

export interface ServerProcess {
  port: number;
  address: string;
  pid: number;
  child: ChildProcess;
  /** Every log line the server wrote so far. */
  logs: string[];
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface ProcessOptions {
  env?: NodeJS.ProcessEnv;
  /** Write a V8 CPU profile of the child into this directory when it exits. */
  cpuProfDir?: string;
  /** Run the child as this user and group (the test runs as root). */
  uid?: number;
  gid?: number;
}

/** The real server on a free loopback port, with these extra arguments. */
export function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}, options: ProcessOptions = {}): Promise<ServerProcess> {
  return startProcess(serverScript, args, { ...options, env });
}

/** `script` (relative to the repository) with `--listen 127.0.0.1:0` and `args`. */
export async function startProcess(script: string, args: string[], options: ProcessOptions = {}): Promise<ServerProcess> {
  const profiling = options.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfDir] : [];
  const loader = script.endsWith(".ts") ? ["--conditions=burr-source", "--require", "tsx/cjs"] : [];
  const child = spawn(process.execPath, [...profiling, ...loader, path.join(repoRoot, script), "--listen", "127.0.0.1:0", ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ["ignore", "inherit", "pipe"],
    uid: options.uid,
    gid: options.gid,
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = (await watchStarted(child, logs, exited, script)).port as number;
  return {
    port,
    address: `127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    logs,
    stop: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/**
 * Collects a server child's stderr lines into `logs` and resolves with its "started" event;
 * rejects with ChildExited if it exits first, or after 30 s.
 */
export function watchStarted(child: ChildProcess, logs: string[], exited: Promise<number | null>, what = "the server"): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`${what} did not start in 30 s:\n${logs.join("\n")}`)), 30_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (data: string) => {
      buffered += data;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        const event = parseLine(line);
        if (event?.event === "started") {
          clearTimeout(timer);
          resolve(event);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new ChildExited(code, logs));
    });
  });
}

/** A child that exited before it served; `reason` is the cause it logged, if any. */
export class ChildExited extends Error {
  readonly reason: string;

  constructor(
    readonly code: number | null,
    readonly logs: string[],
  ) {
    const failure = logs.map(parseLine).find((event) => event?.event === "start_failed");
    const reason = typeof failure?.cause === "string" ? failure.cause : logs.slice(-5).join("\n");
    super(`exited with ${code} before serving: ${reason}`);
    this.reason = reason;
  }
}

export function parseLine(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}
