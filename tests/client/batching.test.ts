/**
 * The async client sends the calls made in one pass of the event loop (and the calls that waited
 * for a full stream buffer to drain) together, as few BatchedPipeline messages as its bounds
 * allow, and settles each call with its own answer. A grpc-js server records the calls of each
 * message it receives and answers as each test says.
 */
import * as grpc from "@grpc/grpc-js";
import { create } from "@bufbuild/protobuf";
import { timestampNow } from "@bufbuild/protobuf/wkt";
import { maxCallsPerMessage } from "../../client/src/call-batches";
import { rawCodec } from "../../client/src/codec";
import { Code } from "../../client/src/errors";
import { serviceDefinition } from "../../client/src/grpc-definition";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import {
  BatchedPipelineResponseSchema,
  CallErrorSchema,
  LoadResponseSchema,
  PersistedStateSchema,
  PipelineResponseSchema,
  SaveResponseSchema,
  StatePersister,
  Status,
  type BatchedPipelineRequest,
  type BatchedPipelineResponse,
  type PipelineRequest,
  type PipelineResponse,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";

type Stream = grpc.ServerDuplexStream<BatchedPipelineRequest, BatchedPipelineResponse>;

/** The calls of each message received, in order. */
let messages: PipelineRequest[][];
/** What the server does with a message's calls: each test's own. */
let onMessage: (calls: PipelineRequest[], stream: Stream) => void;

const server = new grpc.Server();
server.addService(serviceDefinition(StatePersister), {
  batchedPipeline: (stream: Stream) => {
    stream.on("data", ({ calls }: BatchedPipelineRequest) => {
      messages.push(calls);
      onMessage(calls, stream);
    });
    stream.on("end", () => stream.end());
  },
});
let address: string;
let client: GrpcStatePersister<Uint8Array>;

beforeAll(async () => {
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) => (error ? reject(error) : resolve(bound))),
  );
  address = `127.0.0.1:${port}`;
  client = new GrpcStatePersister({ address, codec: rawCodec, retry: { attempts: 1 } });
});
afterAll(async () => {
  await client.close();
  server.forceShutdown();
});
beforeEach(() => {
  messages = [];
});

const bytes = (text: string) => new TextEncoder().encode(text);
const text = (state: Uint8Array | undefined) => new TextDecoder().decode(state);
const appOf = (request: PipelineRequest) => request.call.value!.appId;
const saved = (request: PipelineRequest): PipelineResponse =>
  create(PipelineResponseSchema, { callId: request.callId, result: { case: "save", value: create(SaveResponseSchema, { createdAt: timestampNow() }) } });
const refused = (request: PipelineRequest): PipelineResponse =>
  create(PipelineResponseSchema, { callId: request.callId, result: { case: "error", value: create(CallErrorSchema, { code: Code.ALREADY_EXISTS, message: `${appOf(request)} exists` }) } });
/** A Load's answer whose state names the app asked for. */
const loaded = (request: PipelineRequest): PipelineResponse =>
  create(PipelineResponseSchema, {
    callId: request.callId,
    result: {
      case: "load",
      value: create(LoadResponseSchema, {
        persistedState: create(PersistedStateSchema, { appId: appOf(request), position: "p", state: bytes(`state of ${appOf(request)}`), status: Status.COMPLETED, createdAt: timestampNow() }),
      }),
    },
  });
const answer = (stream: Stream, answers: PipelineResponse[]) => stream.write(create(BatchedPipelineResponseSchema, { answers }));
const step = (appId: string) => ({ appId, sequenceId: 0, position: "p", state: bytes("{}"), status: "completed" as const });

test("calls made in one turn arrive in as few messages as the bound allows; each settles with its own answer, in any order", async () => {
  onMessage = (calls, stream) => {
    // Answered backwards, a few per message, so no answer lines up with its call by position.
    const answers = calls.map(loaded).reverse();
    for (let i = 0; i < answers.length; i += 7) answer(stream, answers.slice(i, i + 7));
  };
  const calls = maxCallsPerMessage + 44;
  const apps = Array.from({ length: calls }, (_, i) => `app-${i}`);
  const states = await Promise.all(apps.map((appId) => client.load({ appId })));
  expect(messages.map((calls) => calls.length)).toEqual([maxCallsPerMessage, 44]);
  expect(messages.flat().map(appOf)).toEqual(apps);
  expect(states.map((row) => [row?.appId, text(row?.state)])).toEqual(apps.map((appId) => [appId, `state of ${appId}`]));
});

