/**
 * The Pipeline RPC as any gRPC client sees it: each call answered once under its call_id with
 * what the unary call would return, a failed call failing alone, bad messages, half-close, and
 * the shutdown drain.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as fs from "node:fs";
import {
  PipelineRequestSchema,
  PipelineResponseSchema,
  Status,
  type PipelineRequest,
  type PipelineResponse,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { rawPipeline } from "../support/raw-grpc";
import { startServerProcess, type ServerProcess } from "../support/server-process";

let server: ServerProcess;

const residentBytes = (pid: number) => Number(/^VmRSS:\s+(\d+) kB/m.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

// 64 KiB messages: states up to 48 KiB (the message limit minus the server's 16 KiB envelope).
beforeAll(async () => {
  server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--max-message-bytes", String(64 * 1024)]);
});
afterAll(() => server.stop());

const encode = (request: Parameters<typeof create<typeof PipelineRequestSchema>>[1]) => toBinary(PipelineRequestSchema, create(PipelineRequestSchema, request));
const decode = (answers: Buffer[]) => answers.map((answer) => fromBinary(PipelineResponseSchema, answer));
const save = (callId: bigint, appId: string, sequenceId: bigint, state = new Uint8Array([callId % 256n].map(Number))): PipelineRequest["call"] => ({
  case: "save",
  value: { $typeName: "burr.state.v1.SaveRequest", partitionKey: "pipe", appId, sequenceId, position: "step", state, status: Status.COMPLETED },
});
const byId = (responses: PipelineResponse[]) => new Map(responses.map((response) => [response.callId, response.result]));

test("every call is answered once under its call_id; a failed call fails alone", async () => {
  const pipe = rawPipeline(server.address);
  for (let i = 1n; i <= 20n; i++) pipe.send(encode({ callId: i, call: save(i, `app-${i}`, 0n) }));
  const saved = byId(decode(await pipe.answered(20)));
  expect([...saved.keys()].sort((a, b) => Number(a - b))).toEqual(Array.from({ length: 20 }, (_, i) => BigInt(i + 1)));
  expect([...saved.values()].every((result) => result.case === "save" && result.value.createdAt)).toBe(true);

  pipe.send(encode({ callId: 21n, call: save(21n, "app-1", 0n) })); // duplicate of call 1
  pipe.send(encode({ callId: 22n, call: { case: "load", value: { $typeName: "burr.state.v1.LoadRequest", partitionKey: "pipe", appId: "app-7" } } }));
  pipe.send(encode({ callId: 23n, call: { case: "load", value: { $typeName: "burr.state.v1.LoadRequest", partitionKey: "pipe", appId: "nobody" } } }));
  pipe.send(encode({ callId: 24n, call: save(24n, "", 0n) })); // no app_id
  pipe.send(encode({ callId: 25n }));
  pipe.send(encode({ callId: 26n, call: save(26n, "big", 0n, new Uint8Array(49 * 1024)) }));
  const answers = byId(decode(await pipe.answered(26)).slice(20));
  expect(answers.get(21n)).toMatchObject({ case: "error", value: { code: grpc.status.ALREADY_EXISTS } });
  const loaded = answers.get(22n);
  expect(loaded?.case === "load" && loaded.value.persistedState).toMatchObject({ appId: "app-7", state: new Uint8Array([7]) });
  const missing = answers.get(23n);
  expect(missing?.case === "load" && missing.value.persistedState).toBeUndefined();
  expect(answers.get(24n)).toMatchObject({ case: "error", value: { code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/app_id/) } });
  expect(answers.get(25n)).toMatchObject({ case: "error", value: { code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/save or a load/) } });
  expect(answers.get(26n)).toMatchObject({ case: "error", value: { code: grpc.status.RESOURCE_EXHAUSTED } });

  // Half-close: the server answers what it has, then ends the stream with OK.
  pipe.send(encode({ callId: 27n, call: save(27n, "last", 0n) }));
  pipe.end();
  expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
  expect(byId(decode(pipe.answers)).get(27n)).toMatchObject({ case: "save" });
});

test("a message that does not decode ends the stream with INVALID_ARGUMENT; the server keeps serving", async () => {
  const pipe = rawPipeline(server.address);
  pipe.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
  expect(await pipe.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/PipelineRequest/) });

  const next = rawPipeline(server.address);
  next.send(encode({ callId: 1n, call: save(1n, "after-garbage", 0n) }));
  expect(decode(await next.answered(1))[0]!.result.case).toBe("save");
  next.end();
  await next.status;
});

test("a message over the server's limit ends the stream with RESOURCE_EXHAUSTED", async () => {
  const pipe = rawPipeline(server.address);
  pipe.send(encode({ callId: 1n, call: save(1n, "huge", 0n, new Uint8Array(65 * 1024)) }));
  expect(await pipe.status).toMatchObject({ code: grpc.status.RESOURCE_EXHAUSTED });
});

test("a client that stops reading answers makes the server stop reading calls, not buffer answers", async () => {
  const own = await startServerProcess(["--store", "sqlite::memory:", "--init"]);
  try {
    const state = new Uint8Array(200 * 1024).fill(7);
    const setup = rawPipeline(own.address);
    setup.send(encode({ callId: 1n, call: save(1n, "big", 0n, state) }));
    expect(decode(await setup.answered(1))[0]!.result.case).toBe("save");
    setup.end();
    await setup.status;

    const pipe = rawPipeline(own.address);
    pipe.pause();
    const rssBefore = residentBytes(own.child.pid!);
    // 1,000 answers of 200 KiB: 200 MB if the server buffered them all.
    const loads = 1000;
    for (let i = 1n; i <= BigInt(loads); i++) {
      pipe.send(encode({ callId: i, call: { case: "load", value: { $typeName: "burr.state.v1.LoadRequest", partitionKey: "pipe", appId: "big" } } }));
    }
    await new Promise((resolve) => setTimeout(resolve, 3000));
    expect(residentBytes(own.child.pid!) - rssBefore).toBeLessThan(100 * 1024 * 1024);
    pipe.resume();
    const answers = decode(await pipe.answered(loads));
    expect(answers.every((answer) => answer.result.case === "load" && answer.result.value.persistedState?.state.byteLength === state.byteLength)).toBe(true);
    pipe.end();
    expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
  } finally {
    await own.stop();
  }
}, 60_000);

test("on shutdown: calls received are answered once each, the stream ends OK, the server exits 0", async () => {
  const own = await startServerProcess(["--store", "sqlite::memory:", "--init", "--shutdown-grace-ms", "20000"]);
  const pipe = rawPipeline(own.address);
  for (let i = 1n; i <= 50n; i++) pipe.send(encode({ callId: i, call: save(i, `drain-${i}`, 0n) }));
  await pipe.answered(1);
  const began = Date.now();
  const exited = own.stop("SIGTERM");
  const status = await pipe.status;
  expect(status.code).toBe(grpc.status.OK);
  // Ended by the drain, not cut by the 20 s grace period.
  expect(Date.now() - began).toBeLessThan(10_000);
  // Calls still in transit when the stream ended were never read: the client sees them unanswered.
  const answers = decode(pipe.answers);
  expect(answers.length).toBeGreaterThanOrEqual(1);
  expect(new Set(answers.map((answer) => answer.callId)).size).toBe(answers.length);
  for (const answer of answers) {
    expect(answer.result.case === "save" || (answer.result.case === "error" && answer.result.value.code === grpc.status.UNAVAILABLE)).toBe(true);
  }
  expect(await exited).toBe(0);
});
