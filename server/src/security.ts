/** Turning the security settings into credentials and tokens, and refusing unsafe exposure. */
import * as fs from "node:fs";
import { isIP } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { TokenAuthority } from "./auth";
import type { ServerConfig } from "./config";

export function serverCredentials(config: ServerConfig): grpc.ServerCredentials {
  if (!config.tlsCert && !config.tlsKey) {
    if (config.tlsClientCa) throw new Error("--tls-client-ca needs --tls-cert and --tls-key");
    return grpc.ServerCredentials.createInsecure();
  }
  if (!config.tlsCert || !config.tlsKey) throw new Error("TLS needs both --tls-cert and --tls-key");
  const clientCa = config.tlsClientCa ? fs.readFileSync(config.tlsClientCa) : null;
  return grpc.ServerCredentials.createSsl(
    clientCa,
    [{ cert_chain: fs.readFileSync(config.tlsCert), private_key: fs.readFileSync(config.tlsKey) }],
    clientCa !== null,
  );
}

/** The tokens from --auth-file (read again on every call of this), else BURR_AUTH_TOKENS; null: no tokens. */
export function loadAuthority(config: ServerConfig): TokenAuthority | null {
  if (config.authFile) return TokenAuthority.parse(fs.readFileSync(config.authFile, "utf8"), config.authFile);
  if (config.authTokens) return TokenAuthority.parse(config.authTokens, "BURR_AUTH_TOKENS");
  return null;
}

export function isLoopback(listen: string): boolean {
  const host = listen.slice(0, listen.lastIndexOf(":")).replace(/^\[|\]$/g, "");
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** Anyone on the network could read and overwrite every state: refuse unless told. */
export function checkExposure(config: ServerConfig, hasTokens: boolean): void {
  if (isLoopback(config.listen) || config.insecure) return;
  const tls = Boolean(config.tlsCert);
  if (tls || hasTokens) return;
  throw new Error(
    `refusing to listen on ${config.listen} with neither TLS (--tls-cert/--tls-key) nor tokens (--auth-file): ` +
      "anyone who can reach it could read and overwrite every state. Add one, or pass --insecure if the network is trusted.",
  );
}