test("calls made by several callbacks of one event-loop pass (timers due together) go in one message", async () => {
  onMessage = (calls, stream) => answer(stream, calls.map(loaded));
  const apps = Array.from({ length: 10 }, (_, i) => `timer-${i}`);
  const states = await Promise.all(apps.map((appId) => new Promise((resolve) => setTimeout(() => resolve(client.load({ appId })), 0))));
  expect(messages.map((calls) => calls.map(appOf))).toEqual([apps]);
  expect(states).toHaveLength(10);
});

test("while the stream's buffer is full, calls wait in the client and go out together once it drains", async () => {
  // The server stops reading at the first message, so HTTP/2 flow control fills the client's buffer.
  let resume!: () => void;
  onMessage = (calls, stream) => {
    if (messages.length === 1) {
      stream.pause();
      resume = () => stream.resume();
    }
    answer(stream, calls.map(saved));
  };
  const passes = 600;
  // 8 KiB states: seven fit the client's 64 KiB message bound; about the first 120 fill the buffers.
  const state = new Uint8Array(8 * 1024);
  const saves: Promise<unknown>[] = [];
  // One call per event-loop pass: without backpressure each would be a message of its own.
  for (let i = 0; i < passes; i++) {
    saves.push(client.save({ ...step(`full-${i}`), state }));
    await new Promise((resolve) => setImmediate(resolve));
  }
  resume();
  await Promise.all(saves);
  expect(messages.flat().map(appOf)).toEqual(Array.from({ length: passes }, (_, i) => `full-${i}`));
  expect(messages.length).toBeLessThan(passes / 2);
});

test("an error answer fails its call alone", async () => {
  onMessage = (calls, stream) => answer(stream, calls.map((call) => (appOf(call) === "taken" ? refused(call) : saved(call))));
  const results = await Promise.allSettled(["a", "taken", "b"].map((appId) => client.save(step(appId))));
  expect(messages).toHaveLength(1);
  expect(results).toEqual([
    { status: "fulfilled", value: { createdAt: expect.any(Date) } },
    { status: "rejected", reason: expect.objectContaining({ code: Code.ALREADY_EXISTS, message: expect.stringContaining("taken exists") }) },
    { status: "fulfilled", value: { createdAt: expect.any(Date) } },
  ]);
});

test("a stream that fails fails exactly the calls it left unanswered, with its status; the next call opens a new stream", async () => {
  onMessage = (calls, stream) => {
    stream.write(create(BatchedPipelineResponseSchema, { answers: calls.slice(0, 4).map(saved) }), () =>
      stream.emit("error", { code: grpc.status.UNAVAILABLE, details: "the server went away" }),
    );
  };
  const apps = Array.from({ length: 10 }, (_, i) => `app-${i}`);
  const results = await Promise.allSettled(apps.map((appId) => client.save(step(appId))));
  expect(messages).toHaveLength(1);
  expect(results.map((result) => result.status)).toEqual([...Array(4).fill("fulfilled"), ...Array(6).fill("rejected")]);
  for (const result of results.slice(4)) {
    expect(result).toMatchObject({ reason: { code: Code.UNAVAILABLE, message: expect.stringContaining("the server went away") } });
  }
  onMessage = (calls, stream) => answer(stream, calls.map(saved));
  await expect(client.save(step("after"))).resolves.toEqual({ createdAt: expect.any(Date) });
  expect(messages.map((calls) => calls.map(appOf))).toEqual([apps, ["after"]]);
});

test("close() right after calls sends them before ending the stream: they are answered", async () => {
  onMessage = (calls, stream) => answer(stream, calls.map(saved));
  const closing = new GrpcStatePersister({ address, codec: rawCodec, retry: { attempts: 1 } });
  // Connected first: grpc-js refuses calls on a channel closed before it connected.
  await closing.save(step("w"));
  const saves = ["x", "y"].map((appId) => closing.save(step(appId)));
  await closing.close();
  await expect(Promise.all(saves)).resolves.toEqual([{ createdAt: expect.any(Date) }, { createdAt: expect.any(Date) }]);
  expect(messages.map((calls) => calls.map(appOf))).toEqual([["w"], ["x", "y"]]);
});
