import { progressLine, summaryLine } from "./progress";

describe("progress and summary lines", () => {
  it("draws the share done and the rate", () => {
    expect(progressLine(1500, 6000, 2000)).toBe("[########......................] 1,500/6,000 steps (25%), 750/s");
    expect(progressLine(0, 0, 0)).toBe("[##############################] 0/0 steps (100%), 0/s");
  });

  it("sums up every count", () => {
    expect(summaryLine({ read: 10, written: 7, alreadyPresent: 2, failed: 1 }, 1234)).toBe("read 10, written 7, already present 2, failed 1, elapsed 1.2 s");
  });
});
