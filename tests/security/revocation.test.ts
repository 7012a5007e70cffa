/**
 * Revoking or narrowing a token reaches the streams it already opened: an open Pipeline's next
 * call and a ListAppIds stream's next page are checked against the tokens reloaded on SIGHUP.
 */
import { createHash } from "node:crypto";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { create, fromBinary, toBinary } from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";
import { GrpcStatePersister } from "../../client/src/grpc-persister";
import { rawCodec } from "../../client/src/codec";
import {
  ListAppIdsRequestSchema,
  ListAppIdsResponseSchema,
  PipelineRequestSchema,
  PipelineResponseSchema,
  Status,
  type PipelineRequest,
} from "../../client/src/gen/burr/state/v1/state_persister_pb";
import { rawPipeline } from "../support/raw-grpc";
import { startServerProcess, type ServerProcess } from "../support/server-process";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-revocation-"));
const authFile = path.join(dir, "tokens.json");

type Entry = { name: string; token?: string; sha256?: string; partitions: string[]; access: "read" | "read-write" };
const secret = (name: string) => `${name}-token-${createHash("sha256").update(name).digest("hex").slice(0, 20)}`;
const admin: Entry = { name: "admin", token: secret("admin"), partitions: ["*"], access: "read-write" };
let entries: Entry[] = [
  admin,
  { name: "saver", token: secret("saver"), partitions: ["*"], access: "read-write" },
  { name: "loader", sha256: createHash("sha256").update(secret("loader")).digest("hex"), partitions: ["*"], access: "read" },
  { name: "lister", token: secret("lister"), partitions: ["*"], access: "read" },
  { name: "scoped", token: secret("scoped"), partitions: ["user-*"], access: "read-write" },
];

/** Writes the tokens file and has the server reload it. */
async function reload(change: (current: Entry[]) => Entry[]) {
  entries = change(entries);
  fs.writeFileSync(authFile, JSON.stringify({ tokens: entries }));
  const seen = () => server.logs.filter((line) => line.includes('"event":"tokens_reloaded"')).length;
  const before = seen();
  server.child.kill("SIGHUP");
  for (let i = 0; i < 200 && seen() === before; i++) await new Promise((r) => setTimeout(r, 25));
  expect(seen()).toBeGreaterThan(before);
}
const without = (name: string) => (current: Entry[]) => current.filter((entry) => entry.name !== name);

const bearer = (name: string) => {
  const metadata = new grpc.Metadata();
  metadata.set("authorization", `Bearer ${secret(name)}`);
  return metadata;
};

const encode = (request: Parameters<typeof create<typeof PipelineRequestSchema>>[1]) => toBinary(PipelineRequestSchema, create(PipelineRequestSchema, request));
const decode = (answer: Buffer) => fromBinary(PipelineResponseSchema, answer);
const save = (partitionKey: string, appId: string): PipelineRequest["call"] => ({
  case: "save",
  value: { $typeName: "burr.state.v1.SaveRequest", partitionKey, appId, sequenceId: 0n, position: "p", state: new Uint8Array([1]), status: Status.COMPLETED },
});
const load = (partitionKey: string, appId: string): PipelineRequest["call"] => ({
  case: "load",
  value: { $typeName: "burr.state.v1.LoadRequest", partitionKey, appId },
});

/** A ListAppIds stream read one page at a time. */
function rawListing(partitionKey: string, metadata: grpc.Metadata) {
  const client = new grpc.Client(server.address, grpc.credentials.createInsecure());
  const bytes = (value: Buffer) => value;
  const request = Buffer.from(toBinary(ListAppIdsRequestSchema, create(ListAppIdsRequestSchema, { partitionKey })));
  const stream = client.makeServerStreamRequest("/burr.state.v1.StatePersister/ListAppIds", bytes, bytes, request, metadata, { deadline: Date.now() + 60_000 });
  const pages: string[][] = [];
  let wake = () => {};
  stream.on("data", (page: Buffer) => {
    pages.push(fromBinary(ListAppIdsResponseSchema, page).appIds);
    wake();
  });
  stream.on("error", () => {});
  const status = new Promise<{ code: number; details: string }>((resolve) =>
    stream.on("status", (final: grpc.StatusObject) => {
      client.close();
      wake();
      resolve({ code: final.code, details: final.details });
    }),
  );
  return {
    pages,
    status,
    /** Resolves once the first page is in, and stops reading there. */
    firstPage: () =>
      new Promise<void>((resolve) => {
        wake = () => {
          if (pages.length > 0) {
            stream.pause();
            wake = () => {};
            resolve();
          }
        };
        wake();
      }),
    resume: () => stream.resume(),
  };
}

