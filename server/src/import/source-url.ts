/**
 * Where the import reads Burr's own persister layouts from: one URL per layout, with Burr's
 * defaults for the table, collection and namespace names.
 *
 *   burr-sqlite:PATH[?table=burr_state]                         SQLitePersister
 *   burr-postgres://USER:PASSWORD@HOST:PORT/DB[?table=burr_state] PostgreSQLPersister
 *   burr-redis://HOST:PORT[/DB][?namespace=NS]                  RedisBasePersister
 *   burr-mongodb://HOST:PORT/DB[?collection=mystates]           MongoDBBasePersister
 */
export type BurrSource =
  | { layout: "sqlite"; path: string; table: string }
  | { layout: "postgres"; connectUrl: string; table: string }
  | { layout: "redis"; connectUrl: string; namespace: string }
  | { layout: "mongodb"; connectUrl: string; database: string; collection: string };

export const sourceUrlForms = [
  "burr-sqlite:PATH[?table=burr_state]",
  "burr-postgres://USER:PASSWORD@HOST:PORT/DB[?table=burr_state]",
  "burr-redis://HOST:PORT[/DB][?namespace=NAMESPACE]",
  "burr-mongodb://HOST:PORT/DB[?collection=mystates]",
];

/** Burr writes table names into its SQL unquoted: a plain identifier, optionally schema-qualified. */
const tableShape = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$/;

export class SourceUrlError extends Error {}

const fail = (message: string): never => {
  throw new SourceUrlError(`${message}; use ${sourceUrlForms.join(" or ")}`);
};

/** The one parameter a layout takes; anything else goes on to the driver unless it is not allowed. */
function takeParam(params: URLSearchParams, name: string, fallback: string): string {
  const values = params.getAll(name);
  if (values.length > 1) fail(`--from names ${name} ${values.length} times`);
  params.delete(name);
  const value = values[0] ?? fallback;
  if (value === "") fail(`--from has an empty ${name}`);
  return value;
}

function checkTable(table: string): string {
  if (!tableShape.test(table)) fail(`table ${JSON.stringify(table)} is not a plain SQL name (letters, digits, _; optionally schema.table)`);
  return table;
}

function parseNetworkUrl(text: string, scheme: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return fail(`--from ${JSON.stringify(scheme + "://...")} is not a valid URL`);
  }
  if (!url.hostname) fail(`--from needs a host after ${scheme}://`);
  return url;
}

/** The driver's URL: the layout's scheme swapped for the driver's, the layout's own parameter removed. */
function driverUrl(url: URL, scheme: string): string {
  const query = url.searchParams.toString();
  const auth = url.username || url.password ? `${url.username}${url.password ? `:${url.password}` : ""}@` : "";
  return `${scheme}://${auth}${url.host}${url.pathname === "/" ? "" : url.pathname}${query ? `?${query}` : ""}`;
}

export function parseSourceUrl(text: string): BurrSource {
  const colon = text.indexOf(":");
  const scheme = colon < 0 ? "" : text.slice(0, colon).toLowerCase();
  switch (scheme) {
    case "burr-sqlite": {
      const rest = text.slice(colon + 1);
      const query = rest.indexOf("?");
      // "burr-sqlite:///abs/path" is accepted too: the two slashes of a URL's empty host are dropped.
      const rawPath = query < 0 ? rest : rest.slice(0, query);
      const path = rawPath.startsWith("//") ? rawPath.slice(2) : rawPath;
      if (path === "") fail("--from needs a file path after burr-sqlite:");
      const params = new URLSearchParams(query < 0 ? "" : rest.slice(query + 1));
      const table = checkTable(takeParam(params, "table", "burr_state"));
      if ([...params.keys()].length > 0) fail(`burr-sqlite takes only ?table=, not ${[...params.keys()].join(", ")}`);
      return { layout: "sqlite", path, table };
    }
    case "burr-postgres":
    case "burr-postgresql": {
      const url = parseNetworkUrl(text, scheme);
      const table = checkTable(takeParam(url.searchParams, "table", "burr_state"));
      return { layout: "postgres", connectUrl: driverUrl(url, "postgres"), table };
    }
    case "burr-redis":
    case "burr-rediss": {
      const url = parseNetworkUrl(text, scheme);
      const namespace = url.searchParams.has("namespace") ? takeParam(url.searchParams, "namespace", "") : "";
      if (!/^(\/\d*)?$/.test(url.pathname)) fail(`burr-redis takes a database number as its path, not ${JSON.stringify(url.pathname)}`);
      if ([...url.searchParams.keys()].length > 0) fail(`burr-redis takes only ?namespace=, not ${[...url.searchParams.keys()].join(", ")}`);
      return { layout: "redis", connectUrl: driverUrl(url, scheme.slice("burr-".length)), namespace };
    }
    case "burr-mongodb":
    case "burr-mongodb+srv": {
      const url = parseNetworkUrl(text, scheme);
      const collection = takeParam(url.searchParams, "collection", "mystates");
      const database = decodeURIComponent(url.pathname.slice(1)) || "mydatabase";
      if (database.includes("/")) fail(`burr-mongodb's path is one database name, not ${JSON.stringify(database)}`);
      return { layout: "mongodb", connectUrl: driverUrl(url, scheme.slice("burr-".length)), database, collection };
    }
    default:
      return fail(`--from ${JSON.stringify(scheme ? `${scheme}:` : text)} is not a Burr persister layout`);
  }
}
