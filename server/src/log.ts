/** One JSON object per line on stderr: easy to read, easy to ship. Never state bytes or tokens. */
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(event: string, fields?: LogFields): void;
  error(event: string, fields?: LogFields): void;
}

const write = (level: string, event: string, fields: LogFields = {}) =>
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), level, event, ...fields })}\n`);

export const jsonLogger: Logger = {
  info: (event, fields) => write("info", event, fields),
  error: (event, fields) => write("error", event, fields),
};

export const silentLogger: Logger = { info: () => {}, error: () => {} };
