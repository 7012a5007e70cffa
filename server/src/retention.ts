/**
 * The server's retention policy (`--retain-last N`, `--retain-for DURATION`; off by default): a
 * background sweep that prunes every partition now and then, through the store's own bounded
 * batches. Several replicas may sweep one store: a prune is idempotent (a second sweep finds
 * less or nothing to delete), and each replica's timer is jittered so they rarely overlap.
 * Like every prune it never deletes an app's highest step.
 */
import type { PruneQuery } from "@burr-state/client/protocol";
import type { Logger } from "./log";

export interface RetentionPolicy {
  /** Keep the newest N steps of each app; null: no count rule. */
  keepLast: number | null;
  /** Delete steps older than this many milliseconds; null: no age rule. */
  retainForMs: number | null;
  /** How often to sweep. */
  everyMs: number;
}

const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** "90d", "12h", "30m", "45s", "500ms", or combinations like "1d12h". */
export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+)(ms|s|m|h|d|w)/g)];
  const total = parts.reduce((sum, [, amount, unit]) => sum + Number(amount) * units[unit!]!, 0);
  if (parts.length === 0 || parts.map((part) => part[0]).join("") !== text || total <= 0 || !Number.isSafeInteger(total)) {
    throw new Error(`a duration must look like 30d, 12h, 15m, 90s, 500ms or 1d12h, got ${JSON.stringify(text)}`);
  }
  return total;
}

/** The prune one sweep runs at `now`. */
export function sweepQuery(policy: RetentionPolicy, now: number): PruneQuery {
  return {
    keepLast: policy.keepLast,
    olderThan: policy.retainForMs === null ? null : new Date(now - policy.retainForMs),
  };
}

export interface Sweeper {
  /** Resolves when a running sweep (if any) has finished; no further sweeps start. */
  stop(): Promise<void>;
}

/** Runs `prune(sweepQuery(...))` every `everyMs` (jittered by up to a tenth), one sweep at a time. */
export function startRetention(prune: (query: PruneQuery) => Promise<number>, policy: RetentionPolicy, log: Logger): Sweeper {
  let stopped = false;
  let running: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(sweep, policy.everyMs * (0.9 + Math.random() * 0.2));
    timer.unref();
  };
  const sweep = () => {
    const started = Date.now();
    running = prune(sweepQuery(policy, started)).then(
      (steps) => log.info("retention_swept", { stepsDeleted: steps, ms: Date.now() - started }),
      (error: unknown) => log.error("retention_failed", { cause: error instanceof Error ? error.message : String(error) }),
    );
    void running.finally(schedule);
  };
  schedule();
  return {
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
