/** Placeholder until the mongo backend lands: refuses clearly instead of failing to import. */
import type { Backend } from "../../../core/backend";
import { Code, PersisterError } from "../../../core/errors";

export async function openMongo(_url: string): Promise<Backend> {
  throw new PersisterError(Code.UNIMPLEMENTED, "the mongo backend is not built yet");
}
