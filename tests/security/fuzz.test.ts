/**
 * Property-based fuzzing of every RPC with random and malformed requests: well-formed messages
 * with wild field values, messages with invalid UTF-8 spliced in, and raw garbage. The server
 * must answer each with a proper status (never INTERNAL or UNKNOWN), stay up, and store exactly
 * what it acknowledged: rejected requests change nothing.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import fc from "fast-check";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import {
  ListAppIdsRequestSchema,
  LoadRequestSchema,
  SaveRequestSchema,
  StatePersister,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { startServerProcess, type ServerProcess } from "../support/server-process";

let server: ServerProcess;
let client: grpc.Client;
beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--max-message-bytes", "1048576"]);
  client = new grpc.Client(server.address, grpc.credentials.createInsecure(), { "grpc.max_receive_message_length": -1 });
});
afterAll(async () => {
  client.close();
  await server.stop();
});

const path = (method: string) => `/${StatePersister.typeName}/${method}`;
const bytes = (value: Buffer) => value;

function unary(method: string, request: Uint8Array): Promise<number> {
  return new Promise((resolve) =>
    client.makeUnaryRequest(path(method), bytes, bytes, Buffer.from(request), new grpc.Metadata(), { deadline: Date.now() + 30_000 }, (error) =>
      resolve(error ? error.code : grpc.status.OK),
    ),
  );
}

function streaming(method: string, request: Uint8Array): Promise<number> {
  return new Promise((resolve) => {
    const call = client.makeServerStreamRequest(path(method), bytes, bytes, Buffer.from(request), new grpc.Metadata(), { deadline: Date.now() + 30_000 });
    call.on("data", () => {});
    call.on("error", () => {});
    call.on("status", (status) => resolve(status.code));
  });
}

/** Partitions and ids drawn from a small pool, so saves collide and loads find things. */
const key = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom("", "p", "q", "a", "b", "p:q", "é", "0") },
  { weight: 2, arbitrary: fc.string({ maxLength: 40, unit: "binary" }) },
  { weight: 1, arbitrary: fc.constantFrom("\u0000", "x".repeat(1025), "\u{1F600}".repeat(300), " ") },
);
const sequenceId = fc.oneof(fc.bigInt({ min: 0n, max: 5n }), fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }));
const status = fc.oneof(fc.constantFrom(1, 2), fc.integer({ min: -5, max: 10 }));
const state = fc.oneof({ weight: 30, arbitrary: fc.uint8Array({ maxLength: 64 }) }, { weight: 1, arbitrary: fc.constant(new Uint8Array(1_100_000)) });

const saveMessage = fc.record({ partitionKey: fc.option(key, { nil: undefined }), appId: key, sequenceId, position: key, state, status });
const loadMessage = fc.record({ partitionKey: fc.option(key, { nil: undefined }), appId: fc.option(key, { nil: undefined }), sequenceId: fc.option(sequenceId, { nil: undefined }) });
const listMessage = fc.record({ partitionKey: fc.option(key, { nil: undefined }) });

/** A tag with a length-delimited payload that is not UTF-8, for string field `field`. */
const invalidUtf8 = (field: number) => fc.constantFrom([0xc3, 0x28], [0xff], [0xed, 0xa0, 0x80], [0xe2, 0x82]).map((payload) => new Uint8Array([(field << 3) | 2, payload.length, ...payload]));
const garbage = fc.uint8Array({ maxLength: 200 });

const allowed = new Set([grpc.status.OK, grpc.status.INVALID_ARGUMENT, grpc.status.RESOURCE_EXHAUSTED, grpc.status.ALREADY_EXISTS]);

/** What the server acknowledged: (partition, app, sequence id) -> the last state saved there. */
const stored = new Map<string, { partitionKey: string; appId: string; sequenceId: bigint; state: Uint8Array }>();

test("Save with random, malformed and garbage requests", async () => {
  const request = fc.oneof(
    { weight: 6, arbitrary: saveMessage.map((m) => ({ m, bytes: toBinary(SaveRequestSchema, create(SaveRequestSchema, m)) })) },
    { weight: 1, arbitrary: fc.tuple(saveMessage, fc.constantFrom(1, 2, 4), fc.boolean()).chain(([m, field, before]) =>
      invalidUtf8(field).map((bad) => {
        const valid = toBinary(SaveRequestSchema, create(SaveRequestSchema, m));
        return { m: null, bytes: before ? new Uint8Array([...bad, ...valid]) : new Uint8Array([...valid, ...bad]) };
      })) },
    { weight: 1, arbitrary: garbage.map((bytes) => ({ m: null, bytes })) },
  );
  await fc.assert(
    fc.asyncProperty(request, async ({ m, bytes }) => {
      const code = await unary("Save", bytes);
      expect(allowed).toContain(code);
      if (code === grpc.status.OK) {
        // Only well-formed messages with valid values may be accepted.
        expect(m).not.toBeNull();
        const partitionKey = m!.partitionKey ?? "";
        stored.set(JSON.stringify([partitionKey, m!.appId, String(m!.sequenceId)]), { partitionKey, appId: m!.appId, sequenceId: m!.sequenceId, state: m!.state });
      }
    }),
    { numRuns: 2500 },
  );
});

test("Load, ListAppIds, Initialize and IsInitialized with random, malformed and garbage requests", async () => {
  const load = fc.oneof(loadMessage.map((m) => toBinary(LoadRequestSchema, create(LoadRequestSchema, m))), garbage, invalidUtf8(2));
  const list = fc.oneof(listMessage.map((m) => toBinary(ListAppIdsRequestSchema, create(ListAppIdsRequestSchema, m))), garbage, invalidUtf8(1));
  await fc.assert(fc.asyncProperty(load, async (bytes) => expect(allowed).toContain(await unary("Load", bytes))), { numRuns: 1500 });
  await fc.assert(fc.asyncProperty(list, async (bytes) => expect(allowed).toContain(await streaming("ListAppIds", bytes))), { numRuns: 1000 });
  for (const method of ["Initialize", "IsInitialized"]) {
    await fc.assert(fc.asyncProperty(garbage, async (bytes) => expect(allowed).toContain(await unary(method, bytes))), { numRuns: 300 });
  }
});

test("the server is up and holds exactly what it acknowledged", async () => {
  expect(server.child.exitCode).toBeNull();
  expect(stored.size).toBeGreaterThan(20);
  const persister = new GrpcStatePersister({ address: server.address, codec: rawCodec });
  try {
    for (const { partitionKey, appId, sequenceId, state: saved } of stored.values()) {
      const row = await persister.load({ partitionKey, appId, sequenceId: Number(sequenceId) });
      expect(row && Buffer.from(row.state).equals(Buffer.from(saved))).toBe(true);
    }
    const partitions = new Set([...stored.values()].map((s) => s.partitionKey));
    for (const partitionKey of partitions) {
      const expected = new Set([...stored.values()].filter((s) => s.partitionKey === partitionKey).map((s) => s.appId));
      expect((await persister.listAppIds(partitionKey)).sort()).toEqual([...expected].sort());
    }
  } finally {
    await persister.close();
  }
  expect(server.logs.filter((line) => line.includes('"INTERNAL"'))).toEqual([]);
});
