/** TLS and mutual TLS, through both TypeScript clients. */
import * as fs from "node:fs";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { SyncGrpcStatePersister } from "../../client/src/sync-persister";
import { Code } from "../../client/src/errors";
import { makeCertificates, type Certificates } from "../support/certificates";
import { startServerProcess, type ServerProcess } from "../support/server-process";

let certs: Certificates;
beforeAll(() => {
  certs = makeCertificates();
});
afterAll(() => fs.rmSync(certs.dir, { recursive: true, force: true }));

const noRetry = { attempts: 1 };
const step = (appId: string) => ({ appId, sequenceId: 0, position: "p", state: { tls: true }, status: "completed" as const });

describe("server TLS", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey]);
  });
  afterAll(() => server.stop());

  test("clients that trust the CA save and load, async and sync", async () => {
    const tls = { rootCerts: certs.read(certs.caCert) };
    const asyncClient = new GrpcStatePersister({ address: server.address, tls });
    await asyncClient.save(step("a"));
    const syncClient = new SyncGrpcStatePersister({ address: server.address, tls });
    expect(syncClient.load({ appId: "a" })?.state).toEqual({ tls: true });
    syncClient.close();
    await asyncClient.close();
  });

  test("a plaintext client or one that does not trust the CA cannot talk to it", async () => {
    const plain = new GrpcStatePersister({ address: server.address, retry: noRetry, deadlineMs: 3000 });
    await expect(plain.isInitialized()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await plain.close();
    const untrusting = new GrpcStatePersister({ address: server.address, tls: {}, retry: noRetry, deadlineMs: 3000 });
    await expect(untrusting.isInitialized()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await untrusting.close();
  });
});

describe("mutual TLS", () => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await startServerProcess([
      "--store", "sqlite::memory:", "--init",
      "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.caCert,
    ]);
  });
  afterAll(() => server.stop());

  test("a client with a certificate from the CA gets in, async and sync", async () => {
    const tls = { rootCerts: certs.read(certs.caCert), certChain: certs.read(certs.clientCert), privateKey: certs.read(certs.clientKey) };
    const asyncClient = new GrpcStatePersister({ address: server.address, tls });
    await asyncClient.save(step("m"));
    const syncClient = new SyncGrpcStatePersister({ address: server.address, tls });
    expect(syncClient.listAppIds()).toEqual(["m"]);
    syncClient.close();
    await asyncClient.close();
  });

  test("a client without a certificate is refused", async () => {
    const client = new GrpcStatePersister({ address: server.address, tls: { rootCerts: certs.read(certs.caCert) }, retry: noRetry, deadlineMs: 3000 });
    await expect(client.isInitialized()).rejects.toMatchObject({ code: Code.UNAVAILABLE });
    await client.close();
  });
});

test("the server refuses half a TLS setup", async () => {
  await expect(startServerProcess(["--store", "sqlite::memory:", "--tls-cert", certs.serverCert])).rejects.toThrow(/TLS needs both --tls-cert and --tls-key/);
  await expect(startServerProcess(["--store", "sqlite::memory:", "--tls-client-ca", certs.caCert])).rejects.toThrow(/--tls-client-ca needs/);
});
