/**
 * The hop rows and the server-side rows of `npm run bench` (issue 12).
 *
 * Hop: the TypeScript client and the Python clients (sync and async) call the no-op server
 * (bench/noop-server.ts) one call at a time, Save and Load, in blocks alternating with a raw TCP
 * request-response of the same message sizes against bench/echo-server.ts (Node), from the same
 * language: what the gRPC stack costs over the loopback floor, measured in the same run.
 *
 * Server-side: the TypeScript client, one call in flight, Save (next step) and Load latest on
 * PostgreSQL and Redis through the real server, against the no-op hop plus the database floor
 * (lib/direct-store.ts: the store's statements run by the driver directly), in alternating
 * rounds: what the server adds of its own.
 */
import { create, toBinary } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import {
  LoadRequestSchema,
  LoadResponseSchema,
  PersistedStateSchema,
  PipelineRequestSchema,
  PipelineResponseSchema,
  SaveRequestSchema,
  SaveResponseSchema,
  Status,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { serverScript } from "../../tests/support/server-process";
import { databaseUrls, dropPostgresSchemas, dropRedisPrefixes, withParams } from "./backends";
import { ChildExited, startChildServer, type ChildServer } from "./children";
import { openDirect, type DirectKind } from "./direct-store";
import { openSurface } from "./jobs";
import { closedLoop, summarize, type Timing } from "./load";
import { eventEngineClientOff, pythonMissing, runPythonScript } from "./python-row";
import { formatMs, formatRatio, markdownTable } from "./report";
import { appId, fixtureRows, partitionFor, saveAll, slotOperation, stateOf, type Fixture, type Surface } from "./workload";

const stateBytes = 2048;
/** Issue 12: a client's hop p50 within 3x of the raw loopback request-response. */
const hopTargetTimes = 3;
/** Issue 12: the server's p50 within 0.15 ms of (no-op hop + direct database floor). */
const serverSideTargetMs = 0.15;

/** tuned: in a process with eventEngineClientOff. */
export type HopClient = "typescript" | "python-sync" | "python-sync-tuned" | "python-async" | "python-async-tuned";
type HopCall = "save" | "load";

export interface HopRow {
  kind: "hop";
  client: HopClient;
  operation: HopCall;
  requestBytes: number;
  answerBytes: number;
  calls: number;
  clientP50Ms: number;
  echoP50Ms: number;
  ratio: number;
  target: { atMostTimes: number; met: boolean };
}

export type ServerSideBackend = "postgres" | "redis";
type ServerSideCall = "save" | "load-latest";
type Floor = "server" | "noop" | DirectKind;

export interface ServerSideRow {
  kind: "server-side";
  backend: ServerSideBackend;
  operation: ServerSideCall;
  /** Medians over the rounds of each round's p50. */
  serverP50Ms: number;
  hopP50Ms: number;
  directP50Ms: number;
  inProcessP50Ms: number;
  /** server - (hop + direct). */
  overMs: number;
  /** CPU time (user + system) of the server and of the no-op server per call, medians over the rounds. */
  serverCpuUs: number;
  noopCpuUs: number;
  rounds: Array<Record<Floor, number> & { serverCpuUs: number; noopCpuUs: number }>;
  target: { withinMs: number; met: boolean };
}

export interface HopSkipped {
  kind: "hop-skipped";
  what: string;
  reason: string;
  /** The harness failed (not a missing prerequisite). */
  broken: boolean;
}

export type HopLine = HopRow | ServerSideRow | HopSkipped;

export interface HopSettings {
  smoke: boolean;
  /** V8 CPU profiles of the server children go to <profileDir>/server-side-<backend>. */
  profileDir?: string;
}

/** One connection to bench/echo-server.ts: a frame asks for an answer of a given size. */
class EchoClient {
  private waiting: { need: number; got: number; done: () => void } | null = null;

  private constructor(private readonly socket: net.Socket) {
    socket.setNoDelay(true);
    socket.on("data", (chunk: Buffer) => {
      const waiting = this.waiting;
      if (!waiting) return;
      waiting.got += chunk.length;
      if (waiting.got >= waiting.need) {
        this.waiting = null;
        waiting.done();
      }
    });
  }

  static connect(address: string): Promise<EchoClient> {
    const [host, port] = address.split(":");
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(port), host, () => resolve(new EchoClient(socket)));
      socket.once("error", reject);
    });
  }

  static frame(requestBytes: number, answerBytes: number): Buffer {
    const frame = Buffer.alloc(8 + requestBytes, 7);
    frame.writeUInt32BE(requestBytes, 0);
    frame.writeUInt32BE(answerBytes, 4);
    return frame;
  }

  call(frame: Buffer): Promise<void> {
    return new Promise((done) => {
      this.waiting = { need: frame.readUInt32BE(4), got: 0, done };
      this.socket.write(frame);
    });
  }

  close(): void {
    this.socket.destroy();
  }
}

