import { Code, PersisterError } from "@burr-state/client/protocol";

/** Table and schema names go into SQL text, so only this strict shape is accepted. */
const identifier = /^[A-Za-z_][A-Za-z0-9_]{0,47}$/;

export function checkIdentifier(what: string, name: string): string {
  if (!identifier.test(name)) {
    throw new PersisterError(
      Code.INVALID_ARGUMENT,
      `${what} ${JSON.stringify(name)} is not allowed: use letters, digits and _ (at most 48, not starting with a digit)`,
    );
  }
  return name;
}
