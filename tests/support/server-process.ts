/** Runs the real server (`server/src/main.ts`) in a child process, as `npm start` would. */
import { spawn, type ChildProcess } from "node:child_process";
import * as path from "node:path";

const root = path.resolve(__dirname, "../..");

export interface ServerProcess {
  port: number;
  address: string;
  child: ChildProcess;
  /** Every log line the server wrote so far. */
  logs: string[];
  /** Sends the signal and resolves with the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export async function startServerProcess(args: string[], env: NodeJS.ProcessEnv = {}): Promise<ServerProcess> {
  const child = spawn(process.execPath, ["--require", "tsx/cjs", path.join(root, "server/src/main.ts"), "--listen", "127.0.0.1:0", ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ["ignore", "inherit", "pipe"],
  });
  const logs: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    let buffered = "";
    const timer = setTimeout(() => reject(new Error(`server did not start in 30 s:\n${logs.join("\n")}`)), 30_000);
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
          resolve(event.port as number);
        }
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before starting:\n${logs.join("\n")}`));
    });
  });
  return {
    port,
    address: `127.0.0.1:${port}`,
    child,
    logs,
    stop: (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

function parseLine(line: string): Record<string, unknown> | null {
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return null;
  }
}