let server: ServerProcess;
const bigPartition = "user-big";
/** Many pages of long ids: more than the client's and HTTP/2's buffers hold (pages are 1,000 ids). */
const bigCount = 40_000;

beforeAll(async () => {
  fs.writeFileSync(authFile, JSON.stringify({ tokens: entries }));
  server = await startServerProcess(["--store", "sqlite::memory:", "--init", "--auth-file", authFile]);
  const seeder = new GrpcStatePersister({ address: server.address, token: secret("admin"), codec: rawCodec });
  const ids = Array.from({ length: bigCount }, (_, i) => `app-${String(i).padStart(6, "0")}-${"x".repeat(40)}`);
  for (let from = 0; from < ids.length; from += 2000) {
    await Promise.all(
      ids.slice(from, from + 2000).map((appId) => seeder.save({ partitionKey: bigPartition, appId, sequenceId: 0, position: "p", state: new Uint8Array([1]), status: "completed" })),
    );
  }
  await seeder.close();
}, 120_000);
afterAll(async () => {
  await server?.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

const adminLoad = async (partitionKey: string, appId: string) => {
  const client = new GrpcStatePersister({ address: server.address, token: secret("admin"), codec: rawCodec });
  try {
    return await client.load({ partitionKey, appId });
  } finally {
    await client.close();
  }
};

test("a revoked token's open Pipeline: its next Save or Load after the reload ends the stream with UNAUTHENTICATED", async () => {
  const saver = rawPipeline(server.address, bearer("saver"));
  saver.send(encode({ callId: 1n, call: save("p", "before") }));
  expect(decode((await saver.answered(1))[0]!).result.case).toBe("save");
  const loader = rawPipeline(server.address, bearer("loader"));
  loader.send(encode({ callId: 1n, call: load("p", "before") }));
  expect(decode((await loader.answered(1))[0]!).result.case).toBe("load");

  await reload((current) => without("loader")(without("saver")(current)));

  saver.send(encode({ callId: 2n, call: save("p", "after") }));
  loader.send(encode({ callId: 2n, call: load("p", "before") }));
  for (const pipe of [saver, loader]) {
    expect(await pipe.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
    // The call after the reload got no result: at most its refusal.
    for (const answer of pipe.answers.slice(1).map(decode)) expect(answer.result).toMatchObject({ case: "error", value: { code: grpc.status.UNAUTHENTICATED } });
  }
  expect(await adminLoad("p", "after")).toBeNull();
});

test("a revoked token's ListAppIds stream, read page by page, ends with UNAUTHENTICATED at its next page", async () => {
  const listing = rawListing(bigPartition, bearer("lister"));
  await listing.firstPage();
  await reload(without("lister"));
  listing.resume();
  expect(await listing.status).toMatchObject({ code: grpc.status.UNAUTHENTICATED });
  const received = listing.pages.flat().length;
  expect(received).toBeGreaterThan(0);
  expect(received).toBeLessThan(bigCount);
});

test("a token whose partitions were narrowed loses the others on its open streams", async () => {
  const pipe = rawPipeline(server.address, bearer("scoped"));
  pipe.send(encode({ callId: 1n, call: save("user-1", "a") }));
  pipe.send(encode({ callId: 2n, call: save("user-2", "a") }));
  expect((await pipe.answered(2)).map((answer) => decode(answer).result.case)).toEqual(["save", "save"]);
  const listing = rawListing(bigPartition, bearer("scoped"));
  await listing.firstPage();

  await reload((current) => current.map((entry) => (entry.name === "scoped" ? { ...entry, partitions: ["user-1"] } : entry)));

  // On the Pipeline, the partition it lost is refused call by call; the one it kept still works.
  pipe.send(encode({ callId: 3n, call: save("user-2", "b") }));
  pipe.send(encode({ callId: 4n, call: load("user-2", "a") }));
  pipe.send(encode({ callId: 5n, call: save("user-1", "b") }));
  const answers = new Map((await pipe.answered(5)).map(decode).map((answer) => [answer.callId, answer.result]));
  expect(answers.get(3n)).toMatchObject({ case: "error", value: { code: grpc.status.PERMISSION_DENIED } });
  expect(answers.get(4n)).toMatchObject({ case: "error", value: { code: grpc.status.PERMISSION_DENIED } });
  expect(answers.get(5n)).toMatchObject({ case: "save" });
  pipe.end();
  expect(await pipe.status).toMatchObject({ code: grpc.status.OK });
  expect(await adminLoad("user-2", "b")).toBeNull();

  // The listing of a partition it lost ends at its next page.
  listing.resume();
  expect(await listing.status).toMatchObject({ code: grpc.status.PERMISSION_DENIED, details: expect.stringContaining("user-big") });
  expect(listing.pages.flat().length).toBeLessThan(bigCount);
});
