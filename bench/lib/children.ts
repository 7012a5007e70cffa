/**
 * The processes a bench measures: the real server (`server/src/main.ts`, as `npm start` runs it)
 * and the no-op server (bench/noop-server.ts), each a child process found by its "started" log
 * line, plus a sampler of a child's resident memory.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { Worker } from "node:worker_threads";

export const repoRoot = path.resolve(__dirname, "../..");

export interface ChildServer {
  address: string;
  pid: number;
  child: ChildProcess;
  /** Every stderr line so far (the servers log one JSON object a line). */
  logs: string[];
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

export interface ChildOptions {
  /** Write a V8 CPU profile of the child into this directory when it exits. */
  cpuProfDir?: string;
}

/** Starts `script` (relative to the repository) with tsx and waits for its "started" line. */
export async function startChildServer(script: string, args: string[], options: ChildOptions = {}): Promise<ChildServer> {
  const profiling = options.cpuProfDir ? ["--cpu-prof", "--cpu-prof-dir", options.cpuProfDir] : [];
  const child = spawn(process.execPath, [...profiling, "--require", "tsx/cjs", path.join(repoRoot, script), "--listen", "127.0.0.1:0", ...args], {
    cwd: repoRoot,
    stdio: ["ignore", "inherit", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`${script} did not start in 30 s:\n${logs.join("\n")}`)), 30_000);
    child.stderr!.setEncoding("utf8");
    child.stderr!.on("data", (data: string) => {
      buffered += data;
      const lines = buffered.split("\n");
      buffered = lines.pop()!;
      for (const line of lines) {
        logs.push(line);
        const event = parseJson(line);
        if (event?.event === "started") {
          clearTimeout(timer);
          resolve(event.port as number);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new ChildExited(code, logs));
    });
  });
  return {
    address: `127.0.0.1:${port}`,
    pid: child.pid!,
    child,
    logs,
    stop: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      return exited;
    },
  };
}

/** A child that exited before it served; `reason` is the cause it logged, if any. */
export class ChildExited extends Error {
  readonly reason: string;

  constructor(
    readonly code: number | null,
    readonly logs: string[],
  ) {
    const failure = logs.map(parseJson).find((event) => event?.event === "start_failed");
    const reason = typeof failure?.cause === "string" ? failure.cause : logs.slice(-5).join("\n");
    super(`exited with ${code} before serving: ${reason}`);
    this.reason = reason;
  }
}

function parseJson(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}

export interface RssSampling {
  /** Stops sampling; the first and the highest sample, and how many were taken. */
  stop(): Promise<{ baselineBytes: number; peakBytes: number; samples: number }>;
}

/**
 * Samples a process's VmRSS every `everyMs` from a worker thread, so that a busy event loop in
 * this process (consuming the very stream being measured) does not thin out the samples.
 */
export async function sampleResidentMemory(pid: number, everyMs = 2): Promise<RssSampling> {
  const control = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(
    `
    const { workerData, parentPort } = require("node:worker_threads");
    const fs = require("node:fs");
    const { pid, everyMs, control } = workerData;
    const read = () => Number(/^VmRSS:\\s+(\\d+) kB/m.exec(fs.readFileSync("/proc/" + pid + "/status", "utf8"))[1]) * 1024;
    const baselineBytes = read();
    let peakBytes = baselineBytes, samples = 1;
    parentPort.postMessage("ready");
    while (Atomics.load(control, 0) === 0) {
      Atomics.wait(control, 0, 0, everyMs);
      peakBytes = Math.max(peakBytes, read());
      samples++;
    }
    parentPort.postMessage({ baselineBytes, peakBytes, samples });
    `,
    { eval: true, workerData: { pid, everyMs, control } },
  );
  await once(worker, "message");
  return {
    stop: async () => {
      const answered = once(worker, "message");
      Atomics.store(control, 0, 1);
      Atomics.notify(control, 0);
      const [result] = (await answered) as [{ baselineBytes: number; peakBytes: number; samples: number }];
      await worker.terminate();
      return result;
    },
  };
}
