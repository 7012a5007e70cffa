/**
 * The two pipelined methods seen from a raw client: Pipeline sends a call per message and gets
 * an answer per message; BatchedPipeline sends calls grouped and gets answers grouped. Tests
 * written against a Framing run unchanged over both.
 */
import { create, fromBinary, toBinary, type MessageInitShape } from "@bufbuild/protobuf";
import type * as grpc from "@grpc/grpc-js";
import {
  BatchedPipelineRequestSchema,
  BatchedPipelineResponseSchema,
  PipelineRequestSchema,
  PipelineResponseSchema,
  type PipelineResponse,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { batchedPipelinePath, pipelinePath } from "../../server/src/grpc/pipelined";
import { rawPipeline, type RawPipeline } from "./raw-grpc";

export type CallInit = MessageInitShape<typeof PipelineRequestSchema>;

export interface Framing {
  name: "Pipeline" | "BatchedPipeline";
  open(address: string, metadata?: grpc.Metadata): RawPipeline;
  /** Sends the calls: a message each (Pipeline), or all in one message (BatchedPipeline). */
  send(pipe: RawPipeline, calls: CallInit[]): void;
  /** Every answer received so far, in arrival order. */
  answers(pipe: RawPipeline): PipelineResponse[];
  /** Resolves with the answers once at least `count` have arrived; rejects if the stream ends first. */
  answered(pipe: RawPipeline, count: number): Promise<PipelineResponse[]>;
}

export const single: Framing = {
  name: "Pipeline",
  open: (address, metadata) => rawPipeline(address, metadata, pipelinePath),
  send: (pipe, calls) => calls.forEach((call) => pipe.send(toBinary(PipelineRequestSchema, create(PipelineRequestSchema, call)))),
  answers: (pipe) => pipe.answers.map((answer) => fromBinary(PipelineResponseSchema, answer)),
  answered: async (pipe, count) => (await pipe.answered(count)).map((answer) => fromBinary(PipelineResponseSchema, answer)),
};

const batchedAnswers = (messages: Buffer[]) => messages.flatMap((message) => fromBinary(BatchedPipelineResponseSchema, message).answers);

export const batched: Framing = {
  name: "BatchedPipeline",
  open: (address, metadata) => rawPipeline(address, metadata, batchedPipelinePath),
  send: (pipe, calls) => pipe.send(toBinary(BatchedPipelineRequestSchema, create(BatchedPipelineRequestSchema, { calls }))),
  answers: (pipe) => batchedAnswers(pipe.answers),
  answered: async (pipe, count) => {
    for (;;) {
      const answers = batchedAnswers(await pipe.answered(pipe.answers.length + (batchedAnswers(pipe.answers).length >= count ? 0 : 1)));
      if (answers.length >= count) return answers;
    }
  },
};

export const framings = [single, batched];
