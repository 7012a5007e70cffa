/** Opens the reader of a Burr layout; each driver is loaded only when its layout is read. */
import type { BurrSource } from "../source-url";
import type { BurrReader } from "./step";

export type { BurrReader, BurrStep } from "./step";

export async function openReader(source: BurrSource, partition: string | null): Promise<BurrReader> {
  switch (source.layout) {
    case "sqlite":
      return (require("./sqlite") as typeof import("./sqlite")).openSqliteReader(source.path, source.table, partition);
    case "postgres":
      return (require("./postgres") as typeof import("./postgres")).openPostgresReader(source.connectUrl, source.table, partition);
    case "redis":
      return (require("./redis") as typeof import("./redis")).openRedisReader(source.connectUrl, source.namespace, partition);
    case "mongodb":
      return (require("./mongodb") as typeof import("./mongodb")).openMongoReader(source.connectUrl, source.database, source.collection, partition);
  }
}
