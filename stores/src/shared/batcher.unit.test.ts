/** The batcher: calls of one event-loop turn share a batch, at most maxInFlight batches run, each call gets its own outcome. */
import { Batcher, type BatcherOptions } from "./batcher";

const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));

interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}
function deferred<T>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => ((resolve = res), (reject = rej)));
  return { promise, resolve, reject };
}

/** A batcher whose batches are recorded and answered with item * 10 unless `answer` says otherwise. */
function recording(options: Partial<BatcherOptions<number, number>> = {}) {
  const batches: number[][] = [];
  const batcher = new Batcher<number, number>({
    maxInFlight: 100,
    take: (queued) => queued,
    run: async (items) => {
      batches.push([...items]);
      return items.map((item) => item * 10);
    },
    ...options,
  });
  return { batcher, batches };
}

/** A batcher whose batches wait until the test answers them; counts how many run at once. */
function gated(maxInFlight: number, take: (queued: number) => number = (queued) => queued) {
  const batches: Array<{ items: number[]; gate: Deferred<Array<number | Error>> }> = [];
  let running = 0;
  let mostAtOnce = 0;
  const batcher = new Batcher<number, number>({
    maxInFlight,
    take,
    run: async (items) => {
      running++;
      mostAtOnce = Math.max(mostAtOnce, running);
      const gate = deferred<Array<number | Error>>();
      batches.push({ items: [...items], gate });
      try {
        return await gate.promise;
      } finally {
        running--;
      }
    },
  });
  return { batcher, batches, mostAtOnce: () => mostAtOnce, running: () => running };
}

const answer = (batch: { items: number[]; gate: Deferred<Array<number | Error>> }) => batch.gate.resolve(batch.items.map((i) => i * 10));

