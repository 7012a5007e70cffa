/** Stores for the suites: a temporary SQLite file per suite (the databases add theirs). */
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import type { StoreUnderTest } from "../../../tests/support/subjects";

export function sqliteStore(): StoreUnderTest {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "burr-sqlite-"));
  let fresh = 0;
  return {
    url: `sqlite:${path.join(dir, "suite.db")}`,
    freshUrl: () => `sqlite:${path.join(dir, `fresh-${++fresh}.db`)}`,
    cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}
