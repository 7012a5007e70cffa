/**
 * The ways the conformance suite reaches a store: in-process, through the server with the
 * async client, and through the server with the sync client. Each takes a store (a URL for
 * the suite's data, and fresh URLs for never-initialized stores).
 */
import { rawCodec } from "../../client/src/codec";
import { GuardedPersister } from "../../stores/src/guard";
import { defaultLimits } from "../../client/src/validation";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { openBackend } from "../../stores/src/registry";
import type { Persister, Subject } from "../conformance/suite";
import { startServerProcess, type ServerProcess } from "./server-process";
import { syncAsAsync } from "./sync-as-async";

export interface StoreUnderTest {
  /** The suite's store. */
  url: string;
  /** A store never initialized before (a new file, table, prefix or collection). */
  freshUrl(): string;
  /** Drops what the store holds, when the suite is done. */
  cleanup?(): Promise<void>;
  /** The clients' deadline per call, for a test database slower than any production one (FerretDB). */
  clientDeadlineMs?: number;
  /** Steps of the conformance suite's bulk delete (Subject.bulkSteps), for a test database too slow for the default. */
  bulkSteps?: number;
}

export function inProcess(store: StoreUnderTest): Subject {
  const openAt = async (url: string): Promise<Persister> => new GuardedPersister(await openBackend(url));
  return {
    open: () => openAt(store.url),
    openUninitialized: () => openAt(store.freshUrl()),
    restart: async () => {},
    maxStateBytes: defaultLimits.maxStateBytes,
    bulkSteps: store.bulkSteps,
    teardown: async () => store.cleanup?.(),
  };
}

type Connect = (address: string) => Persister;

function throughServer(store: StoreUnderTest, connect: Connect): Subject {
  let server: ServerProcess | null = null;
  const extra: ServerProcess[] = [];
  const start = async () => {
    server = await startServerProcess(["--store", store.url]);
  };
  return {
    open: async () => {
      if (!server) await start();
      return connect(server!.address);
    },
    openUninitialized: async () => {
      const fresh = await startServerProcess(["--store", store.freshUrl()]);
      extra.push(fresh);
      return connect(fresh.address);
    },
    restart: async () => {
      expect(await server!.stop("SIGTERM")).toBe(0);
      await start();
    },
    maxStateBytes: defaultLimits.maxStateBytes,
    bulkSteps: store.bulkSteps,
    teardown: async () => {
      await Promise.all([server, ...extra].map((s) => s?.stop("SIGTERM")));
      await store.cleanup?.();
    },
  };
}

export const viaAsyncClient = (store: StoreUnderTest) =>
  throughServer(store, (address) => new GrpcStatePersister({ address, codec: rawCodec, deadlineMs: store.clientDeadlineMs }));

export const viaSyncClient = (store: StoreUnderTest) =>
  throughServer(store, (address) => syncAsAsync(new SyncGrpcStatePersister({ address, codec: rawCodec, deadlineMs: store.clientDeadlineMs })));
