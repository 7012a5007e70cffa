/**
 * Writes Burr's steps into a store in Burr's order, so the store's write order
 * (its "latest in partition" and the app listing's order) is Burr's. A step already stored
 * (ALREADY_EXISTS) counts as already present: a second run, or one after a crash, writes only
 * what is missing. A step the store refuses (too large, a bad key) is counted and reported,
 * the others go on; anything else (the store unreachable) stops the import.
 */
import { Code, PersisterError } from "@burr-state/client/protocol";
import type { GuardedPersister } from "@burr-state/stores";
import type { BurrStep } from "./readers";

export interface CopyCounts {
  read: number;
  written: number;
  alreadyPresent: number;
  failed: number;
}

/** Refusals that belong to one step: the import goes on without it. */
const stepRefusals: number[] = [Code.INVALID_ARGUMENT, Code.RESOURCE_EXHAUSTED];

/**
 * Stores that commit saves made back to back in the order they were made (SQLite's queue of
 * pending saves becomes one transaction, in order): the import keeps many in flight there. The
 * others get one save at a time (PostgreSQL orders a batch's rows by key, not by arrival).
 */
const inFlightByStore: Record<string, number> = { sqlite: 256 };

export async function copySteps(
  steps: AsyncIterable<BurrStep>,
  persister: GuardedPersister,
  onProgress: (counts: CopyCounts) => void,
  onFailure: (step: BurrStep, error: PersisterError) => void,
): Promise<CopyCounts> {
  const counts: CopyCounts = { read: 0, written: 0, alreadyPresent: 0, failed: 0 };
  const window = inFlightByStore[persister.backend.kind] ?? 1;
  let stop: unknown = null;
  const saveOne = async (step: BurrStep): Promise<void> => {
    const { createdAt, ...input } = step;
    try {
      await (createdAt ? persister.saveCreatedAt(input, createdAt) : persister.save(input));
      counts.written++;
    } catch (error) {
      if (error instanceof PersisterError && error.code === Code.ALREADY_EXISTS) counts.alreadyPresent++;
      else if (error instanceof PersisterError && stepRefusals.includes(error.code)) {
        counts.failed++;
        onFailure(step, error);
      } else {
        stop ??= error;
        return;
      }
    }
    onProgress(counts);
  };
  const inFlight: Array<Promise<void>> = [];
  for await (const step of steps) {
    counts.read++;
    inFlight.push(saveOne(step));
    if (inFlight.length >= window) await inFlight.shift();
    if (stop !== null) break;
  }
  await Promise.all(inFlight);
  if (stop !== null) throw stop;
  return counts;
}
