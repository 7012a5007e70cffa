/** Exposure refusal (the gRPC port and the metrics port), size and length limits, the default deadline, and the metrics endpoint. */
import * as fs from "node:fs";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { Code } from "../../client/src/errors";
import { serviceDefinition } from "../../client/src/grpc-definition";
import { StatePersister } from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { defaultDeadlineInterceptor } from "../../server/src/grpc/interceptors";
import { makeCertificates, type Certificates } from "../support/certificates";
import { rawUnary } from "../support/raw-grpc";
import { startServerProcess } from "../support/server-process";

const state = (bytes: number) => new Uint8Array(bytes).fill(120);
const step = (appId: string, bytes = 10) => ({ appId, sequenceId: 0, position: "p", state: state(bytes), status: "completed" as const });

describe("listening beyond loopback", () => {
  let certs: Certificates;
  beforeAll(() => {
    certs = makeCertificates();
  });
  afterAll(() => fs.rmSync(certs.dir, { recursive: true, force: true }));
  const tokens = JSON.stringify({ tokens: [{ name: "t", token: "0123456789abcdefXYZ", partitions: ["*"], access: "read" }] });
  /** Why the server refused to start (a server that starts is stopped, and fails the test). */
  const refusal = async (args: string[], env: NodeJS.ProcessEnv = {}) => {
    const server = await startServerProcess(["--store", "sqlite::memory:", ...args], env).catch((error: Error) => error);
    if (server instanceof Error) return server.message;
    await server.stop();
    throw new Error(`the server started with ${args.join(" ")}`);
  };

  test("is refused with neither tokens nor client certificates, saying why", async () => {
    expect(await refusal(["--listen", "0.0.0.0:0"])).toMatch(
      /refusing to listen on 0\.0\.0\.0:0 with neither tokens \(--auth-file\) nor client certificates \(--tls-client-ca\).*--insecure/,
    );
  });

  test("TLS alone is not enough: it encrypts, it does not tell who may connect", async () => {
    expect(await refusal(["--listen", "0.0.0.0:0", "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey])).toMatch(
      /refusing to listen on 0\.0\.0\.0:0 with neither tokens .* nor client certificates .*TLS alone/,
    );
  });

  test("is allowed with --insecure, with tokens, or with mutual TLS", async () => {
    const insecure = await startServerProcess(["--store", "sqlite::memory:", "--listen", "0.0.0.0:0", "--insecure"]);
    await insecure.stop();
    const withTokens = await startServerProcess(["--store", "sqlite::memory:", "--listen", "0.0.0.0:0"], { BURR_AUTH_TOKENS: tokens });
    await withTokens.stop();
    const mutual = await startServerProcess([
      "--store", "sqlite::memory:", "--listen", "0.0.0.0:0",
      "--tls-cert", certs.serverCert, "--tls-key", certs.serverKey, "--tls-client-ca", certs.caCert,
    ]);
    await mutual.stop();
  });

  test("metrics (no authentication) beyond loopback are refused unless --insecure, tokens or not", async () => {
    for (const env of [{}, { BURR_AUTH_TOKENS: tokens }]) {
      expect(await refusal(["--metrics-listen", "0.0.0.0:0"], env)).toMatch(
        /refusing to serve metrics on 0\.0\.0\.0:0: the metrics endpoint has no authentication.*--insecure/,
      );
    }
    expect(await refusal(["--metrics-listen", ":0"])).toMatch(/refusing to serve metrics on :0/);
    const insecure = await startServerProcess(["--store", "sqlite::memory:", "--metrics-listen", "0.0.0.0:0", "--insecure"]);
    expect(JSON.parse(insecure.logs.find((line) => line.includes('"started"'))!).metricsPort).toBeGreaterThan(0);
    await insecure.stop();
  });
});

describe("limits", () => {
  test("states over the configured size and keys over the configured length are refused by name", async () => {
    const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--max-message-bytes", "65536", "--max-key-bytes", "16"]);
    const client = new GrpcStatePersister({ address: server.address, codec: rawCodec });
    try {
      await client.save(step("a", 65536 - 16 * 1024));
      await expect(client.save(step("b", 65536 - 16 * 1024 + 1))).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED, message: expect.stringMatching(/state is \d+ bytes; the limit is 49152/) });
      // Past the message limit grpc-js itself refuses it, with the same code.
      await expect(client.save(step("c", 200_000))).rejects.toMatchObject({ code: Code.RESOURCE_EXHAUSTED });
      await expect(client.save(step("x".repeat(17)))).rejects.toMatchObject({ code: Code.INVALID_ARGUMENT, message: expect.stringMatching(/app_id is 17 bytes long; the limit is 16/) });
      expect(await client.listAppIds()).toEqual(["a"]);
    } finally {
      await client.close();
      await server.stop();
    }
  });

  test("a call that comes without a deadline gets the server's default", async () => {
    // A handler that never answers, behind the server's interceptor: only the default deadline ends the call.
    const server = new grpc.Server({ interceptors: [defaultDeadlineInterceptor(300)] });
    server.addService(serviceDefinition(StatePersister), { isInitialized: () => {} });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
    );
    const result = await rawUnary(`127.0.0.1:${port}`, "/burr.state.v1.StatePersister/IsInitialized", new Uint8Array(), { deadline: Infinity });
    expect(result).toMatchObject({ code: grpc.status.DEADLINE_EXCEEDED, details: expect.stringMatching(/default deadline of 300 ms/) });
    server.forceShutdown();
  });
});

test("Prometheus metrics count calls by method and status, on the opt-in port", async () => {
  const server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--metrics-listen", "127.0.0.1:0"]);
  const port = JSON.parse(server.logs.find((line) => line.includes('"started"'))!).metricsPort as number;
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec });
  try {
    await client.save(step("a"));
    await expect(client.save(step("a"))).rejects.toMatchObject({ code: Code.ALREADY_EXISTS });
    await client.load({ appId: "a" });
    await client.listAppIds();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/burr_rpc_calls_total\{method="Save",code="OK"\} 1\b/);
    expect(text).toMatch(/burr_rpc_calls_total\{method="Save",code="ALREADY_EXISTS"\} 1\b/);
    expect(text).toMatch(/burr_rpc_calls_total\{method="Load",code="OK"\} 1\b/);
    expect(text).toMatch(/burr_rpc_calls_total\{method="ListAppIds",code="OK"\} 1\b/);
    expect(text).toMatch(/burr_rpc_duration_seconds_bucket\{le="[\d.]+",method="Save"\} \d+/);
    // The client's Pipeline stream (its Saves and Loads) stays open until it closes.
    expect(text).toMatch(/burr_open_streams 1\b/);
    expect(text).toContain("burr_backend_errors_total");
    expect(text).not.toContain('"a"');
    await client.close();
    const deadline = Date.now() + 5000;
    let open = "";
    do open = /burr_open_streams (\d+)/.exec(await (await fetch(`http://127.0.0.1:${port}/metrics`)).text())![1]!;
    while (open !== "0" && Date.now() < deadline);
    expect(open).toBe("0");
  } finally {
    await client.close();
    await server.stop();
  }
});
