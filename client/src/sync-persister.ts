/**
 * SyncGrpcStatePersister: the same calls as GrpcStatePersister, blocking, for code that cannot
 * await (Burr's synchronous persister). It is the async client run on another thread: a worker
 * (sync-worker.ts) hosts RawGrpcPersister, so both clients share one transport, its retries and
 * deadlines. This thread posts {method, args} and waits on Atomics.wait for the answer.
 */
import * as path from "node:path";
import { isUint8Array } from "node:util/types";
import { MessageChannel, Worker, receiveMessageOnPort, type MessagePort } from "node:worker_threads";
import { withCodecSync, type JsonValue } from "./codec";
import { Code, PersisterError } from "./errors";
import type { DeletePartitionResult, ListStepsQuery, LoadQuery, PersistedState, PruneQuery, SaveInput, SaveResult, StepInfo, SyncStatePersister } from "./persister";
import { channelCredentials, resolveOptions, type ClientOptions, type ResolvedOptions } from "./options";
import {
  newSignal,
  signalExited,
  signalPending,
  signalReplied,
  stateCell,
  takenCell,
  waitWhilePending,
  type Exit,
  type Method,
  type Reply,
  type Request,
  type StepsChunk,
  type WorkerSetup,
} from "./sync-protocol";
import { bundledWorker } from "./sync-worker-source";


/** Time for the worker to start (it loads grpc-js, and tsx under TypeScript) on a busy machine. */
const startupSlackMs = 15_000;

const noTransfer: ArrayBuffer[] = [];

/** What one attempt posts. Made afresh for each attempt: a buffer moved to a worker is gone from here. */
type Outgoing = { args: unknown[]; transfer: ArrayBuffer[] };
const plain = (args: unknown[]) => (): Outgoing => ({ args, transfer: noTransfer });

/** Calls run again on a fresh worker when theirs died holding them: reads, and Initialize (idempotent). */
const repeatable = new Set<Method>(["initialize", "isInitialized", "load", "listAppIds", "listStepsOpen"]);
/** Calls about a step listing the worker holds: a fresh worker has none. */
const boundToWorker = new Set<Method>(["listStepsNext", "listStepsClose"]);

/** An attempt's end: the worker's answer, or its exit without one (and whether it had taken the request). */
type Attempt = { reply: Reply } | { exit: Exit["exited"]; taken: boolean };

/**
 * Answers are rebuilt by Node in its main realm; their Date and Uint8Array are remade here so
 * they are the caller's own types where the caller runs in another realm (a jest test, a vm).
 */
const ownDate = (date: Date) => new Date(date.getTime());

/**
 * The worker's script. Its first code hooks the thread's exit before anything else loads, so a
 * worker that dies, even one that cannot load, wakes its caller at once instead of at the guard
 * timeout, with its exit code and the error that ended it; a load failure is also posted as the
 * answer, for the caller to see why. Then the
 * worker itself: in the built package, one self-contained script made at build time (so it runs
 * from an installed package and inside an app's bundle alike, where no worker file exists on
 * disk); from the TypeScript sources, sync-worker.ts.
 */
const workerScript = (load: string) => `
  const { workerData } = require("node:worker_threads");
  let failure;
  process.on("uncaughtExceptionMonitor", (error) => {
    failure = String(error);
  });
  process.on("exit", (code) => {
    workerData.port.postMessage({ exited: { code, failure } });
    Atomics.store(workerData.signal, ${stateCell}, ${signalExited});
    Atomics.notify(workerData.signal, ${stateCell});
  });
  try {
    ${load}
  } catch (error) {
    workerData.port.postMessage({ error: { code: ${Code.INTERNAL}, message: "the sync client's worker thread could not start: " + error } });
    throw error;
  }
`;

const fromSources = !bundledWorker;
/**
 * tsx's loader, resolved only when running from the sources. A name held in a variable: an app
 * that bundles the package gets no esbuild warning that "tsx/cjs" should be marked external.
 */
const tsxLoader = "tsx/cjs";
const bootstrap = workerScript(fromSources ? `require(${JSON.stringify(path.join(__dirname, "sync-worker.ts"))});` : `(function () {\n${bundledWorker}\n})();`);

class WorkerThread {
  readonly worker: Worker;
  readonly port: MessagePort;
  readonly signal = newSignal();

