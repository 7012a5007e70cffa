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
  test("loopback: allowed without TLS or tokens", () => {
    expect(() => checkExposure(at("127.0.0.1:50051"), false)).not.toThrow();
    expect(() => checkExposure(at("[::1]:1"), false)).not.toThrow();
    expect(() => checkExposure(at("localhost:1"), false)).not.toThrow();
  });

  test.each(["0.0.0.0:50051", "[::]:50051", "10.0.0.5:7000"])("%s without TLS, tokens or --insecure is refused, saying what to add", (listen) => {
    expect(() => checkExposure(at(listen), false)).toThrow(
      `refusing to listen on ${listen} with neither TLS (--tls-cert/--tls-key) nor tokens (--auth-file): ` +
        "anyone who can reach it could read and overwrite every state. Add one, or pass --insecure if the network is trusted.",
    );
  });

  test("beyond loopback, any one of TLS, tokens or --insecure is enough", () => {
    expect(() => checkExposure(at("0.0.0.0:1", { tlsCert: "cert.pem", tlsKey: "key.pem" }), false)).not.toThrow();
    expect(() => checkExposure(at("0.0.0.0:1"), true)).not.toThrow();
    expect(() => checkExposure(at("0.0.0.0:1", { insecure: true }), false)).not.toThrow();
  });

  test("a client CA or a key alone is not TLS", () => {
    expect(() => checkExposure(at("0.0.0.0:1", { tlsClientCa: "ca.pem" }), false)).toThrow(/^refusing to listen on 0\.0\.0\.0:1/);
    expect(() => checkExposure(at("0.0.0.0:1", { tlsKey: "key.pem" }), false)).toThrow(/^refusing to listen on 0\.0\.0\.0:1/);
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
