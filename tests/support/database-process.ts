/**
 * A database server of a test's own (a redis-server, a FerretDB) on a loopback port: started as a
 * child process, waited for until it answers, and killed when the test takes it away.
 */
import { spawn, type ChildProcess } from "node:child_process";
import * as net from "node:net";
import * as path from "node:path";

/** A database process the test may hang (SIGSTOP), kill and start again on the same port. */
export interface DatabaseProcess {
  port: number;
  url: string;
  child: ChildProcess;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
}

export interface DatabaseProcessOptions {
  port: number;
  url: string;
  /** Resolves once the database answers; throws (why not, for the error) while it does not yet. */
  answers: () => Promise<unknown>;
  withinMs: number;
  /** Runs once the process has exited, e.g. to remove its files. */
  afterExit?: () => void;
}

/** A loopback port nobody listens on right now. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Starts `command` and waits until it answers; if it exits first or does not answer in time, fails with its log's tail. */
export async function startDatabaseProcess(command: string, args: string[], options: DatabaseProcessOptions): Promise<DatabaseProcess> {
  const { port, url } = options;
  const name = path.basename(command);
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve(options.afterExit?.())));
  // Keep the log's tail for failure messages; reading it also keeps the pipes from filling up.
  let log = "";
  const keepTail = (data: Buffer) => (log = (log + data.toString()).slice(-4000));
  child.stdout!.on("data", keepTail);
  child.stderr!.on("data", keepTail);
  const deadline = Date.now() + options.withinMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${name} on port ${port} exited with ${child.exitCode}:\n${log}`);
    try {
      await options.answers();
      break;
    } catch (error) {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`${name} on port ${port} did not answer within ${options.withinMs / 1000} s: ${String(error)}\n${log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }
  return {
    port,
    url,
    child,
    kill: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await exited;
    },
  };
}

/** Resolves once a TCP connection to the loopback port opens; rejects while none can. */
export function acceptsConnections(port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}
