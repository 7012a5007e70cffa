/**
 * The list of stores: names, URL schemes, the URL forms shown in --help and the README, and how
 * each is opened. The server, the embedded mode, the benchmark and the docs all read this list.
 * A store's module (and so its driver) is loaded only when a URL of its scheme is opened: a user
 * of one store installs one driver.
 */
import type { Backend } from "./backend";
import { redactUrl } from "./shared/url";

export interface StoreEntry {
  name: string;
  /** URL schemes, lower case, without the colon. */
  schemes: string[];
  /** The npm package of its driver (an optional peer dependency of @burr-state/stores). */
  driver: string;
  /** The URL forms users may write, for --help and the docs. */
  urlForms: string[];
  open(url: string): Promise<Backend>;
}

/** Loads a store module, naming the driver to install when it is missing. */
function storeModule<M>(name: string, driver: string, load: () => M): M {
  try {
    return load();
  } catch (error) {
    const missing = (error as { code?: string }).code === "MODULE_NOT_FOUND" && String((error as Error).message).includes(`'${driver}'`);
    if (missing) throw new Error(`the ${name} store needs its driver: npm install ${driver}`, { cause: error });
    throw error;
  }
}

export const stores: StoreEntry[] = [
  {
    name: "sqlite",
    schemes: ["sqlite"],
    driver: "better-sqlite3",
    urlForms: ["sqlite:PATH", "sqlite::memory:"],
    open: async (url) => storeModule("sqlite", "better-sqlite3", () => require("./sqlite") as typeof import("./sqlite")).openSqlite(url),
  },
  {
    name: "postgres",
    schemes: ["postgres", "postgresql"],
    driver: "pg",
    urlForms: ["postgres://USER:PASSWORD@HOST:PORT/DB"],
    open: (url) => storeModule("postgres", "pg", () => require("./postgres") as typeof import("./postgres")).openPostgres(url),
  },
  {
    name: "redis",
    schemes: ["redis", "rediss", "redis+cluster", "rediss+cluster"],
    driver: "ioredis",
    urlForms: ["redis://HOST:PORT", "rediss://HOST:PORT", "redis+cluster://HOST:PORT,HOST:PORT"],
    open: (url) => storeModule("redis", "ioredis", () => require("./redis") as typeof import("./redis")).openRedis(url),
  },
  {
    name: "mongo",
    schemes: ["mongodb", "mongodb+srv"],
    driver: "mongodb",
    urlForms: ["mongodb://HOST:PORT/DB"],
    open: (url) => storeModule("mongo", "mongodb", () => require("./mongo") as typeof import("./mongo")).openMongo(url),
  },
];

export const defaultStoreUrl = "sqlite:./burr_state.db";

export const storeUrlForms = stores.flatMap((store) => store.urlForms).join(", ");

export function storeFor(url: string): StoreEntry {
  const scheme = url.slice(0, Math.max(0, url.indexOf(":"))).toLowerCase();
  const store = stores.find((candidate) => candidate.schemes.includes(scheme));
  if (!store) throw new Error(`unsupported store URL ${JSON.stringify(redactUrl(url))}: use ${storeUrlForms}`);
  return store;
}

export function openBackend(url: string): Promise<Backend> {
  return storeFor(url).open(url);
}

export { redactUrl };
