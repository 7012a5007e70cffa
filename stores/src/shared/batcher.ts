/**
 * Calls that arrive while earlier ones are running are sent to the database together: one round
 * trip (and, for writes, one commit) for many concurrent calls, each still answered on its own.
 * At most `maxInFlight` batches run at once; what arrives meanwhile waits and forms the next one,
 * so batches grow with the load instead of every call paying a statement alone.
 */
export interface BatcherOptions<T, R> {
  maxInFlight: number;
  /** How many of the `queued` items (at least 1) the next batch takes; `at(i)` is the i-th in arrival order. */
  take(queued: number, at: (index: number) => T): number;
  /** One outcome per item, in order: its result, or the Error it fails with. */
  run(items: T[]): Promise<Array<R | Error>>;
}

interface Queued<T, R> {
  item: T;
  resolve(result: R): void;
  reject(error: unknown): void;
}

export class Batcher<T, R> {
  private readonly queue: Queued<T, R>[] = [];
  private readonly running = new Set<Promise<void>>();
  private scheduled = false;

  constructor(private readonly options: BatcherOptions<T, R>) {}

  add(item: T): Promise<R> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      // Calls arriving in the same turn of the event loop join one batch.
      if (this.scheduled) return;
      this.scheduled = true;
      setImmediate(() => {
        this.scheduled = false;
        this.flush();
      });
    });
  }

  /** Resolves once nothing is queued or running. */
  async idle(): Promise<void> {
    while (this.queue.length > 0 || this.running.size > 0) {
      await (this.running.size > 0 ? Promise.allSettled(this.running) : new Promise((resolve) => setImmediate(resolve)));
    }
  }

  private flush(): void {
    while (this.queue.length > 0 && this.running.size < this.options.maxInFlight) {
      const count = Math.max(1, this.options.take(this.queue.length, (index) => this.queue[index]!.item));
      const batch = this.queue.splice(0, count);
      const done = this.settle(batch).finally(() => {
        this.running.delete(done);
        this.flush();
      });
      this.running.add(done);
    }
  }

  private async settle(batch: Queued<T, R>[]): Promise<void> {
    let outcomes: Array<R | Error>;
    try {
      outcomes = await this.options.run(batch.map((queued) => queued.item));
    } catch (error) {
      for (const queued of batch) queued.reject(error);
      return;
    }
    batch.forEach((queued, i) => {
      const outcome = outcomes[i]!;
      if (outcome instanceof Error) queued.reject(outcome);
      else queued.resolve(outcome);
    });
  }
}
