/**
 * The server as any gRPC client sees it: health, reflection, and requests no generated client
 * would send (garbage bytes, invalid UTF-8, unknown enum values) answered with a clear status.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { serviceDefinition } from "../../client/src/grpc-definition";
import { SaveRequestSchema, Status } from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { Health, HealthCheckResponse_ServingStatus as Serving } from "../../client/src/gen/grpc/health/v1/health_pb";
import { rawUnary } from "../support/raw-grpc";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const run = promisify(execFile);
let server: ServerProcess;

beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init"]);
});
afterAll(() => server.stop());

const savePath = "/burr.state.v1.StatePersister/Save";
const validSave = () => ({ appId: "app", sequenceId: 1n, position: "act", state: new Uint8Array([1, 2]), status: Status.COMPLETED });

describe("requests no generated client would send", () => {
  test("garbage bytes: INVALID_ARGUMENT naming the message type", async () => {
    const result = await rawUnary(server.address, savePath, new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(result.code).toBe(grpc.status.INVALID_ARGUMENT);
    expect(result.details).toMatch(/burr\.state\.v1\.SaveRequest/);
  });

  test("invalid UTF-8 in a string field: INVALID_ARGUMENT", async () => {
    // Field 2 (app_id), length 2, bytes that are not UTF-8.
    const result = await rawUnary(server.address, savePath, new Uint8Array([0x12, 0x02, 0xc3, 0x28]));
    expect(result.code).toBe(grpc.status.INVALID_ARGUMENT);
  });

  test("STATUS_UNSPECIFIED and unknown enum values: INVALID_ARGUMENT naming status", async () => {
    for (const status of [Status.UNSPECIFIED, 7 as Status]) {
      const request = toBinary(SaveRequestSchema, create(SaveRequestSchema, { ...validSave(), status }));
      const result = await rawUnary(server.address, savePath, request);
      expect(result).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/status/) });
    }
  });

  test("sequence ids beyond 2^53 and negative ones: INVALID_ARGUMENT naming sequence_id", async () => {
    for (const sequenceId of [2n ** 63n - 1n, -1n, 2n ** 53n]) {
      const request = toBinary(SaveRequestSchema, create(SaveRequestSchema, { ...validSave(), sequenceId }));
      const result = await rawUnary(server.address, savePath, request);
      expect(result).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/sequence_id/) });
    }
  });

  test("an empty message: INVALID_ARGUMENT naming app_id", async () => {
    const result = await rawUnary(server.address, savePath, new Uint8Array());
    expect(result).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/app_id/) });
  });

  test("an unknown method: UNIMPLEMENTED, and the server keeps serving", async () => {
    const result = await rawUnary(server.address, "/burr.state.v1.StatePersister/Delete", new Uint8Array());
    expect(result.code).toBe(grpc.status.UNIMPLEMENTED);
    const ok = await rawUnary(server.address, savePath, toBinary(SaveRequestSchema, create(SaveRequestSchema, validSave())));
    expect(ok.code).toBe(grpc.status.OK);
  });
});

describe("health", () => {
  const HealthClient = grpc.makeGenericClientConstructor(serviceDefinition(Health), Health.typeName);
  const check = (service: string) =>
    new Promise<{ code: number; status?: number }>((resolve) => {
      const client = new HealthClient(server.address, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
        check(request: object, callback: (error: grpc.ServiceError | null, response: { status: number }) => void): void;
      };
      client.check({ service }, (error, response) => {
        client.close();
        resolve(error ? { code: error.code } : { code: 0, status: response.status });
      });
    });

  test("SERVING for the server and for burr.state.v1.StatePersister; NOT_FOUND for others", async () => {
    expect(await check("")).toEqual({ code: 0, status: Serving.SERVING });
    expect(await check("burr.state.v1.StatePersister")).toEqual({ code: 0, status: Serving.SERVING });
    expect((await check("no.such.Service")).code).toBe(grpc.status.NOT_FOUND);
  });
});

describe("reflection: a generic client needs no .proto", () => {
  const bufCurl = (...args: string[]) =>
    run("npx", ["buf", "curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { cwd: `${__dirname}/../..` });

  test("lists every method", async () => {
    const { stdout } = await bufCurl("--list-methods", `http://${server.address}`);
    expect(stdout.trim().split("\n").sort()).toEqual(
      expect.arrayContaining([
        "burr.state.v1.StatePersister/Initialize",
        "burr.state.v1.StatePersister/IsInitialized",
        "burr.state.v1.StatePersister/ListAppIds",
        "burr.state.v1.StatePersister/Load",
        "burr.state.v1.StatePersister/Save",
        "grpc.health.v1.Health/Check",
      ]),
    );
  });

  test("saves and loads with JSON built from the reflected schema", async () => {
    const state = Buffer.from('{"n": 1.0}').toString("base64");
    await bufCurl("-d", JSON.stringify({ partition_key: "reflect", app_id: "a", sequence_id: 5, position: "p", state, status: "STATUS_FAILED" }), `http://${server.address}/burr.state.v1.StatePersister/Save`);
    const { stdout } = await bufCurl("-d", JSON.stringify({ partition_key: "reflect", app_id: "a" }), `http://${server.address}/burr.state.v1.StatePersister/Load`);
    expect(JSON.parse(stdout)).toMatchObject({ persistedState: { partitionKey: "reflect", appId: "a", sequenceId: "5", position: "p", state, status: "STATUS_FAILED" } });
  });
});
