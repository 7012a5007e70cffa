export { GrpcStatePersister } from "./grpc-persister";
export { SyncGrpcStatePersister } from "./sync-persister";
export { openPersister, openSyncSqlitePersister, type EmbeddedOptions } from "./embedded";
export type { ClientOptions, RetryPolicy, TlsOptions } from "./options";
export { jsonCodec, rawCodec, type JsonValue, type StateCodec } from "../../core/codec";
export { Code, PersisterError } from "../../core/errors";
export type { AsyncStatePersister, SyncStatePersister, SaveInput, LoadQuery, PersistedState, SaveResult, Status } from "../../core/persister";
