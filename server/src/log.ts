/** One JSON object per line on stderr: easy to read, easy to ship. Never state bytes or tokens. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

type Write = (level: string, event: string, fields?: LogFields) => void;

const write: Write = (level, event, fields = {}) =>
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);

/** How long identical error lines are counted before their summary is written. */
export const repeatWindowMs = 10_000;
/** Distinct error lines counted at once at most; past it, new ones are written as they come. */
const maxTracked = 1000;

/**
 * Error lines that repeat (the same event with the same fields: method, code, cause, ...) are
 * written once, then counted: when the window ends, one summary line carries the same fields
 * plus `repeated` (how many more there were) and `window_ms`, and the next window starts. A
 * window in which the line did not come back ends it: the next one is written in full again.
 * A store that fails every call thus costs a line per window, not a line per call.
 */
export class RepeatSummarizer {
  private readonly windows = new Map<string, { event: string; fields: LogFields; started: number; repeated: number; timer: NodeJS.Timeout }>();

  constructor(
    private readonly write: Write,
    private readonly windowMs = repeatWindowMs,
  ) {}

  error(event: string, fields: LogFields = {}): void {
    const key = JSON.stringify([event, fields]);
    const window = this.windows.get(key);
    if (window) {
      window.repeated++;
      return;
    }
    this.write("error", event, fields);
    if (this.windows.size >= maxTracked) return;
    const timer = setTimeout(() => this.close(key), this.windowMs);
    timer.unref();
    this.windows.set(key, { event, fields, started: Date.now(), repeated: 0, timer });
  }

  /** Writes the summaries of every window still counting, and forgets them (at exit, say). */
  flush(): void {
    for (const key of [...this.windows.keys()]) this.close(key, true);
  }

  private close(key: string, final = false): void {
    const window = this.windows.get(key)!;
    clearTimeout(window.timer);
    this.windows.delete(key);
    if (window.repeated === 0) return;
    this.write("error", window.event, { ...window.fields, repeated: window.repeated, window_ms: Date.now() - window.started });
    if (final) return;
    // Still coming: keep counting in a new window, so a steady flood is a summary per window.
    const timer = setTimeout(() => this.close(key), this.windowMs);
    timer.unref();
    this.windows.set(key, { ...window, started: Date.now(), repeated: 0, timer });
  }
}

const repeats = new RepeatSummarizer(write);
// Whatever is still being counted is written on the way out.
process.once("exit", () => repeats.flush());

export const jsonLogger: Logger = {
  info: (event, fields) => write("info", event, fields),
  error: (event, fields) => repeats.error(event, fields),
};

/** Writes the pending summaries of repeated error lines now (before the last line of a stop). */
export const flushRepeatedLines = (): void => repeats.flush();

export const silentLogger: Logger = { info: () => {}, error: () => {} };
