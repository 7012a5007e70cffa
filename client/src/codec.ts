/**
 * How a TypeScript app's state becomes the stored bytes. JSON by default; `rawCodec` passes
 * the exact bytes through (for states written by Python, whose JSON JavaScript cannot
 * round-trip: big integers, NaN, 1.0 versus 1).
 */
import { Code, PersisterError } from "./errors";
import type { AsyncStatePersister, LoadQuery, PersistedState, SaveInput, StepInfo, SyncStatePersister } from "./persister";

export interface StateCodec<S> {
  encode(state: S): Uint8Array;
  decode(bytes: Uint8Array): S;
}

/** A JSON value as JSON.parse returns it. */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

const utf8 = new TextDecoder("utf-8", { fatal: true });

export const jsonCodec: StateCodec<JsonValue> = {
  encode: (state) => Buffer.from(JSON.stringify(state), "utf8"),
  decode: (bytes) => {
    try {
      return JSON.parse(utf8.decode(bytes)) as JsonValue;
    } catch (cause) {
      throw new PersisterError(
        Code.DATA_LOSS,
        `the stored state is not JSON that JavaScript can read (${String(cause)}); load it with rawCodec`,
        { cause },
      );
    }
  },
};

export const rawCodec: StateCodec<Uint8Array> = {
  encode: (state) => state,
  decode: (bytes) => bytes,
};

const decoded = <S>(codec: StateCodec<S>, row: PersistedState<Uint8Array> | null): PersistedState<S> | null =>
  row && { ...row, state: codec.decode(row.state) };

const encoded = <S>(codec: StateCodec<S>, input: SaveInput<S>): SaveInput<Uint8Array> => ({
  ...input,
  state: codec.encode(input.state),
});

const decodedStep = <S>(codec: StateCodec<S>, step: StepInfo<Uint8Array>): StepInfo<S> =>
  step.state === undefined ? (step as StepInfo<never>) : { ...step, state: codec.decode(step.state) };

/** A byte persister seen through a codec. */
export function withCodec<S>(
  inner: AsyncStatePersister<Uint8Array>,
  codec: StateCodec<S>,
): AsyncStatePersister<S> {
  if ((codec as StateCodec<unknown>) === rawCodec) return inner as unknown as AsyncStatePersister<S>;
  return {
    initialize: () => inner.initialize(),
    isInitialized: () => inner.isInitialized(),
    save: (input) => inner.save(encoded(codec, input)),
    load: async (query: LoadQuery) => decoded(codec, await inner.load(query)),
    listAppIds: (partitionKey) => inner.listAppIds(partitionKey),
    streamAppIds: (partitionKey) => inner.streamAppIds(partitionKey),
    async *listSteps(query) {
      for await (const step of inner.listSteps(query)) yield decodedStep(codec, step);
    },
    deleteApp: (partitionKey, appId) => inner.deleteApp(partitionKey, appId),
    deletePartition: (partitionKey) => inner.deletePartition(partitionKey),
    prune: (query) => inner.prune(query),
    close: () => inner.close(),
  };
}

export function withCodecSync<S>(
  inner: SyncStatePersister<Uint8Array>,
  codec: StateCodec<S>,
): SyncStatePersister<S> {
  if ((codec as StateCodec<unknown>) === rawCodec) return inner as unknown as SyncStatePersister<S>;
  return {
    initialize: () => inner.initialize(),
    isInitialized: () => inner.isInitialized(),
    save: (input) => inner.save(encoded(codec, input)),
    load: (query) => decoded(codec, inner.load(query)),
    listAppIds: (partitionKey) => inner.listAppIds(partitionKey),
    *listSteps(query) {
      for (const step of inner.listSteps(query)) yield decodedStep(codec, step);
    },
    deleteApp: (partitionKey, appId) => inner.deleteApp(partitionKey, appId),
    deletePartition: (partitionKey) => inner.deletePartition(partitionKey),
    prune: (query) => inner.prune(query),
    close: () => inner.close(),
  };
}
