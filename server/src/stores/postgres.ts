/** Placeholder until the postgres backend lands: refuses clearly instead of failing to import. */
import type { Backend } from "../../../core/backend";
import { Code, PersisterError } from "../../../core/errors";

export async function openPostgres(_url: string): Promise<Backend> {
  throw new PersisterError(Code.UNIMPLEMENTED, "the postgres backend is not built yet");
}
