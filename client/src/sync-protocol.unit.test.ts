/** The sync client's handshake between the blocked caller and its worker thread. */
import { MessageChannel, Worker, receiveMessageOnPort } from "node:worker_threads";
import { newSignal, signalPending, signalReplied, stateCell, waitWhilePending } from "./sync-protocol";

/**
 * A stand-in worker that answers the first request before the caller waits, and whose thread
 * pauses between storing "replied" and notifying: the notify lands while the caller waits for
 * its second request. Then it answers the second request properly.
 */
const lateNotifier = `
  const { workerData: { signal, port } } = require("node:worker_threads");
  port.postMessage("first answer");
  Atomics.store(signal, 0, ${signalReplied});
  while (Atomics.load(signal, 0) !== ${signalPending});
  while (Atomics.notify(signal, 0) === 0);
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50);
  port.postMessage("second answer");
  Atomics.store(signal, 0, ${signalReplied});
  Atomics.notify(signal, 0);
`;

test("a notify left over from the previous answer does not end the wait for the next one", async () => {
  const signal = newSignal();
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(lateNotifier, { eval: true, workerData: { signal, port: port2 }, transferList: [port2] });
  try {
    while (Atomics.load(signal, stateCell) === signalPending);
    expect(waitWhilePending(signal, 10_000)).toBe(true);
    expect(receiveMessageOnPort(port1)?.message).toBe("first answer");
    Atomics.compareExchange(signal, stateCell, signalReplied, signalPending);
    expect(waitWhilePending(signal, 10_000)).toBe(true);
    expect(receiveMessageOnPort(port1)?.message).toBe("second answer");
  } finally {
    port1.close();
    await worker.terminate();
  }
});

test("no answer: false once the time is up", () => {
  expect(waitWhilePending(newSignal(), 20)).toBe(false);
});
