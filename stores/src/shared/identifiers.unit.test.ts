/** Table, schema and collection names go into statement text: only a strict shape passes. */
import { Code, PersisterError } from "@burr-state/client/protocol";
import { checkIdentifier } from "./identifiers";
import { refusal } from "../../../tests/support/refusal";


describe("checkIdentifier", () => {
  test.each(["burr_state", "public", "_", "_private", "T", "Table2", "a".repeat(48), "_".repeat(48), "x9_Y"])("%j is allowed and returned", (name) => {
    expect(checkIdentifier("table name", name)).toBe(name);
  });

  test.each([
    "",
    "1st",
    "9",
    "a".repeat(49),
    "a-b",
    "a.b",
    "a b",
    "a;drop table x",
    '"quoted"',
    "a$b",
    "tablé",
    "ｔable",
    "abc\n",
    "\nabc",
    "a\u0000",
  ])("%j is refused", (name) => {
    const error = refusal(() => checkIdentifier("schema name", name));
    expect(error.code).toBe(Code.INVALID_ARGUMENT);
    expect(error.message).toBe(
      `schema name ${JSON.stringify(name)} is not allowed: use letters, digits and _ (at most 48, not starting with a digit)`,
    );
  });

  test("the message names what was checked", () => {
    expect(refusal(() => checkIdentifier("collection name", "a.b")).message).toMatch(/^collection name "a\.b" is not allowed/);
  });
});
