import { mongoStore } from "../support/mongo-store";
import { postgresStore } from "../support/postgres-store";
import { redisStore } from "../support/redis-store";
import { sqliteStore } from "../support/stores";
import { replicaSuite } from "./suite";

replicaSuite("SQLite", sqliteStore);
replicaSuite("PostgreSQL", () => postgresStore());
replicaSuite("Redis", () => redisStore());
replicaSuite("MongoDB", () => mongoStore());
