/** A schema-free gRPC client for tests that must send what a well-behaved client never would. */
import * as grpc from "@grpc/grpc-js";
import { pipelinePath } from "../../server/src/grpc/pipelined";

export function rawUnary(
  address: string,
  path: string,
  request: Uint8Array,
  options: grpc.CallOptions = { deadline: Date.now() + 10_000 },
): Promise<{ code: number; details: string; response?: Buffer }> {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const bytes = (value: Buffer) => value;
  return new Promise((resolve) => {
    client.makeUnaryRequest(path, bytes, bytes, Buffer.from(request), new grpc.Metadata(), options, (error, response) => {
      client.close();
      resolve(error ? { code: error.code, details: error.details } : { code: 0, details: "", response });
    });
  });
}

/** A Pipeline (or BatchedPipeline) stream of raw messages: what arrives, and the status it ends with. */
export interface RawPipeline {
  send(message: Uint8Array): void;
  /** Half-closes: no more calls from this side. */
  end(): void;
  /** Stops and restarts reading answers (a client that falls behind). */
  pause(): void;
  resume(): void;
  /** The answers so far, as they arrived. */
  answers: Buffer[];
  /** Resolves once `count` answers have arrived. */
  answered(count: number): Promise<Buffer[]>;
  /** The stream's final status. */
  status: Promise<{ code: number; details: string }>;
}

/** `path`: the pipelined method to call, Pipeline or BatchedPipeline (server/src/grpc/pipelined.ts). */
export function rawPipeline(address: string, metadata = new grpc.Metadata(), path = pipelinePath): RawPipeline {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  const bytes = (value: Buffer) => value;
  const stream = client.makeBidiStreamRequest(path, bytes, bytes, metadata, { deadline: Date.now() + 30_000 });
  const answers: Buffer[] = [];
  const waiters: Array<() => void> = [];
  stream.on("data", (answer: Buffer) => {
    answers.push(answer);
    waiters.forEach((wake) => wake());
  });
  stream.on("error", () => {});
  const status = new Promise<{ code: number; details: string }>((resolve) =>
    stream.on("status", (final: grpc.StatusObject) => {
      client.close();
      waiters.forEach((wake) => wake());
      resolve({ code: final.code, details: final.details });
    }),
  );
  return {
    send: (message) => stream.write(Buffer.from(message)),
    end: () => stream.end(),
    pause: () => stream.pause(),
    resume: () => stream.resume(),
    answers,
    answered: (count) =>
      new Promise((resolve, reject) => {
        const check = () => {
          if (answers.length >= count) resolve(answers.slice(0, count));
        };
        waiters.push(check);
        check();
        void status.then(() => answers.length < count && reject(new Error(`the stream ended after ${answers.length} of ${count} answers`)));
      }),
    status,
  };
}
