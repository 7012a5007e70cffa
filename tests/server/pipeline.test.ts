/**
 * The pipelined RPCs as any gRPC client sees them, Pipeline and BatchedPipeline alike: each call
 * answered once under its call_id with what the unary call would return, a failed call failing
 * alone, bad messages, half-close, a client that stops reading, and the shutdown drain.
 */
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import {
  PipelineRequestSchema,
  PipelineResponseSchema,
  Status,
  type PipelineRequest,
  type PipelineResponse,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { batched, framings, single } from "../support/pipeline-framing";
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

const load = (appId: string): PipelineRequest["call"] => ({ case: "load", value: { $typeName: "burr.state.v1.LoadRequest", partitionKey: "pipe", appId } });
const ids = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => BigInt(from + i));
const sorted = (values: bigint[]) => [...values].sort((a, b) => Number(a - b));

describe.each(framings)("$name", (framing) => {
  /** Distinct app ids per framing: both suites share one server. */
  const app = (name: string) => `${framing.name}-${name}`;

  /** Saves app "big" with a state of 200 KiB, whose loads make answers back up; returns the state. */
  const saveBig = async (address: string) => {
    const state = new Uint8Array(200 * 1024).fill(7);
    const setup = framing.open(address);
    framing.send(setup, [{ callId: 1n, call: save(1n, "big", 0n, state) }]);
    expect((await framing.answered(setup, 1))[0]!.result.case).toBe("save");
    setup.end();
    await setup.status;
    return state;
  };

  test("every call is answered once under its call_id; a failed call fails alone", async () => {
    const pipe = framing.open(server.address);
    framing.send(pipe, ids(1, 20).map((i) => ({ callId: i, call: save(i, app(`app-${i}`), 0n) })));
    const saved = byId(await framing.answered(pipe, 20));
    expect(sorted([...saved.keys()])).toEqual(ids(1, 20));
    expect([...saved.values()].every((result) => result.case === "save" && result.value.createdAt)).toBe(true);

    framing.send(pipe, [
      { callId: 21n, call: save(21n, app("app-1"), 0n) }, // duplicate of call 1
      { callId: 22n, call: load(app("app-7")) },
      { callId: 23n, call: load(app("nobody")) },
      { callId: 24n, call: save(24n, "", 0n) }, // no app_id
      { callId: 25n },
      { callId: 26n, call: save(26n, app("big"), 0n, new Uint8Array(49 * 1024)) },
    ]);
    const answers = byId((await framing.answered(pipe, 26)).slice(20));
    expect(answers.get(21n)).toMatchObject({ case: "error", value: { code: grpc.status.ALREADY_EXISTS } });
    const loaded = answers.get(22n);
    expect(loaded?.case === "load" && loaded.value.persistedState).toMatchObject({ appId: app("app-7"), state: new Uint8Array([7]) });
    const missing = answers.get(23n);
    expect(missing?.case === "load" && missing.value.persistedState).toBeUndefined();
    expect(answers.get(24n)).toMatchObject({ case: "error", value: { code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/app_id/) } });
    expect(answers.get(25n)).toMatchObject({ case: "error", value: { code: grpc.status.INVALID_ARGUMENT, message: expect.stringMatching(/save or a load/) } });
    expect(answers.get(26n)).toMatchObject({ case: "error", value: { code: grpc.status.RESOURCE_EXHAUSTED } });

    // Half-close: the server answers what it has, then ends the stream with OK.
    framing.send(pipe, [{ callId: 27n, call: save(27n, app("last"), 0n) }]);
    pipe.end();
    expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
    expect(byId(framing.answers(pipe)).get(27n)).toMatchObject({ case: "save" });
  });

  test("a message that does not decode ends the stream with INVALID_ARGUMENT; the server keeps serving", async () => {
    const pipe = framing.open(server.address);
    pipe.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    expect(await pipe.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(new RegExp(`${framing.name}Request`)) });

    const next = framing.open(server.address);
    framing.send(next, [{ callId: 1n, call: save(1n, app("after-garbage"), 0n) }]);
    expect((await framing.answered(next, 1))[0]!.result.case).toBe("save");
    next.end();
    await next.status;
  });

  test("a message that does not decode: every call before it is answered with its result, none after it runs, then INVALID_ARGUMENT", async () => {
    // 200 saves in flight when the bad message is read (a save waits at least one turn of the
    // event loop for its batch), then calls that must never run.
    const pipe = framing.open(server.address);
    framing.send(pipe, ids(1, 200).map((i) => ({ callId: i, call: save(i, app(`before-bad-${i}`), 0n) })));
    pipe.send(new Uint8Array([0xff, 0xff, 0xff, 0xff, 0x0f, 0x01]));
    framing.send(pipe, ids(201, 220).map((i) => ({ callId: i, call: save(i, app(`after-bad-${i}`), 0n) })));
    expect(await pipe.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(new RegExp(`${framing.name}Request`)) });
    const answers = framing.answers(pipe);
    expect(sorted(answers.map((answer) => answer.callId))).toEqual(ids(1, 200));
    expect(answers.filter((answer) => answer.result.case !== "save")).toEqual([]);

    const check = framing.open(server.address);
    framing.send(check, ids(1, 220).map((i) => ({ callId: i, call: load(app(i <= 200n ? `before-bad-${i}` : `after-bad-${i}`)) })));
    const stored = byId(await framing.answered(check, 220));
    for (const i of ids(1, 220)) {
      const loaded = stored.get(i);
      expect(loaded?.case === "load" && loaded.value.persistedState !== undefined).toBe(i <= 200n);
    }
    check.end();
    expect(await check.status).toMatchObject({ code: grpc.status.OK });
  });

  test("a client that stops reading answers makes the server stop reading calls, not buffer answers", async () => {
    const own = await startServerProcess(["--store", "sqlite::memory:", "--init"]);
    try {
      const state = await saveBig(own.address);

      const pipe = framing.open(own.address);
      pipe.pause();
      const rssBefore = residentBytes(own.child.pid!);
      // 1,000 answers of 200 KiB: 200 MB if the server buffered them all.
      const loads = 1000;
      for (let from = 1; from <= loads; from += 50) framing.send(pipe, ids(from, from + 49).map((i) => ({ callId: i, call: load("big") })));
      await new Promise((resolve) => setTimeout(resolve, 3000));
      expect(residentBytes(own.child.pid!) - rssBefore).toBeLessThan(100 * 1024 * 1024);
      pipe.resume();
      const answers = await framing.answered(pipe, loads);
      expect(sorted(answers.map((answer) => answer.callId))).toEqual(ids(1, loads));
      expect(answers.every((answer) => answer.result.case === "load" && answer.result.value.persistedState?.state.byteLength === state.byteLength)).toBe(true);
      pipe.end();
      expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
    } finally {
      await own.stop();
    }
  }, 60_000);

  test("on shutdown: calls received are answered once each, the stream ends OK, the server exits 0", async () => {
    const own = await startServerProcess(["--store", "sqlite::memory:", "--init", "--shutdown-grace-ms", "20000"]);
    const pipe = framing.open(own.address);
    for (let from = 1; from <= 50; from += 10) framing.send(pipe, ids(from, from + 9).map((i) => ({ callId: i, call: save(i, `drain-${i}`, 0n) })));
    await framing.answered(pipe, 1);
    const began = Date.now();
    const exited = own.stop("SIGTERM");
    const status = await pipe.status;
    expect(status.code).toBe(grpc.status.OK);
    // Ended by the drain, not cut by the 20 s grace period.
    expect(Date.now() - began).toBeLessThan(10_000);
    // Calls still in transit when the stream ended were never read: the client sees them unanswered.
    const answers = framing.answers(pipe);
    expect(answers.length).toBeGreaterThanOrEqual(1);
    expect(new Set(answers.map((answer) => answer.callId)).size).toBe(answers.length);
    for (const answer of answers) {
      expect(answer.result.case === "save" || (answer.result.case === "error" && answer.result.value.code === grpc.status.UNAVAILABLE)).toBe(true);
    }
    expect(await exited).toBe(0);
  });

  test("on shutdown, calls queued behind a client that stopped reading are answered UNAVAILABLE, then the stream ends OK", async () => {
    const own = await startServerProcess(["--store", "sqlite::memory:", "--init", "--shutdown-grace-ms", "20000"]);
    try {
      const state = await saveBig(own.address);

      // 1,000 loads of 25 bytes fit the stream's 64 KiB flow-control window: all of them reach the
      // server, which stops reading them once answers back up (a few 200 KiB answers), so most
      // wait in grpc-js's buffers when SIGTERM arrives.
      const pipe = framing.open(own.address);
      pipe.pause();
      const loads = 1000;
      for (let from = 1; from <= loads; from += 10) framing.send(pipe, ids(from, from + 9).map((i) => ({ callId: i, call: load("big") })));
      await new Promise((resolve) => setTimeout(resolve, 1000));
      const exited = own.stop("SIGTERM");
      await new Promise((resolve) => setTimeout(resolve, 500));
      pipe.resume();
      expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
      const answers = framing.answers(pipe);
      expect(sorted(answers.map((answer) => answer.callId))).toEqual(ids(1, loads));
      const ran = answers.filter((answer) => answer.result.case === "load" && answer.result.value.persistedState?.state.byteLength === state.byteLength);
      const refused = answers.filter((answer) => answer.result.case === "error" && answer.result.value.code === grpc.status.UNAVAILABLE);
      expect(ran.length).toBeGreaterThan(0);
      expect(refused.length).toBeGreaterThan(0);
      expect(ran.length + refused.length).toBe(loads);
      expect(await exited).toBe(0);
    } finally {
      await own.stop();
    }
  }, 60_000);
});

