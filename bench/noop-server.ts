/**
 * The gRPC ceiling: the StatePersister service on the same grpc-js server stack and message
 * definition as the real server (core/grpc-definition.ts), answering from memory without any
 * store. A Load answers a state of --state-bytes, a listing streams --list-ids ids in the
 * server's chunk size, a ListSteps streams the steps (no states) of an app of --history-steps
 * steps, newest first, as many as its limit asks, in the server's page size, so requests and
 * responses have the sizes the real calls have. No DeleteApp: its row has no gRPC ceiling.
 *
 *   tsx bench/noop-server.ts --listen 127.0.0.1:0 --state-bytes 2048 --list-ids 2500 --history-steps 10000
 *
 * --json-state: the loaded state is a JSON object of the same size (the Python client hands a
 * Load's state to json.loads and Burr's State.deserialize).
 */
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import * as grpc from "@grpc/grpc-js";
import { parseArgs } from "node:util";
import { serviceDefinition } from "../client/src/grpc-definition";
import {
  ListAppIdsResponseSchema,
  type ListStepsRequest,
  ListStepsResponseSchema,
  LoadResponseSchema,
  PersistedStateSchema,
  PipelineResponseSchema,
  type PipelineRequest,
  type PipelineResponse,
  type BatchedPipelineRequest,
  BatchedPipelineResponseSchema,
  SaveResponseSchema,
  StatePersister,
  Status,
} from "../client/src/gen/burr/state/v1/state_persister_pb";
import { appId, historyApp, historyPartition, partitionFor, stateOf } from "./lib/workload";

/** The real server's page size for listings (stores/src/guard.ts), so chunks are alike. */
const chunkIds = 1000;
const maxMessageBytes = 16 * 1024 * 1024;
/** The real server's bound on a grouped answer message (server/src/grpc/pipeline-handler.ts). */
const groupedAnswerBytes = 1024 * 1024;

const { values } = parseArgs({
  options: {
    listen: { type: "string" },
    "state-bytes": { type: "string" },
    "list-ids": { type: "string" },
    "history-steps": { type: "string" },
    "json-state": { type: "boolean" },
  },
});
const stateBytes = Number(values["state-bytes"] ?? 2048);
const listIds = Number(values["list-ids"] ?? 1000);
const historySteps = Number(values["history-steps"] ?? 100);

const loaded = create(LoadResponseSchema, {
  persistedState: create(PersistedStateSchema, {
    partitionKey: partitionFor(stateBytes),
    appId: appId(0),
    sequenceId: 3n,
    position: "step-3",
    state: values["json-state"] ? jsonStateOf(stateBytes) : stateOf(stateBytes),
    status: Status.COMPLETED,
    createdAt: timestampFromDate(new Date()),
  }),
});
const chunks = Array.from({ length: Math.ceil(listIds / chunkIds) }, (_, chunk) =>
  create(ListAppIdsResponseSchema, {
    appIds: Array.from({ length: Math.min(chunkIds, listIds - chunk * chunkIds) }, (_, i) => appId(chunk * chunkIds + i)),
  }),
);

/** The history's steps, newest first, without states (as a listing without include_state sends them). */
const steps = Array.from({ length: historySteps }, (_, i) =>
  create(PersistedStateSchema, {
    partitionKey: historyPartition,
    appId: historyApp,
    sequenceId: BigInt(historySteps - 1 - i),
    position: `step-${historySteps - 1 - i}`,
    status: Status.COMPLETED,
    createdAt: timestampFromDate(new Date()),
  }),
);

/** `{"padding":"..."}` of exactly `bytes` bytes (stateOf's characters, without quotes or backslashes). */
function jsonStateOf(bytes: number): Uint8Array {
  const wrapper = Buffer.byteLength('{"padding":""}');
  const padding = Buffer.from(stateOf(Math.max(0, bytes - wrapper))).toString("latin1").replace(/["\\]/g, "x");
  return Buffer.from(`{"padding":"${padding}"}`);
}

const saved = () => create(SaveResponseSchema, { createdAt: timestampFromDate(new Date()) });

const implementation: grpc.UntypedServiceImplementation = {
  initialize: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<object>) => callback(null, {}),
  isInitialized: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<object>) => callback(null, { initialized: true }),
  save: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<object>) => callback(null, saved()),
  load: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<object>) => callback(null, loaded),
  listAppIds: async (call: grpc.ServerWritableStream<unknown, object>) => {
    for (const chunk of chunks) {
      if (call.cancelled) return;
      if (!call.write(chunk)) await new Promise((resolve) => call.once("drain", resolve).once("cancelled", resolve));
    }
    call.end();
  },
  listSteps: async (call: grpc.ServerWritableStream<ListStepsRequest, object>) => {
    const count = Math.min(call.request.limit || historySteps, historySteps);
    const page = Math.min(chunkIds, count);
    for (let from = 0; from < count; from += page) {
      if (call.cancelled) return;
      const chunk = create(ListStepsResponseSchema, { steps: steps.slice(from, Math.min(from + page, count)) });
      if (!call.write(chunk)) await new Promise((resolve) => call.once("drain", resolve).once("cancelled", resolve));
    }
    call.end();
  },
  // Each call answered on the next turn, as a store's promise would be.
  pipeline: (call: grpc.ServerDuplexStream<PipelineRequest, object>) => {
    call.on("data", ({ callId, call: which }: PipelineRequest) =>
      setImmediate(() => {
        const result = which.case === "save" ? { case: "save" as const, value: saved() } : { case: "load" as const, value: loaded };
        if (!call.cancelled) call.write(create(PipelineResponseSchema, { callId, result }));
      }),
    );
    call.on("end", () => setImmediate(() => call.end()));
  },
  // The same, each turn's answers in one message of at most about 1 MiB, as the real server groups them.
  batchedPipeline: (call: grpc.ServerDuplexStream<BatchedPipelineRequest, object>) => {
    let groups: PipelineResponse[][] = [];
    let groupBytes = 0;
    call.on("data", ({ calls }: BatchedPipelineRequest) => {
      if (groups.length === 0) {
        setImmediate(() => {
          for (const answers of groups) if (!call.cancelled) call.write(create(BatchedPipelineResponseSchema, { answers }));
          groups = [];
        });
      }
      for (const { callId, call: which } of calls) {
        const result = which.case === "save" ? { case: "save" as const, value: saved() } : { case: "load" as const, value: loaded };
        const bytes = which.case === "load" ? stateBytes : 0;
        if (groups.length === 0 || groupBytes + bytes > groupedAnswerBytes) {
          groups.push([]);
          groupBytes = 0;
        }
        groups.at(-1)!.push(create(PipelineResponseSchema, { callId, result }));
        groupBytes += bytes;
      }
    });
    call.on("end", () => setImmediate(() => call.end()));
  },
};

const server = new grpc.Server({ "grpc.max_receive_message_length": maxMessageBytes, "grpc.max_send_message_length": maxMessageBytes });
server.addService(serviceDefinition(StatePersister), implementation);
server.bindAsync(values.listen ?? "127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) {
    process.stderr.write(`${JSON.stringify({ event: "start_failed", cause: error.message })}\n`);
    process.exit(1);
  }
  process.stderr.write(`${JSON.stringify({ event: "started", port, stateBytes, listIds, historySteps })}\n`);
});
process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
