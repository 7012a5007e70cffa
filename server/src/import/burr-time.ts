/**
 * Burr's creation times as its layouts keep them: SQLite's CURRENT_TIMESTAMP text
 * ("2024-03-01 12:34:56", UTC), Python's isoformat() in Redis and MongoDB
 * ("2024-03-01T12:34:56.123456+00:00"), or a Date from a driver. Microseconds are cut to
 * milliseconds (a Date's precision, and the stores').
 */
const isoShape = /^(\d{4}-\d{2}-\d{2})[ T](\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$/i;

export function parseBurrTime(value: unknown): Date | null {
  if (value === null || value === undefined) return null;
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? badTime(value) : value;
  if (typeof value !== "string") return badTime(value);
  const match = isoShape.exec(value.trim());
  if (!match) return badTime(value);
  const [, day, time, fraction = "", zone = "Z"] = match;
  // Without a zone it is SQLite's UTC text.
  const date = new Date(`${day}T${time}.${fraction.padEnd(3, "0").slice(0, 3)}${zone.toUpperCase()}`);
  return Number.isNaN(date.getTime()) ? badTime(value) : date;
}

function badTime(value: unknown): never {
  throw new Error(`created_at ${JSON.stringify(String(value))} is not a time Burr writes`);
}
