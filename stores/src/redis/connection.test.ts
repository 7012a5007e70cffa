/**
 * What the redis URL's connection parts do against a real server: `rediss://` speaks TLS and
 * verifies the certificate, the password and the db index come from the URL, and a wrong one
 * stops the store from opening instead of letting it write somewhere else.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { Redis } from "ioredis";
import { GrpcStatePersister } from "@burr-state/client";
import { rawCodec } from "@burr-state/client/protocol";
import { Code } from "@burr-state/client/protocol";
import { openRedis } from "./index";
import { connectAdmin, freePort, keysUnder, startPrivateRedis, type PrivateRedis } from "./testing";
import { startServerProcess, type ServerProcess } from "../../../tests/support/server-process";

const password = "s3cret/with:odd@chars";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-redis-tls-"));
const file = (name: string) => path.join(dir, name);
let redis: PrivateRedis;
let tlsPort: number;
let admin: Redis;

/** A throwaway CA and a server certificate for 127.0.0.1 signed by it. */
function makeCertificates() {
  const openssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: "pipe" });
  openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=burr test CA", "-keyout", "ca.key", "-out", "ca.pem");
  openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "server.key", "-out", "server.csr");
  fs.writeFileSync(file("san.ext"), "subjectAltName=IP:127.0.0.1\n");
  openssl("x509", "-req", "-days", "1", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-extfile", "san.ext", "-out", "server.pem");
}

beforeAll(async () => {
  makeCertificates();
  tlsPort = await freePort();
  redis = await startPrivateRedis(await freePort(), {
    password,
    extraArgs: ["--tls-port", String(tlsPort), "--tls-cert-file", file("server.pem"), "--tls-key-file", file("server.key"), "--tls-ca-cert-file", file("ca.pem"), "--tls-auth-clients", "no"],
  });
  admin = await connectAdmin(redis.url);
});

afterAll(async () => {
  admin?.disconnect();
  await redis?.kill();
  fs.rmSync(dir, { recursive: true, force: true });
});

const tlsUrl = (secret: string, query = "") => `rediss://:${encodeURIComponent(secret)}@127.0.0.1:${tlsPort}/3${query}`;

describe("redis connection settings", () => {
  test("rediss:// with a password and a db index: the server stores over TLS into that db", async () => {
    let server: ServerProcess | null = null;
    let client: GrpcStatePersister<Uint8Array> | null = null;
    try {
      server = await startServerProcess(["--store", tlsUrl(password, "?prefix=tls"), "--init"], { NODE_EXTRA_CA_CERTS: file("ca.pem") });
      client = new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 } });
      await client.save({ partitionKey: "", appId: "app", sequenceId: 1, position: "act", state: new Uint8Array([0, 1, 254, 255]), status: "completed" });
      expect(Array.from((await client.load({ appId: "app" }))!.state)).toEqual([0, 1, 254, 255]);
      await admin.select(3);
      expect((await keysUnder(admin, "tls")).length).toBeGreaterThan(0);
      await admin.select(0);
      expect(await keysUnder(admin, "tls")).toEqual([]);
    } finally {
      await client?.close();
      await server?.stop();
    }
  });

  test.each([
    // This test process does not trust the test CA (the server process above did).
    ["a certificate from an unknown CA", () => tlsUrl(password), /certificate/],
    ["a wrong password", () => `redis://:wrong@127.0.0.1:${redis.port}`, /WRONGPASS/],
    ["no password", () => `redis://127.0.0.1:${redis.port}`, /NOAUTH/],
    ["a db index the server does not have", () => `redis://:${encodeURIComponent(password)}@127.0.0.1:${redis.port}/99`, /DB index/],
  ])("%s: the store does not open (UNAVAILABLE, saying why)", async (_label, url, reason) => {
    const started = Date.now();
    await expect(openRedis(url())).rejects.toMatchObject({ code: Code.UNAVAILABLE, message: expect.stringMatching(reason) });
    expect(Date.now() - started).toBeLessThan(5000);
  });
});
