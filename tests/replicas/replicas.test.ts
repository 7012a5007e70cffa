import { mongoStore } from "../../stores/src/mongo/testing";
import { pgbouncerUrl, postgresStore } from "../../stores/src/postgres/testing";
import { redisClusterUrl, redisStore } from "../../stores/src/redis/testing";
import { sqliteStore } from "../../stores/src/sqlite/testing";
import { replicaSuite } from "./suite";

replicaSuite("SQLite", sqliteStore);
replicaSuite("PostgreSQL", () => postgresStore());
replicaSuite("PostgreSQL behind PgBouncer", () => postgresStore(pgbouncerUrl, { pgbouncer: "true" }));
replicaSuite("Redis", () => redisStore());
replicaSuite("Redis Cluster", () => redisStore(redisClusterUrl));
replicaSuite("MongoDB", () => mongoStore());
