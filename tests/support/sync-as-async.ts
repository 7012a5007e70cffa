/** Lets the async conformance suite drive a synchronous persister, unchanged. */
import type { AsyncStatePersister, SyncStatePersister } from "../../client/src/persister";

export function syncAsAsync<S>(sync: SyncStatePersister<S>): AsyncStatePersister<S> {
  const later = <T>(work: () => T) => new Promise<T>((resolve, reject) => setImmediate(() => {
    try {
      resolve(work());
    } catch (error) {
      reject(error);
    }
  }));
  return {
    initialize: () => later(() => sync.initialize()),
    isInitialized: () => later(() => sync.isInitialized()),
    save: (input) => later(() => sync.save(input)),
    load: (query) => later(() => sync.load(query)),
    listAppIds: (partitionKey) => later(() => sync.listAppIds(partitionKey)),
    async *streamAppIds(partitionKey) {
      yield* await later(() => sync.listAppIds(partitionKey));
    },
    close: () => later(() => sync.close()),
  };
}
