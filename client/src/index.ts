/**
 * @burr-state/client: persisters that talk to the burr.state.v1.StatePersister gRPC server.
 * In-process stores (no server) are in @burr-state/stores, behind the same interfaces.
 */
export { GrpcStatePersister } from "./grpc-persister";
export { SyncGrpcStatePersister } from "./sync-persister";
export type { ClientOptions, RetryPolicy, TlsOptions } from "./options";
export { jsonCodec, rawCodec, withCodec, withCodecSync, type JsonValue, type StateCodec } from "./codec";
export { Code, codeName, PersisterError } from "./errors";
export type { AsyncStatePersister, SyncStatePersister, SaveInput, LoadQuery, PersistedState, SaveResult, Status } from "./persister";