test("Pipeline: a call over the server's message limit is refused alone: the calls around it, running or not, are answered", async () => {
  const pipe = single.open(server.address);
  single.send(pipe, [
    ...ids(1, 10).map((i) => ({ callId: i, call: save(i, `around-${i}`, 0n) })),
    { callId: 11n, call: save(11n, "huge", 0n, new Uint8Array(200 * 1024)) },
    ...ids(12, 20).map((i) => ({ callId: i, call: save(i, `around-${i}`, 0n) })),
  ]);
  const answers = byId(await single.answered(pipe, 20));
  expect(answers.get(11n)).toMatchObject({
    case: "error",
    value: { code: grpc.status.RESOURCE_EXHAUSTED, message: expect.stringMatching(/over the server's message limit of 65536 bytes \(--max-message-bytes\); it was not run/) },
  });
  for (const i of ids(1, 20)) if (i !== 11n) expect(answers.get(i)?.case).toBe("save");
  const check = single.open(server.address);
  single.send(check, [{ callId: 1n, call: load("huge") }]);
  const [loaded] = await single.answered(check, 1);
  expect(loaded!.result.case === "load" && loaded!.result.value.persistedState).toBeUndefined();
  for (const stream of [pipe, check]) {
    stream.end();
    expect(await stream.status).toMatchObject({ code: grpc.status.OK });
  }
});

test("BatchedPipeline: calls share messages both ways, an empty message is ignored, and grouped answers stay under the message limit", async () => {
  const pipe = batched.open(server.address);
  // 40 KiB states: a grouped answer may hold one of them (half of the 64 KiB message limit).
  const state = new Uint8Array(40 * 1024).fill(3);
  for (const i of ids(1, 8)) batched.send(pipe, [{ callId: i, call: save(i, `grouped-${i}`, 0n, state) }]);
  expect((await batched.answered(pipe, 8)).every((answer) => answer.result.case === "save")).toBe(true);
  // Small saves in one message run in one store batch: their answers share a message.
  const bigSaveMessages = pipe.answers.length;
  batched.send(pipe, ids(61, 68).map((i) => ({ callId: i, call: save(i, `grouped-${i}`, 0n) })));
  await batched.answered(pipe, 16);
  const saveMessages = pipe.answers.length;
  batched.send(pipe, []);
  batched.send(pipe, ids(11, 18).map((i) => ({ callId: i, call: load(`grouped-${i - 10n}`) })));
  batched.send(pipe, ids(21, 60).map((i) => ({ callId: i, call: load("nobody") })));
  const answers = await batched.answered(pipe, 64);
  expect(sorted(answers.map((answer) => answer.callId))).toEqual([...ids(1, 8), ...ids(11, 18), ...ids(21, 60), ...ids(61, 68)]);
  const results = byId(answers);
  for (const i of ids(11, 18)) {
    const loaded = results.get(i);
    expect(loaded?.case === "load" && loaded.value.persistedState?.state).toEqual(state);
  }
  expect(saveMessages - bigSaveMessages).toBe(1);
  // Each 40 KiB load travels alone; the 40 small ones share messages.
  expect(pipe.answers.length - saveMessages).toBeLessThan(48);
  expect(Math.max(...pipe.answers.map((message) => message.byteLength))).toBeLessThanOrEqual(64 * 1024);
  pipe.end();
  expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
});

test("BatchedPipeline: 1,024 calls fit in a message; a message of more ends the stream INVALID_ARGUMENT once the calls before it are answered", async () => {
  const pipe = batched.open(server.address);
  batched.send(pipe, ids(1, 1024).map((i) => ({ callId: i, call: load("nobody") })));
  batched.send(pipe, ids(2001, 3025).map((i) => ({ callId: i, call: load("nobody") })));
  expect(await pipe.status).toMatchObject({ code: grpc.status.INVALID_ARGUMENT, details: expect.stringMatching(/more than 1024 calls/) });
  expect(sorted(batched.answers(pipe).map((answer) => answer.callId))).toEqual(ids(1, 1024));
});

test("on shutdown, a client that keeps sending gets UNAVAILABLE answers and its stream ends OK within the grace period", async () => {
  const grace = 3000;
  const own = await startServerProcess(["--store", "sqlite::memory:", "--init", "--shutdown-grace-ms", String(grace)]);
  // A raw HTTP/2 client that writes batches of 500 saves as fast as flow control lets it, so
  // new calls reach the server on every turn of its event loop and the drain never sees a quiet one.
  const session = http2.connect(`http://${own.address}`);
  const stream = session.request({ ":method": "POST", ":path": "/burr.state.v1.StatePersister/Pipeline", "content-type": "application/grpc", te: "trailers" });
  let sent = 0n;
  let sending = true;
  const frame = (message: Uint8Array) => {
    const header = Buffer.alloc(5);
    header.writeUInt32BE(message.byteLength, 1);
    return Buffer.concat([header, message]);
  };
  const pump = () => {
    while (sending) {
      const batch: Buffer[] = [];
      for (let k = 0; k < 500; k++) {
        sent++;
        batch.push(frame(encode({ callId: sent, call: save(sent, `steady-${sent}`, 0n) })));
      }
      if (!stream.write(Buffer.concat(batch))) return void stream.once("drain", pump);
    }
  };
  let received = Buffer.alloc(0);
  const answers: PipelineResponse[] = [];
  stream.on("data", (chunk: Buffer) => {
    received = Buffer.concat([received, chunk]);
    while (received.byteLength >= 5 && received.byteLength >= 5 + received.readUInt32BE(1)) {
      answers.push(fromBinary(PipelineResponseSchema, received.subarray(5, 5 + received.readUInt32BE(1))));
      received = received.subarray(5 + received.readUInt32BE(1));
    }
  });
  // Like any gRPC client, it stops sending and closes its side once the status arrives.
  const status = new Promise<number>((resolve) => {
    stream.on("trailers", (trailers) => {
      sending = false;
      stream.close();
      resolve(Number(trailers["grpc-status"]));
    });
    stream.on("close", () => resolve(-1));
  });
  stream.on("error", () => {});
  session.on("error", () => {});
  try {
    pump();
    while (answers.length < 1000) await new Promise((resolve) => setTimeout(resolve, 10));
    const began = Date.now();
    const exited = own.stop("SIGTERM");
    expect(await status).toBe(grpc.status.OK);
    const streamEnded = Date.now() - began;
    expect(streamEnded).toBeLessThan(grace);
    expect(new Set(answers.map((answer) => answer.callId)).size).toBe(answers.length);
    const refused = answers.filter((answer) => answer.result.case === "error" && answer.result.value.code === grpc.status.UNAVAILABLE);
    expect(answers.filter((answer) => answer.result.case !== "save" && !refused.includes(answer))).toEqual([]);
    expect(await exited).toBe(0);
    expect(Date.now() - began).toBeLessThan(grace + 1000);
  } finally {
    sending = false;
    session.destroy();
    await own.stop();
  }
}, 60_000);
