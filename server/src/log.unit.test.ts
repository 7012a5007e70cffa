/** Repeated error lines: written once, counted, summarized once per window (on a fake clock). */
import { RepeatSummarizer, type LogFields } from "./log";

beforeEach(() => jest.useFakeTimers({ now: 0 }));
afterEach(() => jest.useRealTimers());

function recorder(windowMs = 1000) {
  const lines: Array<{ level: string; event: string } & LogFields> = [];
  const summarizer = new RepeatSummarizer((level, event, fields = {}) => lines.push({ level, event, ...fields }), windowMs);
  return { lines, summarizer };
}

const failure = { method: "Save", code: "UNAVAILABLE", cause: "connect ECONNREFUSED 127.0.0.1:5432" };

test("the first is written at once; the identical ones after it in the window only counted", () => {
  const { lines, summarizer } = recorder();
  for (let i = 0; i < 500; i++) summarizer.error("call_failed", failure);
  expect(lines).toEqual([{ level: "error", event: "call_failed", ...failure }]);
});

test("when the window ends, one summary line: the same fields, how many more, and the window", () => {
  const { lines, summarizer } = recorder();
  summarizer.error("call_failed", failure);
  jest.advanceTimersByTime(400);
  for (let i = 0; i < 99; i++) summarizer.error("call_failed", failure);
  jest.advanceTimersByTime(599);
  expect(lines).toHaveLength(1);
  jest.advanceTimersByTime(1);
  expect(lines).toEqual([
    { level: "error", event: "call_failed", ...failure },
    { level: "error", event: "call_failed", ...failure, repeated: 99, window_ms: 1000 },
  ]);
});

test("a steady flood: one summary per window, every line counted once", () => {
  const { lines, summarizer } = recorder();
  let sent = 0;
  for (let ms = 0; ms < 5000; ms += 10) {
    summarizer.error("call_failed", failure);
    sent++;
    jest.advanceTimersByTime(10);
  }
  // 1 line written, then a summary at 1 s, 2 s, 3 s, 4 s and 5 s.
  expect(lines.map((line) => line.repeated)).toEqual([undefined, 99, 100, 100, 100, 100]);
  expect(lines.slice(1).every((line) => line.window_ms === 1000)).toBe(true);
  expect(1 + lines.slice(1).reduce((sum, line) => sum + (line.repeated as number), 0)).toBe(sent);
});

test("a window without repeats writes nothing; after it the line is written in full again", () => {
  const { lines, summarizer } = recorder();
  summarizer.error("call_failed", failure);
  jest.advanceTimersByTime(1000);
  expect(lines).toHaveLength(1);
  summarizer.error("call_failed", failure);
  expect(lines).toHaveLength(2);
  expect(lines[1]).toEqual(lines[0]);
  // A flood's last window ends with a summary; the window after it, quiet, ends without one.
  summarizer.error("call_failed", failure);
  jest.advanceTimersByTime(3000);
  expect(lines.map((line) => line.repeated)).toEqual([undefined, undefined, 1]);
});

test("lines that differ in event, method, code or cause are counted apart", () => {
  const { lines, summarizer } = recorder();
  const variants = [
    ["call_failed", failure],
    ["call_failed", { ...failure, method: "Load" }],
    ["call_failed", { ...failure, code: "INTERNAL" }],
    ["call_failed", { ...failure, cause: "disk full" }],
    ["store_unavailable", failure],
  ] as const;
  for (let round = 0; round < 3; round++) for (const [event, fields] of variants) summarizer.error(event, fields);
  expect(lines).toHaveLength(variants.length);
  jest.advanceTimersByTime(1000);
  expect(lines.slice(variants.length).map((line) => [line.event, line.method, line.code, line.cause, line.repeated])).toEqual(
    variants.map(([event, fields]) => [event, fields.method, fields.code, fields.cause, 2]),
  );
});

test("flush writes what is being counted at once, and forgets it", () => {
  const { lines, summarizer } = recorder();
  summarizer.error("call_failed", failure);
  jest.advanceTimersByTime(250);
  summarizer.error("call_failed", failure);
  summarizer.error("call_failed", failure);
  summarizer.flush();
  expect(lines).toEqual([
    { level: "error", event: "call_failed", ...failure },
    { level: "error", event: "call_failed", ...failure, repeated: 2, window_ms: 250 },
  ]);
  jest.advanceTimersByTime(5000);
  expect(lines).toHaveLength(2);
  summarizer.error("call_failed", failure);
  expect(lines).toHaveLength(3);
});

test("memory stays bounded: past 1,000 distinct lines, new ones are written as they come", () => {
  const { lines, summarizer } = recorder();
  for (let i = 0; i < 1500; i++) summarizer.error("call_failed", { ...failure, cause: `cause ${i}` });
  summarizer.error("call_failed", { ...failure, cause: "cause 1200" });
  summarizer.error("call_failed", { ...failure, cause: "cause 5" });
  expect(lines).toHaveLength(1501);
});
