/**
 * Soak: 200 concurrent clients for 60 s of mixed Save / Load / ListAppIds against one server.
 * No call may fail, and the server's memory must settle: its RSS after the run is within 15% of
 * its RSS after the first 30 s. (The compiled server warms up for about 30-40 s at this load:
 * a 120 s probe measured 155, 165, 176, 177, 180 MiB at 10-50 s, then 178-180 MiB until the end;
 * a leak keeps climbing after the warm-up, which this catches.)
 *
 * The server runs with its JS heap capped (--max-old-space-size=128, as README recommends for
 * predictable memory). Uncapped, V8 lets garbage pile up for a minute or more before a full
 * collection (RSS 150 -> 310 MB, then back to 250 MB), which says nothing about leaks; capped, a
 * leak cannot hide: it fills the heap and the calls fail.
 */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import { startServerProcess } from "../support/server-process";

const clients = 200;
const durationMs = 60_000;
const baselineMs = 30_000;

const rssBytes = (pid: number) => Number(/VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, "utf8"))![1]) * 1024;

test("200 clients for 60 s: no errors, memory settles", async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-soak-"));
  const server = await startServerProcess(["--store", `sqlite:${path.join(dir, "soak.db")}?synchronous=normal`, "--init"], {
    NODE_OPTIONS: "--max-old-space-size=128",
  });
  const state = new Uint8Array(2048).fill(97);
  const errors: unknown[] = [];
  const counts = { save: 0, load: 0, list: 0 };
  const deadline = Date.now() + durationMs;
  const samples: Array<[number, number]> = [];
  const started = Date.now();
  const sampler = setInterval(() => samples.push([Date.now() - started, rssBytes(server.child.pid!)]), 1000);

  const worker = async (n: number) => {
    const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, deadlineMs: 60_000 });
    const partitionKey = `tenant-${n % 10}`;
    const appId = `app-${n}`;
    try {
      for (let sequenceId = 0; Date.now() < deadline; sequenceId++) {
        await client.save({ partitionKey, appId, sequenceId, position: "step", state, status: "completed" });
        counts.save++;
        const row = await client.load({ partitionKey, appId });
        if (row?.sequenceId !== sequenceId) throw new Error(`${appId} loaded ${row?.sequenceId}, expected ${sequenceId}`);
        counts.load++;
        if (sequenceId % 20 === 0) {
          await client.listAppIds(partitionKey);
          counts.list++;
        }
      }
    } catch (error) {
      errors.push(error);
    } finally {
      await client.close();
    }
  };

  try {
    await Promise.all(Array.from({ length: clients }, (_, n) => worker(n)));
    const rssAfter = rssBytes(server.child.pid!);
    const rssAt = (ms: number) => samples.find(([at]) => at >= ms)?.[1] ?? 0;
    const mib = (bytes: number) => Math.round(bytes / 2 ** 20);
    process.stdout.write(`soak: ${JSON.stringify({ ...counts, rssMiB: { at10s: mib(rssAt(10_000)), at30s: mib(rssAt(baselineMs)), after: mib(rssAfter) } })}\n`);
    expect(errors).toEqual([]);
    expect(counts.save).toBeGreaterThan(clients * 5);
    expect(rssAt(baselineMs)).toBeGreaterThan(0);
    expect(rssAfter).toBeLessThanOrEqual(rssAt(baselineMs) * 1.15);
  } finally {
    clearInterval(sampler);
    await server.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