  constructor(options: ResolvedOptions<unknown>) {
    const { port1, port2 } = new MessageChannel();
    const { codec: _, ...cloneable } = options;
    const setup: WorkerSetup = { port: port2, signal: this.signal, options: cloneable };
    this.port = port1;
    this.worker = new Worker(bootstrap, {
      eval: true,
      workerData: setup,
      transferList: [port2],
      // From the TypeScript sources (tests, development) the thread needs tsx to load them.
      execArgv: fromSources ? ["--require", require.resolve(tsxLoader)] : undefined,
    });
    // Its death reaches the caller through the signal; unhandled, this event would end the process.
    this.worker.on("error", () => {});
    // An idle client never keeps the process alive.
    this.worker.unref();
    this.port.unref();
  }
}

class RawSyncGrpcPersister implements SyncStatePersister<Uint8Array> {
  private thread: WorkerThread | null;
  private closed = false;
  /** Longest a call may take in the worker, its retries and backoffs included. */
  private readonly unaryBudgetMs: number;
  private readonly listBudgetMs: number;

  constructor(private readonly options: ResolvedOptions<unknown>) {
    // Bad TLS material fails here, as in the async client, not later inside the worker.
    channelCredentials(options.tls);
    const { attempts, maxBackoffMs } = options.retry;
    const backoffs = Math.max(0, attempts - 1) * maxBackoffMs;
    this.unaryBudgetMs = Math.max(1, attempts) * options.deadlineMs + backoffs;
    this.listBudgetMs = Math.max(1, attempts) * options.listDeadlineMs + backoffs;
    this.thread = new WorkerThread(options);
  }

  /**
   * One blocking call through the worker. A worker that exits without answering is replaced; the
   * call runs again on the new one if the old one never took it (so it never reached the server)
   * or if it is repeatable, unless it reads a listing the old one held. Otherwise UNAVAILABLE: a
   * save may have landed, and sent again it answers ALREADY_EXISTS if it did.
   */
  private call<T>(method: Method, budgetMs: number, outgoing: () => Outgoing): T {
    if (this.closed) throw new PersisterError(Code.FAILED_PRECONDITION, "the persister is closed");
    let attempt = this.attempt(method, budgetMs, outgoing());
    if ("exit" in attempt && !boundToWorker.has(method) && (!attempt.taken || repeatable.has(method))) attempt = this.attempt(method, budgetMs, outgoing());
    if ("exit" in attempt) {
      const { code, failure } = attempt.exit;
      const cause = `exit code ${code ?? "unknown"}${failure ? `, ${failure}` : ""}`;
      throw new PersisterError(Code.UNAVAILABLE, `${method}: the client's worker thread ended (${cause}) before answering; the call may have reached the server (server ${this.options.address})`);
    }
    const { reply } = attempt;
    if ("error" in reply) throw new PersisterError(reply.error.code, reply.error.message);
    return reply.value as T;
  }

  /** Posts the request and blocks until the worker answers or exits; `transfer` is moved there, not copied. */
  private attempt(method: Method, budgetMs: number, { args, transfer }: Outgoing): Attempt {
    // A worker that died since the last call, or was dropped after a timeout, is started afresh.
    let thread = this.thread;
    if (!thread || Atomics.compareExchange(thread.signal, stateCell, signalReplied, signalPending) === signalExited) {
      thread = this.thread = new WorkerThread(this.options);
    }
    const { signal, port } = thread;
    Atomics.store(signal, takenCell, 0);
    port.postMessage({ method, args } satisfies Request, transfer);
    // The worker enforces deadlines and retries; this wait only guards against a stuck worker.
    const settled = waitWhilePending(signal, budgetMs + startupSlackMs);
    const message = receiveMessageOnPort(port)?.message as Reply | Exit | undefined;
    if (message && !("exited" in message)) return { reply: message };
    this.thread = null;
    void thread.worker.terminate();
    if (!settled) {
      throw new PersisterError(Code.DEADLINE_EXCEEDED, `${method} got no answer from the client's worker thread within ${budgetMs + startupSlackMs} ms (server ${this.options.address})`);
    }
    return { exit: message?.exited ?? { code: undefined }, taken: Atomics.load(signal, takenCell) === 1 };
  }

  initialize(): void {
    this.call("initialize", this.unaryBudgetMs, plain([]));
  }

