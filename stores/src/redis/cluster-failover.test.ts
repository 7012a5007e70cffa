/**
 * A master of a Redis Cluster killed (SIGKILL) while saves run against every master, with
 * `wait_replicas=1`: every save that was acknowledged is loaded back exactly afterwards, and every
 * save that failed meanwhile failed UNAVAILABLE. The killed node is started again during the load
 * (it rejoins as the replica of the node that took over). The cluster is the test's own (the
 * shared one serves other suites running at the same time), stopped afterwards.
 */
import { Redis } from "ioredis";
import { Code, PersisterError } from "@burr-state/client/protocol";
import { GuardedPersister } from "../guard";
import { openRedis } from "./index";
import { hashTag } from "./keys";
import { startPrivateCluster, uniquePrefix, withPrefix } from "./testing";

/** The slot function ioredis routes by (its own dependency, shipped without types). */
const calculateSlot = require("cluster-key-slot") as (key: string) => number;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls until `done()` holds; fails naming what it waited for after `seconds`, and the latest failure. */
async function until(what: string, seconds: number, done: () => boolean | Promise<boolean>, latest: () => unknown): Promise<void> {
  const deadline = Date.now() + seconds * 1000;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting ${seconds} s for ${what}; latest failure: ${String(latest())}`);
    await sleep(100);
  }
}

/** The port of the master serving a slot, asked of any node that answers. */
async function masterOf(ports: number[], slot: number, except?: number): Promise<number> {
  for (const port of ports.filter((candidate) => candidate !== except)) {
    const node = new Redis({ host: "127.0.0.1", port, lazyConnect: true, connectTimeout: 1000, maxRetriesPerRequest: 0, retryStrategy: () => null });
    try {
      await node.connect();
      const range = (await node.cluster("SLOTS")).find(([first, last]) => first <= slot && slot <= last);
      if (range?.[2]) return range[2][1];
    } catch {
      // Try the next node.
    } finally {
      node.disconnect();
    }
  }
  throw new Error(`no node of ${ports.join(", ")} names the master of slot ${slot}`);
}

const slotOf = (partitionKey: string) => calculateSlot(hashTag(partitionKey).slice(1, -1));

interface Acked {
  partitionKey: string;
  appId: string;
  sequenceId: number;
  state: Buffer;
}

test("a master killed under load: no acknowledged save is lost (wait_replicas=1); failures are UNAVAILABLE", async () => {
  const cluster = await startPrivateCluster();
  const ports = cluster.nodes.map((node) => node.port);
  const url = withPrefix(cluster.url, uniquePrefix("failover"));
  const store = new GuardedPersister(await openRedis(`${url}&wait_replicas=1`));
  const victim = await masterOf(ports, slotOf("failover-0"));
  // Three partitions on the master that dies, three on the others.
  const onVictim: string[] = [];
  const elsewhere: string[] = [];
  for (let i = 0; onVictim.length < 3 || elsewhere.length < 3; i++) {
    const partition = `failover-${i}`;
    const list = (await masterOf(ports, slotOf(partition))) === victim ? onVictim : elsewhere;
    if (list.length < 3) list.push(partition);
  }
  const acked: Acked[] = [];
  const failures: unknown[] = [];
  let victimAcks = 0;
  let victimFailures = 0;
  let stopping = false;
  const worker = async (partitionKey: string) => {
    const appId = "app";
    for (let sequenceId = 0; !stopping; sequenceId++) {
      const state = Buffer.from(`${partitionKey}/${sequenceId}/${"x".repeat(1000)}`);
      try {
        await store.save({ partitionKey, appId, sequenceId, position: "act", status: "completed", state: new Uint8Array(state) });
        acked.push({ partitionKey, appId, sequenceId, state });
        if (onVictim.includes(partitionKey)) victimAcks++;
      } catch (error) {
        failures.push(error);
        if (onVictim.includes(partitionKey)) victimFailures++;
        await sleep(20);
      }
    }
  };
  const latestFailure = () => failures[failures.length - 1];
  let workers: Promise<void[]> | null = null;
  try {
    await store.initialize();
    workers = Promise.all([...onVictim, ...elsewhere].map(worker));
    await until("100 saves on the victim", 30, () => victimAcks >= 100, latestFailure);

    const victimIndex = ports.indexOf(victim);
    await cluster.nodes[victimIndex]!.kill();
    const killedAt = victimAcks;
    await until("a replica taking over the killed master's slots", 60, async () => (await masterOf(ports, slotOf(onVictim[0]!), victim)) !== victim, latestFailure);
    // Until the killed node is back as the new master's replica, WAIT 1 cannot be met there.
    await cluster.restart(victimIndex);
    await until("100 more saves on the victim's partitions", 60, () => victimAcks >= killedAt + 100, latestFailure);
  } catch (error) {
    await cluster.stop();
    throw error;
  } finally {
    stopping = true;
    await workers;
    await store.close();
  }

  expect(victimFailures).toBeGreaterThan(0); // the failover really was under load
  const notUnavailable = failures.filter((error) => !(error instanceof PersisterError && error.code === Code.UNAVAILABLE));
  expect(notUnavailable.map(String)).toEqual([]);
  const reader = new GuardedPersister(await openRedis(url));
  try {
    const lost: string[] = [];
    for (let i = 0; i < acked.length; i += 200) {
      await Promise.all(
        acked.slice(i, i + 200).map(async ({ partitionKey, appId, sequenceId, state }) => {
          const row = await reader.load({ partitionKey, appId, sequenceId });
          if (!row || !Buffer.from(row.state).equals(state)) lost.push(`${partitionKey}/${sequenceId}`);
        }),
      );
    }
    expect({ acked: acked.length, lost }).toEqual({ acked: acked.length, lost: [] });
  } finally {
    await reader.close();
    await cluster.stop();
  }
}, 240_000);
