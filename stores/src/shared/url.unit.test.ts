/** Store URLs as logs and errors show them: no password, no secret parameter. */
import { redactUrl } from "./url";

describe("redactUrl", () => {
  test.each([
    ["postgres://burr:s3cret@db.internal:5432/burr", "postgres://burr:***@db.internal:5432/burr"],
    ["postgresql://burr:s3cret@db/burr", "postgresql://burr:***@db/burr"],
    ["redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"],
    ["rediss://default:s3cret@cache.example.com:6380", "rediss://default:***@cache.example.com:6380"],
    ["mongodb://app:s3cret@h1:27017,h2:27017/states?replicaSet=rs0", "mongodb://app:***@h1:27017,h2:27017/states?replicaSet=rs0"],
    ["mongodb+srv://app:p%40ss@cluster0.example.net/db?retryWrites=true", "mongodb+srv://app:***@cluster0.example.net/db?retryWrites=true"],
  ])("the password of %s is masked", (url, shown) => {
    expect(redactUrl(url)).toBe(shown);
    expect(redactUrl(url)).not.toMatch(/s3cret|p%40ss/);
  });

  test.each([
    ["a slash", "postgres://user:pa/ss@host:5432/db"],
    ["an @", "postgres://user:p@ss@host:5432/db"],
    ["a colon", "postgres://user:pa:ss@host:5432/db"],
    ["a #", "postgres://user:pa#ss@host:5432/db"],
  ])("a password holding %s (not valid URL syntax) is masked whole", (_, url) => {
    expect(redactUrl(url)).toBe("postgres://user:***@host:5432/db");
  });

  test("a user name alone is not a secret and stays", () => {
    expect(redactUrl("postgres://user@host/db")).toBe("postgres://user@host/db");
  });

  test.each(["password", "PASSWORD", "pass", "passwd", "secret", "token", "Token", "sslpassword", "sslkey", "authMechanismProperties"])(
    "the query parameter %s is masked; the others are kept",
    (name) => {
      const shown = redactUrl(`postgres://host/db?sslmode=require&${name}=hunter2&application_name=burr`);
      expect(shown).toBe(`postgres://host/db?sslmode=require&${name}=***&application_name=burr`);
    },
  );

  test("a password in the userinfo and in the query: both masked", () => {
    expect(redactUrl("postgres://u:one@h/db?password=two")).toBe("postgres://u:***@h/db?password=***");
  });

  test("an @ inside the query is not taken for userinfo", () => {
    expect(redactUrl("mongodb://h/db?appName=me@work&token=t")).toBe("mongodb://h/db?appName=me@work&token=***");
  });

  test.each([
    "postgres://db.internal:5432/burr",
    "postgresql://localhost/burr?sslmode=require",
    "redis://127.0.0.1:6379",
    "rediss://cache:6380/2?prefix=burr",
    "mongodb://h1:1,h2:2/states?replicaSet=rs0&collection=my_states",
    "mongodb+srv://cluster0.example.net/db",
  ])("%s has no credentials and is unchanged", (url) => {
    expect(redactUrl(url)).toBe(url);
  });

  test.each(["sqlite:./burr_state.db", "sqlite::memory:", "sqlite:/var/lib/burr/state.db", "sqlite:///var/lib/burr/state.db", "sqlite://./x.db"])(
    "%s is unchanged",
    (url) => {
      expect(redactUrl(url)).toBe(url);
    },
  );

  test("a URL without // keeps its path but not its query", () => {
    const shown = redactUrl("sqlite:./x.db?password=hunter2");
    expect(shown.startsWith("sqlite:./x.db?")).toBe(true);
    expect(shown).not.toContain("hunter2");
  });

  test("plain text without a scheme is unchanged", () => {
    expect(redactUrl("not a url")).toBe("not a url");
    expect(redactUrl("")).toBe("");
  });
});

describe("redactUrl on malformed URLs (found by review: passwords leaked into start_failed)", () => {
  test.each([
    ["postgres//user:secret@host/db", "postgres//user:***@host/db"],
    ["postgress:/user:secret@host/db", "postgress:/user:***@host/db"],
    ["postgres://user:pa?ss@host/db", "postgres://user:***@host/db"],
    ["postgres://user:pa/ss@host/db?password=x&x=1&x=2", "postgres://user:***@host/db?password=***&x=1&x=2"],
  ])("%s -> %s", (input, output) => {
    expect(redactUrl(input)).toBe(output);
    expect(redactUrl(input)).not.toMatch(/secret|pa\?ss|pa\/ss/);
  });
});
