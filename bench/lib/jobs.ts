/**
 * One measured job and where it runs: in this process, or split over several client processes
 * (bench/lib/client-process.ts) that each keep their share of the calls in flight.
 */
import { fork, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import * as path from "node:path";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { openCeiling, type CeilingSpec } from "./ceilings";
import { closedLoop, summarize, type Measurement, type Summary, type Timing } from "./load";
import { slotOperation, type JobShape, type Surface } from "./workload";

/** A server (the real one or the no-op one) reached through the async client, or a database directly. */
export type Target = { kind: "server"; address: string } | { kind: "ceiling"; spec: CeilingSpec };

export interface Job extends JobShape {
  target: Target;
  concurrency: number;
  timing: Timing;
}

export async function openSurface(target: Target): Promise<Surface> {
  if (target.kind === "ceiling") return openCeiling(target.spec);
  const client = new GrpcStatePersister({ address: target.address, codec: rawCodec, retry: { attempts: 1 } });
  return {
    save: (input) => client.save(input),
    load: (query) => client.load(query),
    listAppIds: (partitionKey) => client.listAppIds(partitionKey),
    listSteps: (query) => client.listSteps(query),
    close: () => client.close(),
  };
}

/** Runs a job in this process. */
export async function runJobHere(job: Job): Promise<Measurement> {
  const surface = await openSurface(job.target);
  try {
    const slots = Array.from({ length: job.concurrency }, (_, slot) => slotOperation(surface, job, slot));
    return await closedLoop(slots, job.timing);
  } finally {
    await surface.close();
  }
}

/** Runs jobs with their calls spread over `processes` client processes (1: this process). */
export class JobRunner {
  private readonly children: ChildProcess[] = [];

  constructor(private readonly processes: number) {}

  async run(job: Job): Promise<Summary> {
    if (this.processes <= 1 || job.concurrency < this.processes) return summarize([await runJobHere(job)]);
    while (this.children.length < this.processes) {
      this.children.push(
        fork(path.join(__dirname, "client-process.ts"), [], { execArgv: ["--conditions=burr-source", "--require", "tsx/cjs"], serialization: "advanced" }),
      );
    }
    const shares = this.children.map((child, i) => {
      const concurrency = Math.floor(job.concurrency / this.processes) + (i < job.concurrency % this.processes ? 1 : 0);
      const answer = once(child, "message") as Promise<[{ measurement?: Measurement; error?: string }]>;
      child.send({ ...job, concurrency, process: i });
      return answer.then(([reply]) => {
        if (reply.error !== undefined) throw new Error(`client process ${i}: ${reply.error}`);
        return reply.measurement!;
      });
    });
    return summarize(await Promise.all(shares));
  }

  close(): void {
    for (const child of this.children) child.disconnect();
  }
}
