/** Store URLs in logs and errors: credentials never shown. */

/** Query parameters that carry secrets in some drivers' URLs (pg takes ?password=...). */
const secretParams = /^(password|pass|passwd|secret|token|sslpassword|sslkey|authmechanismproperties)$/i;

/**
 * The URL with its password and secret query parameters masked. Parsed as a URL where possible
 * (so `user:pa/ss@host` is caught whole); anything that does not parse is cut at the scheme.
 */
export function redactUrl(url: string): string {
  const at = url.indexOf("://");
  if (at < 0) return url.split("?")[0]!.length === url.length ? url : `${url.split("?")[0]}?***`;
  // Everything between "//" and the last "@" before the path is userinfo, whatever it holds.
  const afterScheme = url.slice(at + 3);
  const queryAt = afterScheme.indexOf("?");
  const lastAt = afterScheme.lastIndexOf("@", queryAt < 0 ? undefined : queryAt);
  let rest = afterScheme;
  let userinfo = "";
  if (lastAt >= 0) {
    const user = afterScheme.slice(0, lastAt).split(":")[0]!;
    userinfo = `${user}:***@`;
    rest = afterScheme.slice(lastAt + 1);
  }
  const q = rest.indexOf("?");
  if (q >= 0) {
    const params = new URLSearchParams(rest.slice(q + 1));
    const shown = [...params.keys()].map((key) => (secretParams.test(key) ? `${key}=***` : `${key}=${params.get(key)}`));
    rest = `${rest.slice(0, q)}?${shown.join("&")}`;
  }
  return `${url.slice(0, at)}://${userinfo}${rest}`;
}
