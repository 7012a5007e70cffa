/**
 * What the server and the stores share with the client: the domain types and errors, the input
 * rules every store obeys, the wire <-> domain mapping, and the grpc-js service adapter. Not
 * needed by applications; the generated messages are under "@burr-state/client/gen/...".
 */
export * from "./codec";
export * from "./errors";
export type * from "./persister";
export * from "./validation";
export * from "./wire";
export * from "./grpc-definition";
