/**
 * The Redis store URL, parsed without connecting: one Redis (`redis://`, `rediss://`), whose URL
 * goes to ioredis as written, or a Redis Cluster (`redis+cluster://`, `rediss+cluster://`), whose
 * seed nodes and credentials become ioredis Cluster options.
 */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { parseStoreUrl } from "../shared/url";

interface Common {
  /** Namespace of every key; letters, digits, `_`, `-`, `.`. */
  prefix: string;
  /** The URL without credentials or parameters, for error messages. */
  where: string;
  /** `wait_replicas=N`: a save is acknowledged once N replicas have it (Redis WAIT); absent for 0. */
  waitReplicas?: number;
}

export interface SingleRedisOptions extends Common {
  /** The URL ioredis connects to: ours without the parameters this module reads. */
  connectUrl: string;
  cluster?: undefined;
}

export interface ClusterRedisOptions extends Common {
  cluster: {
    /** Seed nodes: ioredis learns the others from them. */
    nodes: Array<{ host: string; port: number }>;
    username?: string;
    password?: string;
    tls: boolean;
  };
}

export type RedisOptions = SingleRedisOptions | ClusterRedisOptions;

const defaultPrefix = "burr";
const defaultPort = 6379;
const prefixShape = /^[A-Za-z0-9_.-]{1,64}$/;
const singleForm = "redis://[user:password@]host:port[/db][?prefix=NAME][&wait_replicas=N]";
const clusterForm = "redis+cluster://[user:password@]host:port[,host:port...][?prefix=NAME][&wait_replicas=N]";

/** `prefix` and `wait_replicas`; anything else ioredis could read as an option, so it is refused. */
function paramsOf(params: URLSearchParams): Pick<Common, "prefix" | "waitReplicas"> {
  const unknown = [...params.keys()].filter((name) => name !== "prefix" && name !== "wait_replicas");
  if (unknown.length > 0) {
    throw new PersisterError(Code.INVALID_ARGUMENT, `redis URL parameter ${JSON.stringify(unknown[0])} is not supported (only "prefix" and "wait_replicas" are)`);
  }
  const replicas = params.get("wait_replicas");
  if (replicas !== null && !/^[0-9]{1,2}$/.test(replicas)) {
    throw new PersisterError(Code.INVALID_ARGUMENT, `redis wait_replicas ${JSON.stringify(replicas)} is not allowed: use a number of replicas, 0-99`);
  }
  const prefix = params.get("prefix") ?? defaultPrefix;
  if (!prefixShape.test(prefix)) {
    // No ':' keeps one namespace from nesting inside another; no glob characters keeps SCAN
    // patterns literal; no braces keeps the cluster's hash tags the store's own.
    throw new PersisterError(Code.INVALID_ARGUMENT, `redis prefix ${JSON.stringify(prefix)} is not allowed: use 1-64 letters, digits, _, - or .`);
  }
  return Number(replicas) > 0 ? { prefix, waitReplicas: Number(replicas) } : { prefix };
}

/** `redis://...`, `rediss://...` (TLS), `redis+cluster://...` or `rediss+cluster://...`. */
export function parseRedisUrl(text: string): RedisOptions {
  if (/^rediss?\+cluster:/i.test(text)) return parseClusterUrl(text);
  const url = parseStoreUrl("redis", text, singleForm);
  const params = paramsOf(url.searchParams);
  url.search = "";
  return { connectUrl: url.href, ...params, where: `${url.protocol}//${url.host}${url.pathname}` };
}

/** host:port, [v6]:port, host (port 6379); null if malformed. */
function parseNode(text: string): { host: string; port: number } | null {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::([0-9]{1,5}))?$/.exec(text);
  if (!match) return null;
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1] ?? match[2]!, port };
}

function parseClusterUrl(text: string): ClusterRedisOptions {
  const invalid = (why: string) => new PersisterError(Code.INVALID_ARGUMENT, `the redis cluster URL ${why}: expected ${clusterForm}`);
  // WHATWG URLs hold one host, so the parts are cut by hand: scheme, userinfo up to the last "@"
  // before the path, the comma-separated nodes, an optional "/" or "/0", the query.
  const match = /^(rediss?)\+cluster:\/\/([^/?#]*)([^?#]*)(?:\?([^#]*))?$/i.exec(text);
  if (!match) throw invalid("is not valid");
  const [, scheme, authority, path, query] = match;
  const at = authority!.lastIndexOf("@");
  const userinfo = at >= 0 ? authority!.slice(0, at) : null;
  const hosts = authority!.slice(at + 1);
  if (path !== "" && path !== "/" && path !== "/0") throw invalid("has a path or database: a cluster has database 0 only");
  const nodes = hosts.split(",").map(parseNode);
  // Not naming the text: it may hold a password.
  if (hosts === "" || nodes.some((node) => node === null)) throw invalid("has a malformed node list");
  const params = paramsOf(new URLSearchParams(query ?? ""));
  const cluster: ClusterRedisOptions["cluster"] = { nodes: nodes as Array<{ host: string; port: number }>, tls: scheme!.toLowerCase() === "rediss" };
  if (userinfo !== null) {
    const colon = userinfo.indexOf(":");
    const decode = (part: string) => {
      try {
        return decodeURIComponent(part);
      } catch {
        throw invalid("has a malformed %-escape in its user name or password");
      }
    };
    const username = decode(colon >= 0 ? userinfo.slice(0, colon) : userinfo);
    if (username !== "") cluster.username = username;
    if (colon >= 0) cluster.password = decode(userinfo.slice(colon + 1));
  }
  return { cluster, ...params, where: `${scheme!.toLowerCase()}+cluster://${hosts}` };
}
