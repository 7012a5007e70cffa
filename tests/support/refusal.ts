/** The PersisterError a synchronous call throws (failing the test when it throws none, or something else). */
import { PersisterError } from "../../client/src/errors";

export function refusal(work: () => unknown): PersisterError {
  try {
    work();
  } catch (error) {
    expect(error).toBeInstanceOf(PersisterError);
    return error as PersisterError;
  }
  throw new Error("expected a PersisterError");
}
