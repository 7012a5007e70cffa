/**
 * The one error type of every persister, in-process or remote. Its code is a gRPC status code,
 * so a caller handles a duplicate save the same way whether the store is embedded or a server.
 */
export const Code = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;
export type Code = (typeof Code)[keyof typeof Code];

const codeNames = Object.fromEntries(Object.entries(Code).map(([name, code]) => [code, name]));

export function codeName(code: number): string {
  return codeNames[code] ?? `CODE_${code}`;
}

export class PersisterError extends Error {
  override readonly name = "PersisterError";
  constructor(
    readonly code: Code,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }

  /** "ALREADY_EXISTS", "UNAVAILABLE", ... */
  get codeName(): string {
    return codeName(this.code);
  }
}

export const notInitialized = () =>
  new PersisterError(
    Code.FAILED_PRECONDITION,
    "the store is not initialized: call Initialize first (or start the server with --init)",
  );

export const unavailable = (what: string, cause: unknown) =>
  new PersisterError(
    Code.UNAVAILABLE,
    `${what} is unavailable: ${cause instanceof Error ? cause.message : String(cause)}`,
    { cause },
  );

export const duplicate = (key: { partitionKey: string; appId: string; sequenceId: number; position: string }) =>
  new PersisterError(
    Code.ALREADY_EXISTS,
    `a state is already saved for partition_key=${JSON.stringify(key.partitionKey)} app_id=${JSON.stringify(key.appId)} ` +
      `sequence_id=${key.sequenceId} position=${JSON.stringify(key.position)}`,
  );
