/** What the sync client's calling thread and its worker thread say to each other. */
import type { MessagePort } from "node:worker_threads";
import type { Code } from "./errors";
import type { ResolvedOptions } from "./options";

export type Method =
  | "initialize"
  | "isInitialized"
  | "save"
  | "load"
  | "listAppIds"
  | "deleteApp"
  | "deletePartition"
  | "prune"
  // A ListSteps stream held open in the worker, read a chunk per call.
  | "listStepsOpen"
  | "listStepsNext"
  | "listStepsClose";

/** The answer of listStepsNext: the next steps (at most the number asked) and whether the stream ended. */
export type StepsChunk = { steps: unknown[]; done: boolean };
export type Request = { method: Method; args: unknown[] };
export type Reply = { value: unknown } | { error: { code: Code; message: string } };
/** The worker's last message, posted as its thread ends: the exit code and the uncaught error that ended it, if any. */
export type Exit = { exited: { code: number | undefined; failure?: string } };
/** What the worker is started with: the options minus the codec, which cannot cross threads. */
export type WorkerSetup = { port: MessagePort; signal: Int32Array; options: Omit<ResolvedOptions<unknown>, "codec"> };

/** The signal's cells: the call's state, and whether the worker took the current request. */
export const stateCell = 0;
export const takenCell = 1;
export const newSignal = () => new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));

/** Values of the state cell: the worker sets them, the calling thread sets it back to pending for a call. */
export const signalPending = 0;
export const signalReplied = 1;
export const signalExited = 2;

/** The worker's side: the answer goes on the port first, so a caller that sees "replied" finds it there. */
export function postAnswer(port: MessagePort, signal: Int32Array, reply: Reply, transfer: ArrayBuffer[]): void {
  port.postMessage(reply, transfer);
  Atomics.store(signal, stateCell, signalReplied);
  Atomics.notify(signal, stateCell);
}

/**
 * The calling side: blocks while the state cell is pending, at most `timeoutMs`; true once the
 * worker answered or exited. A wake-up alone proves nothing: when the worker answers before the
 * caller starts waiting, its notify can come late, during the caller's next call (the worker's
 * thread paused between its store and its notify), so the cell is read again after each one.
 */
export function waitWhilePending(signal: Int32Array, timeoutMs: number): boolean {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    if (Atomics.load(signal, stateCell) !== signalPending) return true;
    const left = deadline - performance.now();
    if (left <= 0) return false;
    Atomics.wait(signal, stateCell, signalPending, left);
  }
}
