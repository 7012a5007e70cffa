/** A closed-loop load: `concurrency` calls in flight, each slot starting its next call when one ends. */
import type { SlotOperation } from "./workload";

export interface Timing {
  /** At least this long, and until every slot has finished a call (but at most measureMs more), before measuring. */
  warmupMs: number;
  /** At least this long, and until twice as many calls as slots have started (but at most twice this long). */
  measureMs: number;
}

/** What one client process measured. */
export interface Measurement {
  /** Calls that started in the measuring window and succeeded. */
  calls: number;
  errors: number;
  /** Failed calls by error code name ("DEADLINE_EXCEEDED", ...; "Error" for anything without a code). */
  failures: Record<string, number>;
  firstError?: string;
  /** From the start of the window to the end of the last measured call. */
  elapsedMs: number;
  latenciesMs: Float64Array;
}

const now = () => performance.now();

export async function closedLoop(slots: SlotOperation[], timing: Timing): Promise<Measurement> {
  for (const slot of slots) await slot.prepare();
  const warmupEnds = now() + timing.warmupMs;
  /** A slow store must not stretch a run without bound: these caps win over the minimums. */
  const latestWindowStart = warmupEnds + timing.measureMs;
  const minimumCalls = 2 * slots.length;
  let hardStop = Number.POSITIVE_INFINITY;
  let warmedSlots = 0;
  let measureFrom = Number.POSITIVE_INFINITY;
  let stopAt = Number.POSITIVE_INFINITY;
  let latencies = new Float64Array(4096);
  let started = 0;
  let calls = 0;
  let errors = 0;
  const failures: Record<string, number> = {};
  let firstError: string | undefined;
  let lastEnd = 0;
  /** The window opens once the warm-up time is over and every slot is past its first (cold) call. */
  const openWindow = (at: number) => {
    if (measureFrom !== Number.POSITIVE_INFINITY || at < warmupEnds) return;
    if (warmedSlots < slots.length && at < latestWindowStart) return;
    measureFrom = at;
    stopAt = at + timing.measureMs;
    hardStop = at + 2 * timing.measureMs;
    lastEnd = at;
  };
  const lane = async (slot: SlotOperation) => {
    let warmed = false;
    for (let began = now(); began < stopAt || (started < minimumCalls && began < hardStop); began = now()) {
      const measured = began >= measureFrom;
      if (measured) started++;
      let failed: unknown = null;
      try {
        await slot.run();
      } catch (error) {
        failed = error;
      }
      const ended = now();
      if (!warmed) {
        warmed = true;
        warmedSlots++;
      }
      openWindow(ended);
      if (!measured) continue;
      if (failed !== null) {
        errors++;
        const code = (failed as { codeName?: unknown }).codeName;
        const key = typeof code === "string" ? code : "Error";
        failures[key] = (failures[key] ?? 0) + 1;
        firstError ??= failed instanceof Error ? failed.message : String(failed);
        continue;
      }
      if (calls === latencies.length) {
        const grown = new Float64Array(latencies.length * 2);
        grown.set(latencies);
        latencies = grown;
      }
      latencies[calls++] = ended - began;
      lastEnd = Math.max(lastEnd, ended);
    }
  };
  await Promise.all(slots.map(lane));
  return { calls, errors, failures, firstError, elapsedMs: lastEnd - measureFrom, latenciesMs: latencies.slice(0, calls) };
}

export interface Summary {
  opsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  calls: number;
  errors: number;
  failures: Record<string, number>;
  firstError?: string;
}

/** Merges the measurements of the client processes that ran one job side by side. */
export function summarize(measurements: Measurement[]): Summary {
  const all = Float64Array.from(measurements.flatMap((m) => Array.from(m.latenciesMs))).sort();
  const quantile = (q: number) => (all.length === 0 ? Number.NaN : all[Math.min(all.length - 1, Math.floor(q * all.length))]!);
  return {
    opsPerSec: measurements.reduce((sum, m) => sum + (m.elapsedMs > 0 ? (m.calls * 1000) / m.elapsedMs : 0), 0),
    p50Ms: quantile(0.5),
    p99Ms: quantile(0.99),
    calls: all.length,
    errors: measurements.reduce((sum, m) => sum + m.errors, 0),
    failures: measurements.reduce<Record<string, number>>((all, m) => {
      for (const [code, count] of Object.entries(m.failures)) all[code] = (all[code] ?? 0) + count;
      return all;
    }, {}),
    firstError: measurements.find((m) => m.firstError)?.firstError,
  };
}
