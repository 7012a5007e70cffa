/** One step as Burr's persisters stored it, read in Burr's write order. */
export interface BurrStep {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  position: string;
  /** The bytes the Python persister writes for the state Burr would load from this row. */
  state: Uint8Array;
  status: string;
  /** Null when the row has none (a NULL created_at): the target store stamps its own. */
  createdAt: Date | null;
}

export interface BurrReader {
  /** How many steps `steps()` will yield (for the progress bar). */
  count(): Promise<number>;
  /** Every step, oldest first: by creation time, ties in the order Burr wrote them where the layout knows it. */
  steps(): AsyncIterable<BurrStep>;
  close(): Promise<void>;
}

/** Names the row in errors: a step that cannot be read stops the import before it is written. */
export function describeStep(partitionKey: unknown, appId: unknown, sequenceId: unknown): string {
  return `partition_key=${JSON.stringify(partitionKey)} app_id=${JSON.stringify(appId)} sequence_id=${String(sequenceId)}`;
}

export function sequenceIdOf(value: unknown, where: string): number {
  const n = typeof value === "bigint" ? Number(value) : typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isSafeInteger(n) || n < 0) throw new Error(`${where}: sequence_id ${String(value)} is not a whole number from 0 to 2^53-1`);
  return n;
}

/** Burr's partition_key None is the default partition ("" in every store, as in Burr's SQL layouts). */
export const partitionOf = (value: unknown): string => (value === null || value === undefined ? "" : String(value));

export const utf8 = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "utf8"));
