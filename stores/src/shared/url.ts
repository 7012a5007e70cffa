/** Store URLs in logs and errors: credentials never shown. */
import { Code, PersisterError } from "@burr-state/client/protocol";

/** Query parameters that carry secrets in some drivers' URLs (pg takes ?password=...). */
const secretParams = /^(password|pass|passwd|secret|token|sslpassword|sslkey|authmechanismproperties)$/i;

/**
 * The URL with its password and secret query parameters masked. Works on the text rather than a
 * parsed URL, so that malformed input (a missing colon, a "/" or "?" in a password) is masked
 * too: everything between the scheme and the last "@" is userinfo, whatever it holds.
 */
export function redactUrl(url: string): string {
  let text = url;
  const slashes = text.indexOf("//");
  let queryFrom = slashes >= 0 ? slashes + 2 : 0;
  const lastAt = text.lastIndexOf("@");
  if (lastAt >= 0) {
    const start = slashes >= 0 && slashes < lastAt ? slashes + 2 : text.indexOf(":") + 1;
    const userinfo = text.slice(start, lastAt);
    const colon = userinfo.indexOf(":");
    // A user name alone is no secret; an "@" with no ":" before it belongs to the path or query.
    if (colon >= 0) {
      text = `${text.slice(0, start)}${userinfo.slice(0, colon)}:***${text.slice(lastAt)}`;
      queryFrom = text.lastIndexOf("@") + 1;
    }
  }
  const query = text.indexOf("?", queryFrom);
  if (query < 0) return text;
  const params = text
    .slice(query + 1)
    .split("&")
    .map((pair) => {
      const key = pair.split("=")[0]!;
      return secretParams.test(decodeKey(key)) ? `${key}=***` : pair;
    });
  return `${text.slice(0, query)}?${params.join("&")}`;
}

function decodeKey(key: string): string {
  try {
    return decodeURIComponent(key);
  } catch {
    return key;
  }
}

/**
 * A store URL parsed; text that is no URL is INVALID_ARGUMENT giving the expected form and the
 * text with its password masked. The usual cause is a password holding a character URLs reserve.
 */
export function parseStoreUrl(store: string, text: string, form: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new PersisterError(
      Code.INVALID_ARGUMENT,
      `the ${store} store URL ${JSON.stringify(redactUrl(text))} is not a valid URL: expected ${form} ` +
        `(percent-encode "/", "?", "#", "@" and ":" in a user name or password, e.g. "/" as %2F)`,
    );
  }
}

/** A percent-encoded part of a store URL, decoded; a malformed escape is INVALID_ARGUMENT naming it. */
export function decodeUrlPart(what: string, text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    throw new PersisterError(Code.INVALID_ARGUMENT, `the store URL's ${what} has a malformed %-escape: ${JSON.stringify(redactUrl(text))}`);
  }
}

/** Refuses query parameters a store does not know, so a typo (`?tabel=x`) is not silently ignored. */
export function checkUrlParams(store: string, params: URLSearchParams, known: string[]): void {
  for (const name of params.keys()) {
    if (!known.includes(name)) {
      throw new PersisterError(Code.INVALID_ARGUMENT, `unknown ${store} URL parameter ${JSON.stringify(name)}: use ${known.join(", ")}`);
    }
  }
}
