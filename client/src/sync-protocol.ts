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
/** What the worker is started with: the options minus the codec, which cannot cross threads. */
export type WorkerSetup = { port: MessagePort; signal: Int32Array; options: Omit<ResolvedOptions<unknown>, "codec"> };

/** Values of the signal's one cell: the worker sets them, the calling thread sets it back to pending for a call. */
export const signalPending = 0;
export const signalReplied = 1;
export const signalExited = 2;
