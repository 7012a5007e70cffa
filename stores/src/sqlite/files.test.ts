/**
 * The SQLite files under a running server: deleted, replaced, read-only, immutable. A save is
 * acknowledged only while its files are the ones the server opened and can write; otherwise the
 * store answers UNAVAILABLE saying why, health says NOT_SERVING, and the process survives. When
 * the files go, what the server still has open (every save acknowledged so far) is copied next
 * to the path, so nothing acknowledged is lost.
 */
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import Database from "better-sqlite3";
import { GrpcStatePersister } from "@burr-state/client";
import { Code, PersisterError, rawCodec } from "@burr-state/client/protocol";
import { SqliteSyncBackend } from "./index";
import { ChildExited, parseLine, startServerProcess, type ServerProcess } from "../../../tests/support/server-process";
import { checkHealth, ServingStatus, watchHealth } from "../../../tests/support/health";

const root = process.getuid?.() === 0;
/** Root ignores permission bits: a server that must meet them runs as nobody. */
const nobody = root ? { uid: 65534, gid: 65534 } : {};
const dirs: string[] = [];
const servers: ServerProcess[] = [];
const clients: Array<GrpcStatePersister<Uint8Array>> = [];

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all(servers.map((server) => server.stop("SIGKILL")));
  for (const dir of dirs) {
    if (root) execFileSync("chattr", ["-R", "-i", dir], { stdio: "ignore" });
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function scratch(): { dir: string; file: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-sqlite-files-"));
  dirs.push(dir);
  return { dir, file: path.join(dir, "burr.db") };
}

async function serve(file: string, args: string[] = [], options: { uid?: number; gid?: number } = {}) {
  const server = await startServerProcess(["--store", `sqlite:${file}`, ...args], {}, options);
  servers.push(server);
  const client = new GrpcStatePersister({ address: server.address, codec: rawCodec, retry: { attempts: 1 }, deadlineMs: 10_000 });
  clients.push(client);
  return { server, client };
}

const state = (i: number) => new Uint8Array(Buffer.from(`{"i": ${i}, "pad": "${"x".repeat(i % 300)}"}`));
const alive = (server: ServerProcess) => server.child.exitCode === null && server.child.signalCode === null;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Saves from `writers` loops, each until its first failure (or 20 s); every acknowledged (app, sequence id) and every failure. */
function saveContinuously(client: GrpcStatePersister<Uint8Array>, partitionKey: string, writers: number) {
  const acknowledged: Array<[string, number]> = [];
  const failures: PersisterError[] = [];
  const until = Date.now() + 20_000;
  const done = Promise.all(
    Array.from({ length: writers }, async (_, w) => {
      for (let i = 0; Date.now() < until; i++) {
        try {
          await client.save({ partitionKey, appId: `w${w}`, sequenceId: i, position: "step", state: state(i), status: "completed" });
          acknowledged.push([`w${w}`, i]);
        } catch (error) {
          failures.push(error as PersisterError);
          return;
        }
      }
    }),
  );
  return { acknowledged, failures, done };
}

/** Every acknowledged save is in the SQLite file, byte for byte. */
function expectAllIn(file: string, partitionKey: string, acknowledged: Array<[string, number]>) {
  const store = new SqliteSyncBackend({ path: file });
  try {
    for (const [appId, sequenceId] of acknowledged) {
      const row = store.load({ kind: "step", partitionKey, appId, sequenceId });
      expect(row && Buffer.from(row.state).equals(Buffer.from(state(sequenceId)))).toBe(true);
    }
  } finally {
    store.close();
  }
}

/** A database of another application, moved over the store's file in the "replaced" case. */
function otherDatabase(dir: string): string {
  const other = path.join(dir, "other.db");
  const db = new Database(other);
  db.exec("CREATE TABLE other_app (note TEXT); INSERT INTO other_app VALUES ('not burr')");
  db.close();
  return other;
}

const rm = (...files: string[]) => files.forEach((file) => fs.rmSync(file));

describe("files deleted or replaced while the server saves", () => {
  test.each([
    ["the database, -wal and -shm (rm burr.db*)", (file: string) => rm(file, `${file}-wal`, `${file}-shm`)],
    ["the database file alone", (file: string) => rm(file)],
    ["the -wal file alone", (file: string) => rm(`${file}-wal`)],
    ["the -shm file alone", (file: string) => rm(`${file}-shm`)],
    ["the database replaced by another (mv other.db burr.db)", (file: string) => fs.renameSync(otherDatabase(path.dirname(file)), file)],
  ])("%s: no save is acknowledged after it, health NOT_SERVING, the process survives, and a copy keeps every acknowledged save", async (label, act) => {
    const { dir, file } = scratch();
    const { server, client } = await serve(file, ["--init"]);
    const health = watchHealth(server.address);
    try {
      await health.until(ServingStatus.SERVING, 5000);
      const writers = 20;
      const load = saveContinuously(client, "files", writers);
      while (load.acknowledged.length < 300 && load.failures.length === 0) await sleep(10);
      act(file);
      const atAct = load.acknowledged.length;
      await load.done;

      // Only the batch already committed and checked when the files went (at most one save per writer) may still be acknowledged.
      expect(load.acknowledged.length - atAct).toBeLessThanOrEqual(writers);
      expect(load.failures).toHaveLength(writers);
      for (const failure of load.failures) {
        expect({ code: failure.codeName, message: failure.message }).toEqual({
          code: "UNAVAILABLE",
          message: expect.stringMatching(/was (deleted|replaced by another file) while the database was open: no save is acknowledged from now on.*restart the server/),
        });
      }
      await health.until(ServingStatus.NOT_SERVING, 5000);
      expect(await checkHealth(server.address, "burr.state.v1.StatePersister")).toBe(ServingStatus.NOT_SERVING);
      // Later calls too, reads included: the store is gone until a restart.
      await expect(client.save({ partitionKey: "files", appId: "late", sequenceId: 0, position: "p", state: state(0), status: "completed" })).rejects.toMatchObject({ code: Code.UNAVAILABLE });
      await expect(client.load({ partitionKey: "files", appId: "w0" })).rejects.toMatchObject({ code: Code.UNAVAILABLE, message: expect.stringMatching(/restart the server/) });
      const logged = server.logs.map(parseLine).find((event) => event?.event === "store_unavailable");
      expect(logged?.cause).toMatch(/(deleted|replaced)/);
      expect(alive(server)).toBe(true);

      // The copy, named in the message, holds every acknowledged save.
      const copies = fs.readdirSync(dir).filter((name) => name.startsWith("burr.db.salvaged-"));
      expect(copies).toHaveLength(1);
      const copy = path.join(dir, copies[0]!);
      expect(load.failures[0]!.message).toContain(copy);
      expectAllIn(copy, "files", load.acknowledged);

      health.close();
      expect(await server.stop("SIGTERM")).toBe(0);
      // No -wal or -shm of the lost file is left to be taken for a new database's own.
      expect([`${file}-wal`, `${file}-shm`].filter((f) => fs.existsSync(f))).toEqual([]);
      if (/^the -(wal|shm) file alone/.test(label)) {
        // The database file itself stayed: at close the server moved every commit into it.
        expectAllIn(file, "files", load.acknowledged);
      }
      if (label.includes("replaced")) {
        // The other application's file was left alone.
        const other = new Database(file, { readonly: true });
        expect(other.prepare("SELECT note FROM other_app").all()).toEqual([{ note: "not burr" }]);
        expect(other.prepare("SELECT count(*) AS n FROM sqlite_master WHERE name LIKE 'burr_state%'").get()).toEqual({ n: 0 });
        other.close();
      }

      // As the message says: the copy moved to the path, a restart serves every acknowledged save.
      rm(...[file, `${file}-wal`, `${file}-shm`].filter((f) => fs.existsSync(f)));
      fs.renameSync(copy, file);
      const restarted = await serve(file);
      for (const [appId, sequenceId] of load.acknowledged) {
        const row = await restarted.client.load({ partitionKey: "files", appId, sequenceId });
        expect(row && Buffer.from(row.state).equals(Buffer.from(state(sequenceId)))).toBe(true);
      }
      await restarted.client.save({ partitionKey: "files", appId: "after", sequenceId: 0, position: "p", state: state(0), status: "completed" });
      expect(await checkHealth(restarted.server.address)).toBe(ServingStatus.SERVING);
    } finally {
      health.close();
    }
  });
});

describe("files that cannot be written", () => {
  /** A store file initialized, then handed to `owner`. */
  function initializedStore(owner: { uid?: number; gid?: number }) {
    const { dir, file } = scratch();
    const seed = new SqliteSyncBackend({ path: file });
    seed.initialize();
    seed.save({ partitionKey: "ro", appId: "app", sequenceId: 0, position: "p", state: state(0), status: "completed" });
    seed.close();
    if (owner.uid !== undefined) {
      fs.chownSync(dir, owner.uid, owner.gid!);
      fs.chownSync(file, owner.uid, owner.gid!);
    }
    return { dir, file };
  }

  const startFailure = (file: string, options: { uid?: number; gid?: number }, args: string[] = []) =>
    serve(file, ["--store-start-timeout-ms", "1000", ...args], options).then(
      () => null,
      (error: unknown) => error as ChildExited,
    );

  test("a read-only database file (chmod 444): the server does not start; it exits 1 naming the file and the cause", async () => {
    const { file } = initializedStore(nobody);
    fs.chmodSync(file, 0o444);
    const failure = await startFailure(file, nobody);
    expect(failure).toBeInstanceOf(ChildExited);
    expect(failure!.code).toBe(1);
    expect(failure!.reason).toContain(`${file} cannot be written (EACCES)`);
    expect(failure!.reason).toMatch(/could not be reached within 1000 ms/);
  });

  test("a directory that cannot take new files (a read-only directory, a new database): the server exits 1 naming the directory", async () => {
    const { dir, file } = scratch();
    // r-x for everyone: the server (nobody, when the test runs as root) may enter it, not add files.
    fs.chmodSync(dir, 0o555);
    const failure = await startFailure(file, nobody, ["--init"]);
    expect(failure).toBeInstanceOf(ChildExited);
    expect(failure!.code).toBe(1);
    expect(failure!.reason).toContain(file);
    expect(failure!.reason).toMatch(/unable to open database file/);
    expect(failure!.reason).toContain(`the directory ${dir} cannot take new files: EACCES`);
  });

  const immutable = (file: string, on: boolean) => execFileSync("chattr", [on ? "+i" : "-i", file]);

  (root ? test : test.skip)("an immutable database file (chattr +i, even root cannot write it): the server does not start, saying why", async () => {
    const { file } = initializedStore({});
    immutable(file, true);
    try {
      const failure = await startFailure(file, {});
      expect(failure).toBeInstanceOf(ChildExited);
      expect(failure!.reason).toContain(`${file} cannot be written (EPERM)`);
    } finally {
      immutable(file, false);
    }
  });

  (root ? test : test.skip)("the database file made immutable at runtime: Save answers UNAVAILABLE saying why (not INTERNAL), health NOT_SERVING, then both recover", async () => {
    const { file } = scratch();
    const { server, client } = await serve(file, ["--init"]);
    const health = watchHealth(server.address);
    try {
      await health.until(ServingStatus.SERVING, 5000);
      immutable(file, true);
      const failure = await client.save({ partitionKey: "ro", appId: "app", sequenceId: 1, position: "p", state: state(1), status: "completed" }).then(
        () => null,
        (error: unknown) => error as PersisterError,
      );
      expect({ code: failure?.codeName, message: failure?.message }).toEqual({
        code: "UNAVAILABLE",
        message: expect.stringContaining(`${file} cannot be written (EPERM)`),
      });
      await health.until(ServingStatus.NOT_SERVING, 5000);
      immutable(file, false);
      await health.until(ServingStatus.SERVING, 5000);
      await client.save({ partitionKey: "ro", appId: "app", sequenceId: 1, position: "p", state: state(1), status: "completed" });
      expect((await client.load({ partitionKey: "ro", appId: "app" }))?.sequenceId).toBe(1);
      expect(alive(server)).toBe(true);
    } finally {
      health.close();
      if (fs.existsSync(file)) immutable(file, false);
    }
  });

  (root ? test : test.skip)("the -shm file made immutable: no crash (no SIGBUS), calls answer UNAVAILABLE saying why, health NOT_SERVING, then both recover", async () => {
    // Made immutable between calls: every call checks the file before SQLite touches its mapping.
    // (Under load a call already past its check may still write to the mapping: SIGBUS, see the README.)
    const { file } = scratch();
    const { server, client } = await serve(file, ["--init"]);
    const health = watchHealth(server.address);
    const shm = `${file}-shm`;
    const save = (i: number) => client.save({ partitionKey: "shm", appId: "app", sequenceId: i, position: "p", state: state(i), status: "completed" });
    try {
      await health.until(ServingStatus.SERVING, 5000);
      for (let i = 0; i < 50; i++) await save(i);
      expect((await client.load({ partitionKey: "shm", appId: "app" }))?.sequenceId).toBe(49);
      immutable(shm, true);
      const refusals = [];
      for (let i = 0; i < 20; i++) {
        refusals.push(await save(50).then(() => null, (error: unknown) => error as PersisterError));
        refusals.push(await client.load({ partitionKey: "shm", appId: "app" }).then(() => null, (error: unknown) => error as PersisterError));
      }
      for (const refusal of refusals) {
        expect({ code: refusal?.codeName, message: refusal?.message }).toEqual({
          code: "UNAVAILABLE",
          message: expect.stringContaining(`${shm} cannot be written (EPERM)`),
        });
      }
      await health.until(ServingStatus.NOT_SERVING, 5000);
      await sleep(2500); // a probe or two more
      expect(alive(server)).toBe(true);
      immutable(shm, false);
      await health.until(ServingStatus.SERVING, 5000);
      await save(50);
      expect((await client.load({ partitionKey: "shm", appId: "app" }))?.sequenceId).toBe(50);
      expect(alive(server)).toBe(true);
    } finally {
      health.close();
      if (fs.existsSync(shm)) immutable(shm, false);
    }
  });
});