/** The sizes of the TypeScript client's pipelined Save and Load and of the no-op server's answers. */
function messageSizes(): Record<HopCall, { request: number; answer: number }> {
  const callId = 123_456n;
  const createdAt = timestampFromDate(new Date());
  const saveRequest = create(SaveRequestSchema, { partitionKey: partitionFor(stateBytes), appId: "hop-000000", sequenceId: 3n, position: "step", state: stateOf(stateBytes), status: Status.COMPLETED });
  const loadRequest = create(LoadRequestSchema, { partitionKey: partitionFor(stateBytes), appId: appId(0) });
  const loaded = create(LoadResponseSchema, {
    persistedState: create(PersistedStateSchema, { partitionKey: partitionFor(stateBytes), appId: appId(0), sequenceId: 3n, position: "step-3", state: stateOf(stateBytes), status: Status.COMPLETED, createdAt }),
  });
  const size = (schema: typeof PipelineRequestSchema | typeof PipelineResponseSchema, message: object) => toBinary(schema as typeof PipelineRequestSchema, create(schema as typeof PipelineRequestSchema, message)).byteLength;
  return {
    save: {
      request: size(PipelineRequestSchema, { callId, call: { case: "save", value: saveRequest } }),
      answer: size(PipelineResponseSchema, { callId, result: { case: "save", value: create(SaveResponseSchema, { createdAt }) } }),
    },
    load: {
      request: size(PipelineRequestSchema, { callId, call: { case: "load", value: loadRequest } }),
      answer: size(PipelineResponseSchema, { callId, result: { case: "load", value: loaded } }),
    },
  };
}

/** CPU time (user + system) a process has used so far, from /proc (10 ms ticks). */
function cpuMs(pid: number): number {
  const fields = fs.readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / clockTicks;
}
const clockTicks = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim()) || 100;

