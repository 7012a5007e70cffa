/** Which listen addresses are loopback, and when a server may listen beyond them. */
import { parseConfig, type ServerConfig } from "./config";
import { checkExposure, isLoopback, loadAuthority, serverCredentials } from "./security";

const base = parseConfig([], {}) as ServerConfig;
const at = (listen: string, changes: Partial<ServerConfig> = {}): ServerConfig => ({ ...base, listen, ...changes });

describe("isLoopback", () => {
  test.each(["127.0.0.1:50051", "127.0.0.1:0", "127.1.2.3:1", "localhost:50051", "[::1]:50051", "::1:50051"])("%s is loopback", (listen) => {
    expect(isLoopback(listen)).toBe(true);
  });

  test.each([
    "0.0.0.0:50051",
    "[::]:50051",
    ":50051",
    "10.0.0.5:50051",
    "192.168.1.1:1",
    "128.0.0.1:1",
    "example.com:50051",
    "127.0.0.1.nip.io:50051",
    "localhost.example.com:1",
    "[::2]:1",
    "[::ffff:10.0.0.1]:1",
  ])("%s is not loopback", (listen) => {
    expect(isLoopback(listen)).toBe(false);
  });
});

describe("checkExposure", () => {
  const tls = { tlsCert: "cert.pem", tlsKey: "key.pem" };
  const mutualTls = { ...tls, tlsClientCa: "ca.pem" };

  test("loopback: allowed without TLS or tokens", () => {
    expect(() => checkExposure(at("127.0.0.1:50051"), false)).not.toThrow();
    expect(() => checkExposure(at("[::1]:1"), false)).not.toThrow();
    expect(() => checkExposure(at("localhost:1"), false)).not.toThrow();
  });

  test.each(["0.0.0.0:50051", "[::]:50051", "10.0.0.5:7000"])("%s without tokens, client certificates or --insecure is refused, saying what to add", (listen) => {
    expect(() => checkExposure(at(listen), false)).toThrow(
      `refusing to listen on ${listen} with neither tokens (--auth-file) nor client certificates (--tls-client-ca): ` +
        "anyone who can reach it could read and overwrite every state. Add one, or pass --insecure if the network is trusted.",
    );
  });

  test("TLS alone is refused beyond loopback: it encrypts but lets anyone connect", () => {
    expect(() => checkExposure(at("0.0.0.0:1", tls), false)).toThrow(
      "refusing to listen on 0.0.0.0:1 with neither tokens (--auth-file) nor client certificates (--tls-client-ca): " +
        "anyone who can reach it could read and overwrite every state. TLS alone encrypts the traffic but lets anyone connect. " +
        "Add one, or pass --insecure if the network is trusted.",
    );
  });

  test("beyond loopback, any one of tokens, mutual TLS or --insecure is enough", () => {
    expect(() => checkExposure(at("0.0.0.0:1"), true)).not.toThrow();
    expect(() => checkExposure(at("0.0.0.0:1", tls), true)).not.toThrow();
    expect(() => checkExposure(at("0.0.0.0:1", mutualTls), false)).not.toThrow();
    expect(() => checkExposure(at("0.0.0.0:1", { insecure: true }), false)).not.toThrow();
  });

  test("a client CA without a certificate and key, or a key alone, is not mutual TLS", () => {
    expect(() => checkExposure(at("0.0.0.0:1", { tlsClientCa: "ca.pem" }), false)).toThrow(/^refusing to listen on 0\.0\.0\.0:1/);
    expect(() => checkExposure(at("0.0.0.0:1", { tlsKey: "key.pem", tlsClientCa: "ca.pem" }), false)).toThrow(/^refusing to listen on 0\.0\.0\.0:1/);
  });

  test("metrics on loopback: allowed", () => {
    for (const metricsListen of ["127.0.0.1:9464", "[::1]:9464", "localhost:0"]) {
      expect(() => checkExposure(at("127.0.0.1:1", { metricsListen }), false)).not.toThrow();
    }
  });

  test.each(["0.0.0.0:9464", ":9464", "[::]:9464", "10.0.0.5:9464"])("metrics on %s are refused, tokens and TLS or not, unless --insecure", (metricsListen) => {
    const message =
      `refusing to serve metrics on ${metricsListen}: the metrics endpoint has no authentication (neither tokens nor TLS apply to it), ` +
      "so anyone who can reach it could read them. Serve it on loopback (e.g. 127.0.0.1:9464) and scrape through a proxy or a sidecar, or pass --insecure if the network is trusted.";
    expect(() => checkExposure(at("127.0.0.1:1", { metricsListen }), false)).toThrow(message);
    expect(() => checkExposure(at("0.0.0.0:1", { metricsListen, ...mutualTls }), true)).toThrow(message);
    expect(() => checkExposure(at("0.0.0.0:1", { metricsListen, insecure: true }), false)).not.toThrow();
  });
});

describe("serverCredentials (no files read)", () => {
  test("no TLS settings: plaintext", () => {
    expect(serverCredentials(base)._isSecure()).toBe(false);
  });

  test("a client CA without a certificate and key is refused", () => {
    expect(() => serverCredentials({ ...base, tlsClientCa: "ca.pem" })).toThrow("--tls-client-ca needs --tls-cert and --tls-key");
  });

  test.each([{ tlsCert: "cert.pem" }, { tlsKey: "key.pem" }])("only one of certificate and key (%j) is refused", (changes) => {
    expect(() => serverCredentials({ ...base, ...changes })).toThrow("TLS needs both --tls-cert and --tls-key");
  });
});

describe("loadAuthority (no file)", () => {
  test("no tokens: null", () => {
    expect(loadAuthority(base)).toBeNull();
  });

  test("BURR_AUTH_TOKENS is parsed, and named when it is wrong", () => {
    const tokens = JSON.stringify({ tokens: [{ name: "a", token: "0123456789abcdef", partitions: ["*"], access: "read" }] });
    expect(loadAuthority({ ...base, authTokens: tokens })!.grants.map((grant) => grant.name)).toEqual(["a"]);
    expect(() => loadAuthority({ ...base, authTokens: "{" })).toThrow(/^BURR_AUTH_TOKENS is not JSON/);
  });
});