  isInitialized(): boolean {
    return this.call("isInitialized", this.unaryBudgetMs, plain([]));
  }

  save(input: SaveInput<Uint8Array>): SaveResult {
    const { partitionKey, appId, sequenceId, position, state, status } = input;
    // Posting a view copies its whole buffer: a state that is part of a larger one (a Buffer from
    // the pool, a slice of a network read) goes as a copy of its own bytes, moved rather than
    // copied again. Moving the caller's own buffer would empty it.
    const part = isUint8Array(state) && state.byteLength !== state.buffer.byteLength;
    const outgoing = (): Outgoing => {
      const sent = part ? new Uint8Array(state) : state;
      return { args: [{ partitionKey, appId, sequenceId, position, state: sent, status }], transfer: part ? [sent.buffer as ArrayBuffer] : noTransfer };
    };
    const { createdAt } = this.call<SaveResult>("save", this.options.deadlineMs, outgoing);
    return { createdAt: ownDate(createdAt) };
  }

  load(query: LoadQuery): PersistedState<Uint8Array> | null {
    const { partitionKey, appId, sequenceId } = query;
    const row = this.call<PersistedState<Uint8Array> | null>("load", this.unaryBudgetMs, plain([{ partitionKey, appId, sequenceId }]));
    return row && { ...row, state: new Uint8Array(row.state.buffer, row.state.byteOffset, row.state.byteLength), createdAt: ownDate(row.createdAt) };
  }

  listAppIds(partitionKey?: string | null): string[] {
    return this.call("listAppIds", this.listBudgetMs, plain([partitionKey]));
  }

  /** The worker holds the stream; each step of this generator's pages is one blocking call for up to 256 steps. */
  *listSteps(query: ListStepsQuery): Iterable<StepInfo<Uint8Array>> {
    const { partitionKey, appId, beforeSequenceId, limit, includeState } = query;
    const id = this.call<number>("listStepsOpen", this.unaryBudgetMs, plain([{ partitionKey, appId, beforeSequenceId, limit, includeState }]));
    let ended = false;
    try {
      while (!ended) {
        const chunk = this.call<StepsChunk>("listStepsNext", this.listBudgetMs, plain([id, 256]));
        ended = chunk.done;
        for (const step of chunk.steps as StepInfo<Uint8Array>[]) {
          yield { ...step, createdAt: ownDate(step.createdAt), state: step.state && new Uint8Array(step.state.buffer, step.state.byteOffset, step.state.byteLength) };
        }
      }
    } finally {
      if (!ended && !this.closed) this.call("listStepsClose", this.unaryBudgetMs, plain([id]));
    }
  }

  deleteApp(partitionKey: string | null | undefined, appId: string): number {
    return this.call("deleteApp", this.listBudgetMs, plain([partitionKey, appId]));
  }

  deletePartition(partitionKey: string | null | undefined): DeletePartitionResult {
    return this.call("deletePartition", this.listBudgetMs, plain([partitionKey]));
  }

  prune(query: PruneQuery): number {
    const { partitionKey, appId, keepLast, olderThan } = query;
    return this.call("prune", this.listBudgetMs, plain([{ partitionKey, appId, keepLast, olderThan }]));
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    void this.thread?.worker.terminate();
    this.thread = null;
  }
}

export class SyncGrpcStatePersister<S = JsonValue> implements SyncStatePersister<S> {
  private readonly inner: SyncStatePersister<S>;

  constructor(options: ClientOptions<S>) {
    const resolved = resolveOptions(options);
    this.inner = withCodecSync(new RawSyncGrpcPersister(resolved), resolved.codec);
  }

  initialize = () => this.inner.initialize();
  isInitialized = () => this.inner.isInitialized();
  save = (input: SaveInput<S>) => this.inner.save(input);
  load = (query: LoadQuery) => this.inner.load(query);
  listAppIds = (partitionKey?: string | null) => this.inner.listAppIds(partitionKey);
  listSteps = (query: ListStepsQuery) => this.inner.listSteps(query);
  deleteApp = (partitionKey: string | null | undefined, appId: string) => this.inner.deleteApp(partitionKey, appId);
  deletePartition = (partitionKey: string | null | undefined) => this.inner.deletePartition(partitionKey);
  prune = (query: PruneQuery) => this.inner.prune(query);
  close = () => this.inner.close();
}
