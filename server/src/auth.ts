/**
 * Bearer tokens scoped to partitions. Each token names the partition-key patterns it may use
 * (`*` matches any run of characters; "" is the default partition), whether it may write, and
 * whether it may delete (an explicit, separate right: "delete": true; read-write is not enough).
 * Tokens are kept as SHA-256 digests and compared in constant time; they are never logged.
 *
 * File (`--auth-file`) or environment (`BURR_AUTH_TOKENS`) format:
 *   { "tokens": [
 *       { "name": "chat", "token": "…", "partitions": ["user-*"], "access": "read-write" },
 *       { "name": "audit", "sha256": "<hex digest of the token>", "partitions": ["*"], "access": "read" },
 *       { "name": "erasure", "token": "…", "partitions": ["user-*"], "access": "read", "delete": true } ] }
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { parseJsonQuietly } from "./json-syntax";

export type Access = "read" | "read-write";

/** What a call does: read, write, or delete (DeleteApp, DeletePartition, Prune). */
export type Action = "read" | "write" | "delete";

/** The partition of a call that covers every partition (a Prune without partition_key). */
export const everyPartition = Symbol("every partition");

export interface Grant {
  name: string;
  access: Access;
  /** May delete within its partitions. */
  delete: boolean;
  patterns: string[];
  digest: Buffer;
  matchers: RegExp[];
}

const digestOf = (token: string) => createHash("sha256").update(token, "utf8").digest();

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const patternMatcher = (pattern: string) => new RegExp(`^${pattern.split("*").map(escape).join(".*")}$`, "s");

function parseGrant(entry: unknown, index: number): Grant {
  const where = `tokens[${index}]`;
  if (!entry || typeof entry !== "object") throw new Error(`${where} must be an object`);
  const { name, token, sha256, partitions, access, delete: mayDelete } = entry as Record<string, unknown>;
  if (mayDelete !== undefined && typeof mayDelete !== "boolean") throw new Error(`${where}.delete must be true or false`);
  if (typeof name !== "string" || name === "") throw new Error(`${where}.name must be a non-empty string`);
  if (access !== "read" && access !== "read-write") throw new Error(`${where}.access must be "read" or "read-write"`);
  if (!Array.isArray(partitions) || partitions.some((p) => typeof p !== "string")) {
    throw new Error(`${where}.partitions must be a list of partition-key patterns`);
  }
  let digest: Buffer;
  if (typeof token === "string" && token.length >= 16 && sha256 === undefined) digest = digestOf(token);
  else if (typeof sha256 === "string" && /^[0-9a-f]{64}$/i.test(sha256) && token === undefined) digest = Buffer.from(sha256, "hex");
  else throw new Error(`${where} needs either "token" (at least 16 characters) or "sha256" (64 hex digits), not both`);
  return { name, access, delete: mayDelete === true, patterns: partitions as string[], digest, matchers: (partitions as string[]).map(patternMatcher) };
}

export class TokenAuthority {
  private constructor(readonly grants: Grant[]) {}

  static parse(text: string, source: string): TokenAuthority {
    // JSON.parse's own message quotes the text around the error: here, a token.
    const document = parseJsonQuietly(text, source);
    const tokens = (document as { tokens?: unknown })?.tokens;
    if (!Array.isArray(tokens) || tokens.length === 0) throw new Error(`${source} must hold {"tokens": [...]} with at least one token`);
    return new TokenAuthority(tokens.map(parseGrant));
  }

  /** The grant of the `authorization: Bearer …` header, or the UNAUTHENTICATED error. */
  authenticate(header: string | undefined): Grant | PersisterError {
    const match = header === undefined ? null : /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) return new PersisterError(Code.UNAUTHENTICATED, "this server needs a bearer token: send the metadata `authorization: Bearer <token>`");
    const presented = digestOf(match[1]!);
    let found: Grant | null = null;
    // Every grant is compared, so the time taken does not tell which one (if any) matched.
    for (const grant of this.grants) if (timingSafeEqual(grant.digest, presented)) found ??= grant;
    return found ?? new PersisterError(Code.UNAUTHENTICATED, "the bearer token is not valid");
  }

  /** Whether the grant may do `action`, on `partitionKey` when the call names one. */
  authorize(grant: Grant, action: Action, partitionKey?: string | typeof everyPartition): PersisterError | null {
    if (action === "write" && grant.access !== "read-write") {
      return new PersisterError(Code.PERMISSION_DENIED, `token "${grant.name}" is read-only`);
    }
    if (action === "delete" && !grant.delete) {
      return new PersisterError(Code.PERMISSION_DENIED, `token "${grant.name}" may not delete: deleting needs a token with "delete": true`);
    }
    if (partitionKey === everyPartition) {
      if (grant.patterns.includes("*")) return null;
      return new PersisterError(Code.PERMISSION_DENIED, `token "${grant.name}" may not act on every partition: that needs the partition pattern "*"`);
    }
    if (partitionKey !== undefined && !grant.matchers.some((m) => m.test(partitionKey))) {
      return new PersisterError(Code.PERMISSION_DENIED, `token "${grant.name}" may not use partition ${JSON.stringify(partitionKey)}`);
    }
    return null;
  }
}
