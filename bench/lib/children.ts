/**
 * The processes a bench measures: the real server (`server/dist/main.js`, as `npm start` runs it)
 * and the no-op server (bench/noop-server.ts), each a child process found by its "started" log
 * line, plus a sampler of a child's resident memory.
 */
import { execFileSync } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { Worker } from "node:worker_threads";
import { repoRoot, startProcess, type ServerProcess } from "../../tests/support/server-process";

export { repoRoot, ChildExited } from "../../tests/support/server-process";

export type ChildServer = ServerProcess;

export interface ChildOptions {
  /** Write a V8 CPU profile of the child into this directory when it exits. */
  cpuProfDir?: string;
}

/**
 * `npm run build` (incremental: seconds when nothing changed), so that the server measured is
 * the current source's, and exists at all in a fresh clone (as jest's global setup does).
 */
export function buildServer(): void {
  execFileSync(process.execPath, [path.join(repoRoot, "scripts/build.js")], { cwd: repoRoot, stdio: "inherit" });
}

/** Starts `script` (relative to the repository) and waits for its "started" line. */
export function startChildServer(script: string, args: string[], options: ChildOptions = {}): Promise<ChildServer> {
  return startProcess(script, args, options);
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
