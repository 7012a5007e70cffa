import { mongoStore } from "../../stores/src/mongo/testing";
import { postgresStore } from "../../stores/src/postgres/testing";
import { redisStore } from "../../stores/src/redis/testing";
import { sqliteStore } from "../../stores/src/sqlite/testing";
import { replicaSuite } from "./suite";

replicaSuite("SQLite", sqliteStore);
replicaSuite("PostgreSQL", () => postgresStore());
replicaSuite("Redis", () => redisStore());
replicaSuite("MongoDB", () => mongoStore());