describe("Batcher", () => {
  test("calls made in the same turn form one batch; each gets its own result", async () => {
    const { batcher, batches } = recording();
    const results = await Promise.all([batcher.add(1), batcher.add(2), batcher.add(3)]);
    expect(results).toEqual([10, 20, 30]);
    expect(batches).toEqual([[1, 2, 3]]);
  });

  test("nothing runs before the turn ends", async () => {
    const { batcher, batches } = recording();
    const result = batcher.add(1);
    await Promise.resolve();
    expect(batches).toEqual([]);
    await expect(result).resolves.toBe(10);
  });

  test("calls of separate turns, with room to run, form separate batches", async () => {
    const { batcher, batches } = recording();
    const first = batcher.add(1);
    await nextTurn();
    const second = batcher.add(2);
    await expect(Promise.all([first, second])).resolves.toEqual([10, 20]);
    expect(batches).toEqual([[1], [2]]);
  });

  test("take decides each batch's size, seeing the queued items in arrival order", async () => {
    const seen: number[][] = [];
    const { batcher, batches } = recording({
      take: (queued, at) => {
        seen.push(Array.from({ length: queued }, (_, i) => at(i)));
        return Math.min(queued, 2);
      },
    });
    const results = await Promise.all([1, 2, 3, 4, 5].map((item) => batcher.add(item)));
    expect(results).toEqual([10, 20, 30, 40, 50]);
    expect(batches).toEqual([[1, 2], [3, 4], [5]]);
    expect(seen).toEqual([[1, 2, 3, 4, 5], [3, 4, 5], [5]]);
  });

  test.each([0, -3])("take returning %i still takes one item", async (count) => {
    const { batcher, batches } = recording({ take: () => count });
    await Promise.all([batcher.add(1), batcher.add(2)]);
    expect(batches).toEqual([[1], [2]]);
  });

  test("at most maxInFlight batches run; what arrives meanwhile waits and forms the next batch", async () => {
    const { batcher, batches, mostAtOnce } = gated(1);
    const a = batcher.add(1);
    await nextTurn();
    expect(batches.map((b) => b.items)).toEqual([[1]]);
    const rest = [batcher.add(2), batcher.add(3)];
    await nextTurn();
    const d = batcher.add(4);
    await nextTurn();
    // Still one batch: 2, 3 and 4 wait for it.
    expect(batches.map((b) => b.items)).toEqual([[1]]);
    answer(batches[0]!);
    await expect(a).resolves.toBe(10);
    await nextTurn();
    expect(batches.map((b) => b.items)).toEqual([[1], [2, 3, 4]]);
    answer(batches[1]!);
    await expect(Promise.all([...rest, d])).resolves.toEqual([20, 30, 40]);
    expect(mostAtOnce()).toBe(1);
  });

  test("with maxInFlight 2 and single-item batches, two run at once and never three", async () => {
    const { batcher, batches, mostAtOnce, running } = gated(2, () => 1);
    const results = [1, 2, 3, 4, 5].map((item) => batcher.add(item));
    await nextTurn();
    expect(batches.map((b) => b.items)).toEqual([[1], [2]]);
    expect(running()).toBe(2);
    for (let answered = 0; answered < 5; answered++) {
      answer(batches[answered]!);
      await results[answered];
      await nextTurn();
    }
    await expect(Promise.all(results)).resolves.toEqual([10, 20, 30, 40, 50]);
    expect(batches.map((b) => b.items)).toEqual([[1], [2], [3], [4], [5]]);
    expect(mostAtOnce()).toBe(2);
  });

  test("an Error outcome fails only its own call", async () => {
    const failure = new Error("duplicate");
    const { batcher } = recording({ run: async (items) => items.map((item) => (item === 2 ? failure : item * 10)) });
    const results = await Promise.allSettled([batcher.add(1), batcher.add(2), batcher.add(3)]);
    expect(results).toEqual([
      { status: "fulfilled", value: 10 },
      { status: "rejected", reason: failure },
      { status: "fulfilled", value: 30 },
    ]);
  });

  test("a batch that fails as a whole fails each of its calls with that error; later batches still run", async () => {
    const failure = new Error("connection lost");
    let calls = 0;
    const batcher = new Batcher<number, number>({
      maxInFlight: 1,
      take: (queued) => queued,
      run: async (items) => {
        if (calls++ === 0) throw failure;
        return items.map((item) => item * 10);
      },
    });
    const results = await Promise.allSettled([batcher.add(1), batcher.add(2)]);
    expect(results).toEqual([
      { status: "rejected", reason: failure },
      { status: "rejected", reason: failure },
    ]);
    await expect(batcher.add(3)).resolves.toBe(30);
  });

  test("run throwing synchronously fails the batch the same way", async () => {
    const failure = new TypeError("bad statement");
    const batcher = new Batcher<number, number>({
      maxInFlight: 1,
      take: (queued) => queued,
      run: () => {
        throw failure;
      },
    });
    await expect(Promise.allSettled([batcher.add(1), batcher.add(2)])).resolves.toEqual([
      { status: "rejected", reason: failure },
      { status: "rejected", reason: failure },
    ]);
  });

  describe("idle", () => {
    test("resolves at once when nothing was added", async () => {
      const { batcher } = recording();
      await expect(batcher.idle()).resolves.toBeUndefined();
    });

    test("waits for queued and running batches, including those formed while waiting", async () => {
      const { batcher, batches } = gated(1, () => 1);
      const results = [batcher.add(1), batcher.add(2), batcher.add(3)];
      let idle = false;
      const done = batcher.idle().then(() => (idle = true));
      await nextTurn();
      expect(idle).toBe(false);
      for (let i = 0; i < 3; i++) {
        expect(idle).toBe(false);
        answer(batches[i]!);
        await results[i];
        await nextTurn();
      }
      await done;
      expect(idle).toBe(true);
      expect(batches).toHaveLength(3);
    });

    test("a failed batch does not make idle reject", async () => {
      const batcher = new Batcher<number, number>({
        maxInFlight: 1,
        take: (queued) => queued,
        run: async () => {
          throw new Error("down");
        },
      });
      const result = batcher.add(1).catch((error: Error) => error.message);
      await expect(batcher.idle()).resolves.toBeUndefined();
      await expect(result).resolves.toBe("down");
    });
  });
});
