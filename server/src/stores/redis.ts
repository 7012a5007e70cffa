/** Placeholder until the redis backend lands: refuses clearly instead of failing to import. */
import type { Backend } from "../../../core/backend";
import { Code, PersisterError } from "../../../core/errors";

export async function openRedis(_url: string): Promise<Backend> {
  throw new PersisterError(Code.UNIMPLEMENTED, "the redis backend is not built yet");
}
