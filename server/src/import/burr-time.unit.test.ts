import { parseBurrTime } from "./burr-time";

describe("parseBurrTime", () => {
  it.each([
    ["2024-03-01 12:34:56", "2024-03-01T12:34:56.000Z"],
    ["2024-03-01T12:34:56.123456+00:00", "2024-03-01T12:34:56.123Z"],
    ["2024-03-01T12:34:56+00:00", "2024-03-01T12:34:56.000Z"],
    ["2024-03-01T14:34:56.5+02:00", "2024-03-01T12:34:56.500Z"],
    ["2024-03-01T12:34:56.999999Z", "2024-03-01T12:34:56.999Z"],
  ])("reads %s", (text, iso) => {
    expect(parseBurrTime(text)?.toISOString()).toBe(iso);
  });

  it("takes Dates and nothing", () => {
    const when = new Date(1_700_000_000_123);
    expect(parseBurrTime(when)).toBe(when);
    expect(parseBurrTime(null)).toBeNull();
  });

  it.each(["yesterday", "2024-13-01 00:00:00", "", 17])("refuses %p", (value) => {
    expect(() => parseBurrTime(value)).toThrow(/is not a time Burr writes/);
  });
});