/** The surface with a count of the Saves and Loads sent through it (warm-up included, as the CPU time is). */
function countingSurface(surface: Surface): Surface & { calls(): number } {
  let calls = 0;
  return {
    ...surface,
    save: (input) => (calls++, surface.save(input)),
    load: (query) => (calls++, surface.load(query)),
    listAppIds: (partitionKey) => surface.listAppIds(partitionKey),
    close: () => surface.close(),
    calls: () => calls,
  };
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;

export class HopBench {
  private readonly runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  private readonly children: ChildServer[] = [];
  private drops: Array<() => Promise<void>> = [];
  readonly lines: HopLine[] = [];

  constructor(private readonly settings: HopSettings) {}

  private emit(line: HopLine) {
    this.lines.push(line);
    console.log(progressLine(line));
  }

  private async start(script: string, args: string[], profile?: string): Promise<ChildServer> {
    const child = await startChildServer(script, args, { cpuProfDir: profile && this.settings.profileDir && path.join(this.settings.profileDir, profile) });
    this.children.push(child);
    return child;
  }

  async run(): Promise<HopLine[]> {
    console.log("hop: clients against the no-op server and a raw TCP echo; server-side rows");
    const noop = await this.start("bench/noop-server.ts", ["--state-bytes", String(stateBytes), "--list-ids", "10", "--json-state"]);
    const echo = await this.start("bench/echo-server.ts", []);
    try {
      await this.typescriptHop(noop.address, echo.address);
      await this.pythonHop(noop.address, echo.address);
      for (const backend of ["postgres", "redis"] as const) await this.serverSide(backend, noop);
    } finally {
      await this.close();
    }
    return this.lines;
  }

  /** On SIGINT/SIGTERM and at the end: stop the children, drop the data. */
  async close(): Promise<void> {
    await Promise.all(this.children.splice(0).map((child) => child.stop()));
    for (const drop of this.drops.splice(0)) await drop().catch(() => {});
  }

  private hopTiming(): { warmupMs: number; measureMs: number } {
    return this.settings.smoke ? { warmupMs: 50, measureMs: 150 } : { warmupMs: 500, measureMs: 3000 };
  }

  private async typescriptHop(noopAddress: string, echoAddress: string): Promise<void> {
    const sizes = messageSizes();
    const client = await openSurface({ kind: "server", address: noopAddress });
    const echo = await EchoClient.connect(echoAddress);
    const state = stateOf(stateBytes);
    let sequenceId = 0;
    const calls: Record<HopCall, () => Promise<unknown>> = {
      save: () => client.save({ partitionKey: partitionFor(stateBytes), appId: "hop-000000", sequenceId: sequenceId++, position: "step", state, status: "completed" }),
      load: async () => {
        if (!(await client.load({ partitionKey: partitionFor(stateBytes), appId: appId(0) }))) throw new Error("the no-op server answered no state");
      },
    };
    const frames = { save: EchoClient.frame(sizes.save.request, sizes.save.answer), load: EchoClient.frame(sizes.load.request, sizes.load.answer) };
    const times = { save: { client: [] as number[], echo: [] as number[] }, load: { client: [] as number[], echo: [] as number[] } };
    const { warmupMs, measureMs } = this.hopTiming();
    const began = performance.now();
    try {
      // At least one measured block, however short the timing (the smoke run).
      while (performance.now() < began + warmupMs + measureMs || times.load.echo.length === 0) {
        const measured = performance.now() >= began + warmupMs;
        for (const operation of ["save", "load"] as const) {
          for (const who of ["client", "echo"] as const) {
            for (let i = 0; i < 100; i++) {
              const start = performance.now();
              await (who === "client" ? calls[operation]() : echo.call(frames[operation]));
              if (measured) times[operation][who].push(performance.now() - start);
            }
          }
        }
      }
    } finally {
      echo.close();
      await client.close();
    }
    for (const operation of ["save", "load"] as const) {
      this.emitHop("typescript", operation, sizes[operation].request, sizes[operation].answer, times[operation].client.length, median(times[operation].client), median(times[operation].echo));
    }
  }

  private async pythonHop(noopAddress: string, echoAddress: string): Promise<void> {
    const missing = pythonMissing();
    if (missing) {
      this.emit({ kind: "hop-skipped", what: "Python hop rows", reason: missing, broken: false });
      return;
    }
    const { warmupMs, measureMs } = this.hopTiming();
    try {
      for (const tuned of [false, true]) {
        const args = ["hop", "--address", noopAddress, "--echo", echoAddress, "--warmup-s", String(warmupMs / 1000), "--measure-s", String(measureMs / 1000)];
        const lines = await runPythonScript(args, undefined, tuned ? eventEngineClientOff : {});
        for (const line of lines) {
          if (line.kind !== "hop") continue;
          const operation = line.operation as HopCall;
          const [request, answer, calls, echo] = [line.requestBytes, line.answerBytes, line.calls, line.echoP50Ms] as number[];
          this.emitHop(tuned ? "python-sync-tuned" : "python-sync", operation, request!, answer!, calls!, line.clientP50Ms as number, echo!);
          this.emitHop(tuned ? "python-async-tuned" : "python-async", operation, request!, answer!, calls!, line.asyncClientP50Ms as number, echo!);
        }
      }
    } catch (error) {
      this.emit({ kind: "hop-skipped", what: "Python hop rows", reason: errorText(error), broken: true });
    }
  }

  private emitHop(client: HopClient, operation: HopCall, requestBytes: number, answerBytes: number, calls: number, clientP50Ms: number, echoP50Ms: number) {
    const ratio = clientP50Ms / echoP50Ms;
    this.emit({ kind: "hop", client, operation, requestBytes, answerBytes, calls, clientP50Ms, echoP50Ms, ratio, target: { atMostTimes: hopTargetTimes, met: ratio <= hopTargetTimes } });
  }

  /** Save and Load latest through the server, the no-op server and the database floors, one call in flight, in alternating rounds. */
  private async serverSide(backend: ServerSideBackend, noop: ChildServer): Promise<void> {
    const namespace = `bench_side_${this.runId}`;
    const [storeUrl, directUrl] =
      backend === "postgres"
        ? [withParams(databaseUrls.postgres, { schema: namespace }), withParams(databaseUrls.postgres, { schema: `${namespace}_direct` })]
        : [withParams(databaseUrls.redis, { prefix: namespace }), withParams(databaseUrls.redis, { prefix: `${namespace}_direct` })];
    const drop = () => (backend === "postgres" ? dropPostgresSchemas(namespace, `${namespace}_direct`) : dropRedisPrefixes(namespace, `${namespace}_direct`));
    this.drops.push(drop);
    let server: ChildServer;
    try {
      server = await this.start(serverScript, ["--store", storeUrl, "--init"], `server-side-${backend}`);
    } catch (error) {
      this.emit({ kind: "hop-skipped", what: `server-side rows (${backend})`, reason: error instanceof ChildExited ? error.reason : errorText(error), broken: false });
      return;
    }
    const surfaces: Partial<Record<Floor, Surface>> = {};
    try {
      surfaces.server = await openSurface({ kind: "server", address: server.address });
      surfaces.noop = await openSurface({ kind: "server", address: noop.address });
      surfaces.direct = await openDirect("direct", directUrl);
      surfaces["in-process"] = await openDirect("in-process", directUrl);
      const fixture: Fixture = this.settings.smoke ? { apps: 20, steps: 2, listApps: 0, historySteps: 0 } : { apps: 200, steps: 4, listApps: 0, historySteps: 0 };
      await saveAll(surfaces.server, fixtureRows(fixture, stateBytes), 16);
      await saveAll(surfaces.direct, fixtureRows(fixture, stateBytes), 16);
      const timing: Timing = this.settings.smoke ? { warmupMs: 30, measureMs: 100 } : { warmupMs: 300, measureMs: 1500 };
      const rounds = this.settings.smoke ? 1 : 5;
      const floors: Floor[] = ["server", "noop", "direct", "in-process"];
      const children: Partial<Record<Floor, ChildServer>> = { server, noop };
      for (const operation of ["save", "load-latest"] as const) {
        const measured: ServerSideRow["rounds"] = [];
        for (let round = 0; round < rounds; round++) {
          const p50 = { serverCpuUs: 0, noopCpuUs: 0 } as ServerSideRow["rounds"][number];
          // Alternating the order, so that a drift of the machine falls on all alike.
          for (const floor of round % 2 === 0 ? floors : [...floors].reverse()) {
            const job = { operation, stateBytes, fixture, tag: `${this.runId}-${backend}-${round}-${floor}`, process: 0 };
            const counted = countingSurface(surfaces[floor]!);
            const child = children[floor];
            const cpuBefore = child && cpuMs(child.pid);
            const summary = summarize([await closedLoop([slotOperation(counted, job, 0)], timing)]);
            if (summary.errors > 0) throw new Error(`${backend} ${operation} on ${floor}: ${summary.firstError}`);
            p50[floor] = summary.p50Ms;
            if (child) p50[floor === "server" ? "serverCpuUs" : "noopCpuUs"] = ((cpuMs(child.pid) - cpuBefore!) * 1000) / counted.calls();
          }
          measured.push(p50);
        }
        const of = (floor: Floor | "serverCpuUs" | "noopCpuUs") => median(measured.map((round) => round[floor]));
        const overMs = of("server") - of("noop") - of("direct");
        this.emit({
          kind: "server-side",
          backend,
          operation,
          serverP50Ms: of("server"),
          hopP50Ms: of("noop"),
          directP50Ms: of("direct"),
          inProcessP50Ms: of("in-process"),
          overMs,
          serverCpuUs: of("serverCpuUs"),
          noopCpuUs: of("noopCpuUs"),
          rounds: measured,
          target: { withinMs: serverSideTargetMs, met: overMs <= serverSideTargetMs },
        });
      }
    } catch (error) {
      this.emit({ kind: "hop-skipped", what: `server-side rows (${backend})`, reason: errorText(error), broken: true });
    } finally {
      for (const surface of Object.values(surfaces)) await surface.close().catch(() => {});
      await server.stop();
      this.children.splice(this.children.indexOf(server), 1);
      await drop().catch((error: unknown) => console.log(`server-side ${backend}: could not drop the bench data: ${errorText(error)}`));
      this.drops.splice(this.drops.indexOf(drop), 1);
    }
  }
}

const clientLabels: Record<HopClient, string> = {
  typescript: "TypeScript (async client)",
  "python-sync": "Python sync (GrpcStatePersister)",
  "python-async": "Python async (AsyncGrpcStatePersister)",
  "python-sync-tuned": `Python sync, GRPC_EXPERIMENTS=${eventEngineClientOff.GRPC_EXPERIMENTS}`,
  "python-async-tuned": `Python async, GRPC_EXPERIMENTS=${eventEngineClientOff.GRPC_EXPERIMENTS}`,
};
const backendLabels: Record<ServerSideBackend, string> = { postgres: "PostgreSQL", redis: "Redis" };
const callLabels = { save: "Save", load: "Load", "load-latest": "Load latest" } as const;

function progressLine(line: HopLine): string {
  switch (line.kind) {
    case "hop-skipped":
      return `hop: ${line.what} SKIPPED: ${line.reason}`;
    case "hop":
      return `hop ${line.client.padEnd(18)} ${line.operation.padEnd(5)} p50 ${formatMs(line.clientP50Ms)} ms | raw TCP p50 ${(line.echoP50Ms * 1000).toFixed(0)} µs | ${formatRatio(line.ratio)}x (≤ ${line.target.atMostTimes}x: ${line.target.met ? "met" : "missed"})`;
    case "server-side":
      return (
        `server-side ${line.backend.padEnd(8)} ${line.operation.padEnd(11)} server p50 ${formatMs(line.serverP50Ms)} | hop ${formatMs(line.hopP50Ms)} + direct ${formatMs(line.directP50Ms)} ` +
        `| over ${formatMs(line.overMs)} ms (≤ ${line.target.withinMs}: ${line.target.met ? "met" : "missed"}) | store in-process ${formatMs(line.inProcessP50Ms)}` +
        ` | CPU per call: server ${line.serverCpuUs.toFixed(0)} µs, no-op ${line.noopCpuUs.toFixed(0)} µs`
      );
  }
}

/** Failures of the harness (not a missing prerequisite): the bench should exit non-zero. */
export const hopBroken = (lines: HopLine[]) => lines.some((line) => line.kind === "hop-skipped" && line.broken);

/** The markdown sections of the hop and server-side rows. */
export function hopMarkdown(lines: HopLine[]): string {
  const hops = lines.filter((line): line is HopRow => line.kind === "hop");
  const sides = lines.filter((line): line is ServerSideRow => line.kind === "server-side");
  const skipped = lines.filter((line): line is HopSkipped => line.kind === "hop-skipped");
  const verdict = (met: boolean) => (met ? "met" : "**missed**");
  const us = (ms: number) => `${(ms * 1000).toFixed(0)} µs`;
  return [
    "## The hop: clients against the no-op server, one call at a time",
    "",
    "Each client calls bench/noop-server.ts (the server's grpc-js stack and messages, answering at once: a Save's answer, a 2 KiB Load) one call at a time, in blocks of 100 alternating with a raw TCP request-response of the same sizes " +
      "(the pipelined message's bytes each way) between the same language and a Node echo server (bench/echo-server.ts). Target: the client's p50 at most 3× the raw one. " +
      `The Python clients are measured twice: as installed, and in a process started with \`GRPC_EXPERIMENTS=${eventEngineClientOff.GRPC_EXPERIMENTS}\` (grpcio's older iomgr transport instead of its EventEngine; README, "Python: lower latency").`,
    "",
    markdownTable(
      ["Client", "Call", "Request / answer bytes", "Calls", "Client p50 ms", "Raw TCP p50", "× raw", "Target ≤ 3×"],
      hops.map((row) => [clientLabels[row.client], callLabels[row.operation], `${row.requestBytes} / ${row.answerBytes}`, row.calls.toLocaleString("en-US"), formatMs(row.clientP50Ms), us(row.echoP50Ms), formatRatio(row.ratio), verdict(row.target.met)]),
      new Set([2, 3, 4, 5, 6]),
    ),
    "",
    "## Server-side: what the server adds (TypeScript client, one call in flight, 2 KiB)",
    "",
    "Save (next step) and Load latest through the server, against the same calls on the no-op server (the hop) plus the database floor (bench/lib/direct-store.ts): " +
      "on PostgreSQL pg running the store's own statements directly; on Redis the store module in-process (its scripts are not exported; its own code is a few µs). " +
      "Store in-process: the store module called in the bench's process (driver, statements and the store's batching, no gRPC). Medians of 5 rounds' p50s, the order alternating. " +
      "CPU µs/call: user + system time of the server process (and of the no-op server) over a row's calls (/proc), a measure a busy machine disturbs less than latency. " +
      `Target: server p50 ≤ hop + floor + ${serverSideTargetMs} ms.`,
    "",
    markdownTable(
      ["Backend", "Call", "Server p50 ms", "No-op hop p50 ms", "Floor p50 ms", "Hop + floor ms", "Server − (hop + floor) ms", "Store in-process p50 ms", "Server CPU µs/call", "No-op CPU µs/call", `Target ≤ +${serverSideTargetMs} ms`],
      sides.map((row) => [
        backendLabels[row.backend],
        callLabels[row.operation],
        formatMs(row.serverP50Ms),
        formatMs(row.hopP50Ms),
        formatMs(row.directP50Ms),
        formatMs(row.hopP50Ms + row.directP50Ms),
        formatMs(row.overMs),
        formatMs(row.inProcessP50Ms),
        row.serverCpuUs.toFixed(0),
        row.noopCpuUs.toFixed(0),
        verdict(row.target.met),
      ]),
      new Set([2, 3, 4, 5, 6, 7, 8, 9]),
    ),
    "",
    ...skipped.map((line) => `- **${line.what} skipped**: ${line.reason}`),
    "",
  ].join("\n");
}

const errorText = (error: unknown) => (error instanceof Error ? error.message : String(error)).split("\n")[0]!;
