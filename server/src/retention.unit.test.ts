import { parseDuration, startRetention, sweepQuery } from "./retention";
import type { Logger } from "./log";

describe("parseDuration", () => {
  test.each([
    ["500ms", 500],
    ["90s", 90_000],
    ["15m", 900_000],
    ["12h", 43_200_000],
    ["30d", 2_592_000_000],
    ["2w", 1_209_600_000],
    ["1d12h", 129_600_000],
  ])("%s is %i ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  test.each(["", "30", "d", "1.5h", "-1d", "0s", "30 d", "1y", "12h junk"])("%j is refused, naming the forms", (text) => {
    expect(() => parseDuration(text)).toThrow(/30d, 12h, 15m, 90s, 500ms/);
  });
});

describe("sweepQuery", () => {
  test("keep_last and the age cut, every partition", () => {
    expect(sweepQuery({ keepLast: 5, retainForMs: 1000, everyMs: 1 }, 10_000)).toEqual({ keepLast: 5, olderThan: new Date(9_000) });
    expect(sweepQuery({ keepLast: null, retainForMs: 1000, everyMs: 1 }, 10_000)).toEqual({ keepLast: null, olderThan: new Date(9_000) });
    expect(sweepQuery({ keepLast: 3, retainForMs: null, everyMs: 1 }, 10_000)).toEqual({ keepLast: 3, olderThan: null });
    expect(sweepQuery({ keepLast: 3, retainForMs: null, everyMs: 1 }, 10_000).partitionKey).toBeUndefined();
  });
});

describe("startRetention", () => {
  const logs: string[] = [];
  const log: Logger = { info: (event) => void logs.push(event), error: (event) => void logs.push(event) };

  test("sweeps repeatedly, one at a time, logs each, and stops", async () => {
    let running = 0;
    let most = 0;
    let sweeps = 0;
    const prune = async () => {
      most = Math.max(most, ++running);
      await new Promise((resolve) => setTimeout(resolve, 15));
      running--;
      sweeps++;
      if (sweeps === 2) throw new Error("store unavailable");
      return 7;
    };
    const sweeper = startRetention(prune, { keepLast: 1, retainForMs: null, everyMs: 5 }, log);
    await new Promise((resolve) => setTimeout(resolve, 150));
    await sweeper.stop();
    const after = sweeps;
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(sweeps).toBe(after);
    expect(sweeps).toBeGreaterThanOrEqual(3);
    expect(most).toBe(1);
    expect(logs).toContain("retention_swept");
    expect(logs).toContain("retention_failed");
  });
});
