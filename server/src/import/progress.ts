/** The progress line (redrawn on a terminal) and the summary line of the import. */
import type { CopyCounts } from "./copy";

const width = 30;

export function progressLine(done: number, total: number, elapsedMs: number): string {
  const share = total > 0 ? Math.min(1, done / total) : 1;
  const filled = Math.round(share * width);
  const rate = elapsedMs > 0 ? Math.round((done * 1000) / elapsedMs) : 0;
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done.toLocaleString("en-US")}/${total.toLocaleString("en-US")} steps (${Math.floor(share * 100)}%), ${rate.toLocaleString("en-US")}/s`;
}

export function summaryLine(counts: CopyCounts, elapsedMs: number): string {
  return `read ${counts.read}, written ${counts.written}, already present ${counts.alreadyPresent}, failed ${counts.failed}, elapsed ${(elapsedMs / 1000).toFixed(1)} s`;
}

/** Redraws at most every `everyMs` on a terminal (carriage return, no newline); silent elsewhere. */
export class ProgressBar {
  private lastDraw = 0;
  private drawn = false;

  constructor(
    private readonly out: NodeJS.WriteStream,
    private readonly total: number,
    private readonly startedAt: number,
    private readonly everyMs = 100,
  ) {}

  update(done: number, now = Date.now()): void {
    if (!this.out.isTTY || (now - this.lastDraw < this.everyMs && done < this.total)) return;
    this.lastDraw = now;
    this.drawn = true;
    this.out.write(`\r${progressLine(done, this.total, now - this.startedAt)}\x1b[K`);
  }

  /** Ends the bar's line so that what follows starts on its own. */
  finish(): void {
    if (this.drawn) this.out.write("\n");
    this.drawn = false;
  }
}
