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

/**
 * Beyond loopback, who may connect must be checked: by bearer tokens or by client certificates
 * (mutual TLS). TLS alone encrypts but lets anyone in. The metrics endpoint has no
 * authentication at all, so it stays on loopback. `--insecure` lifts both rules.
 */
export function checkExposure(config: ServerConfig, hasTokens: boolean): void {
  if (config.insecure) return;
  const mutualTls = Boolean(config.tlsCert && config.tlsKey && config.tlsClientCa);
  if (!isLoopback(config.listen) && !hasTokens && !mutualTls) {
    const tlsAlone = config.tlsCert ? " TLS alone encrypts the traffic but lets anyone connect." : "";
    throw new Error(
      `refusing to listen on ${config.listen} with neither tokens (--auth-file) nor client certificates (--tls-client-ca): ` +
        `anyone who can reach it could read and overwrite every state.${tlsAlone} Add one, or pass --insecure if the network is trusted.`,
    );
  }
  if (config.metricsListen && !isLoopback(config.metricsListen)) {
    throw new Error(
      `refusing to serve metrics on ${config.metricsListen}: the metrics endpoint has no authentication (neither tokens nor TLS apply to it), ` +
        "so anyone who can reach it could read them. Serve it on loopback (e.g. 127.0.0.1:9464) and scrape through a proxy or a sidecar, or pass --insecure if the network is trusted.",
    );
  }
}
