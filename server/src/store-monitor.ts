/**
 * The store's reachability, for health: the server probes its store (Backend.probe) at start,
 * and does not start on one it cannot reach; then every few seconds, and soon after a call
 * failed UNAVAILABLE. Health says NOT_SERVING while the probe fails and SERVING again once it
 * succeeds (grpc/health.ts follows the StoreReachability this sets).
 */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { openBackend, redactUrl, type Backend } from "@burr-state/stores";
import type { StoreReachability } from "./grpc/health";
import type { Logger } from "./log";

/** A probe that has not answered by then has failed. */
const probeTimeoutMs = 5000;
/** After a failed call, the next probe runs this soon (and probes never run closer together than this). */
const nudgeDelayMs = 200;
/** Between start attempts. */
const retryDelayMs = 500;

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));
const isUnavailable = (error: unknown) => error instanceof PersisterError && error.code === Code.UNAVAILABLE;

/** The work's outcome, or a failure once `ms` have passed without one. */
function within<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not answer within ${ms} ms`)), ms);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Opens the store and probes it, again and again while it answers UNAVAILABLE, for up to
 * `timeoutMs`; then fails with the last reason. Anything else (a malformed URL, a missing driver)
 * fails at once. An attempt under way when the time is up is waited for: each store bounds its
 * own (connect and command timeouts, at most probeTimeoutMs here).
 */
export async function openReachableStore(url: string, timeoutMs: number, log: Logger): Promise<Backend> {
  const deadline = Date.now() + timeoutMs;
  let lastReason = "";
  for (;;) {
    let backend: Backend | null = null;
    try {
      backend = await openBackend(url);
      await within(backend.probe(), probeTimeoutMs, `the ${backend.kind} store`);
      return backend;
    } catch (error) {
      if (!backend && !isUnavailable(error)) throw error;
      await backend?.close().catch(() => {});
      const reason = messageOf(error);
      if (Date.now() >= deadline) {
        throw new Error(`the store ${redactUrl(url)} could not be reached within ${timeoutMs} ms (--store-start-timeout-ms): ${reason}`, { cause: error });
      }
      if (reason !== lastReason) log.error("store_waiting", { store: redactUrl(url), cause: reason, timeoutMs });
      lastReason = reason;
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryDelayMs, Math.max(0, deadline - Date.now()))));
    }
  }
}

export interface MonitorOptions {
  intervalMs: number;
  reachability: StoreReachability;
  log: Logger;
}

/** Probes the store every intervalMs (and soon after a call fails UNAVAILABLE), one probe at a time. */
export class StoreMonitor {
  /** The backend to serve from: the store's, telling this monitor of every UNAVAILABLE. */
  readonly backend: Backend;
  private timer: NodeJS.Timeout | null = null;
  private dueAt = Infinity;
  private probing = false;
  private lastProbeAt = 0;
  private stopped = false;
  private downSince = 0;

  constructor(
    private readonly store: Backend,
    private readonly options: MonitorOptions,
  ) {
    this.backend = watched(store, (error) => {
      if (isUnavailable(error)) this.nudge();
    }, () => {
      // A call that succeeds while health says NOT_SERVING: probe now rather than at the next interval.
      if (!options.reachability.reachable) this.nudge();
    });
  }

  start(): void {
    this.schedule(this.options.intervalMs);
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  /** A probe soon (at most one per nudgeDelayMs). */
  nudge(): void {
    if (this.probing) return;
    this.schedule(Math.max(nudgeDelayMs, this.lastProbeAt + nudgeDelayMs - Date.now()));
  }

  /** The next probe in `ms`, unless one is due sooner. */
  private schedule(ms: number): void {
    if (this.stopped) return;
    const at = Date.now() + ms;
    if (this.timer && at >= this.dueAt) return;
    if (this.timer) clearTimeout(this.timer);
    this.dueAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.dueAt = Infinity;
      void this.probe();
    }, ms);
    // The server's own handles keep the process alive; the monitor must not delay an exit.
    this.timer.unref();
  }

  /** Runs one probe and sets reachability from it; then schedules the next. */
  async probe(): Promise<void> {
    if (this.probing || this.stopped) return;
    this.probing = true;
    this.lastProbeAt = Date.now();
    let failure: unknown = null;
    try {
      await within(this.store.probe(), probeTimeoutMs, `the ${this.store.kind} store`);
    } catch (error) {
      failure = error;
    }
    this.probing = false;
    if (this.stopped) return;
    const { reachability, log } = this.options;
    if (failure && reachability.reachable) {
      this.downSince = Date.now();
      log.error("store_unavailable", { backend: this.store.kind, cause: messageOf(failure), health: "NOT_SERVING" });
    } else if (!failure && !reachability.reachable) {
      log.info("store_available", { backend: this.store.kind, downMs: Date.now() - this.downSince, health: "SERVING" });
    }
    reachability.set(!failure);
    this.schedule(this.options.intervalMs);
  }
}

/** The backend with every failure (and, while down, every success) reported; calls otherwise unchanged. */
function watched(backend: Backend, failed: (error: unknown) => void, succeeded: () => void): Backend {
  const report = <T>(work: Promise<T>): Promise<T> =>
    work.then(
      (value) => {
        succeeded();
        return value;
      },
      (error: unknown) => {
        failed(error);
        throw error;
      },
    );
  // A Proxy, not a list of methods: stores may have more than Backend names (history, deletion), and those are watched too.
  return new Proxy(backend, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver);
      if (typeof value !== "function" || property === "close" || property === "probe" || property === "constructor") return value;
      return function (this: unknown, ...args: unknown[]) {
        const result = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (result instanceof Promise) return report(result);
        if (result && typeof (result as AsyncIterable<unknown>)[Symbol.asyncIterator] === "function") return reportPages(result as AsyncIterable<unknown>);
        return result;
      };
    },
  });

  async function* reportPages<T>(pages: AsyncIterable<T>): AsyncIterable<T> {
    try {
      yield* pages;
    } catch (error) {
      failed(error);
      throw error;
    }
  }
}
