/**
 * `burr-state-server import --from <Burr layout URL> --store <store URL> [--partition KEY]`:
 * copies every step of Burr's own persister tables into a store of this server. Exit 0 when
 * every step is in the store, 1 when a step failed or the import stopped, 2 for bad arguments.
 */
import { parseArgs } from "node:util";
import * as path from "node:path";
import { GuardedPersister, openBackend, redactUrl, storeUrlForms } from "@burr-state/stores";
import { describeStep } from "./readers/step";
import { openReader } from "./readers";
import { copySteps } from "./copy";
import { ProgressBar, summaryLine } from "./progress";
import { parseSourceUrl, sourceUrlForms, type BurrSource } from "./source-url";

export const importUsage = `Usage: burr-state-server import --from SOURCE --store STORE [--partition KEY]

Copies every step saved by Burr's own persisters into a store of this server, keeping partition,
app id, sequence id, position, status, creation time and write order. Running it again (or after
a crash) writes only the steps not yet in the store.

  --from SOURCE      Burr's layout: ${sourceUrlForms.join("\n                     ")}
  --store STORE      where to write (env BURR_STORE): ${storeUrlForms}
  --partition KEY    only this partition ("" is the default partition)
  --help             this text
`;

export interface ImportArgs {
  source: BurrSource;
  store: string;
  partition: string | null;
}

export class UsageError extends Error {}

export function parseImportArgs(argv: string[], env: NodeJS.ProcessEnv): ImportArgs | "help" {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { from: { type: "string" }, store: { type: "string" }, partition: { type: "string" }, help: { type: "boolean" } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (values.help) return "help";
  if (!values.from) throw new UsageError("import needs --from: where Burr's persister kept the states");
  const store = values.store ?? env.BURR_STORE;
  if (!store) throw new UsageError("import needs --store (or BURR_STORE): the store to write into");
  let source: BurrSource;
  try {
    source = parseSourceUrl(values.from);
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (sameTable(source, store)) {
    throw new UsageError("--from and --store name the same table: give the store another one (?table=...), Burr's table stays as it is");
  }
  return { source, store, partition: values.partition ?? null };
}

/** Both defaults are "burr_state": a store opened on Burr's own table would mistake it for its own. */
export function sameTable(source: BurrSource, store: string): boolean {
  const storeTable = (params: URLSearchParams) => params.get("table") ?? "burr_state";
  if (source.layout === "sqlite" && /^sqlite:/i.test(store)) {
    const rest = store.replace(/^sqlite:(\/\/)?/i, "");
    const at = rest.indexOf("?");
    const file = at < 0 ? rest : rest.slice(0, at);
    return path.resolve(file || "./burr_state.db") === path.resolve(source.path) && storeTable(new URLSearchParams(at < 0 ? "" : rest.slice(at + 1))) === source.table;
  }
  if (source.layout === "postgres" && /^postgres(ql)?:/i.test(store)) {
    try {
      const from = new URL(source.connectUrl);
      const to = new URL(store);
      return from.host === to.host && from.pathname === to.pathname && storeTable(to.searchParams) === source.table.replace(/^public\./, "").toLowerCase();
    } catch {
      return false;
    }
  }
  return false;
}

export async function runImport(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  let args: ImportArgs | "help";
  try {
    args = parseImportArgs(argv, env);
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    process.stderr.write(`import: ${error.message}\n`);
    return 2;
  }
  if (args === "help") {
    process.stdout.write(importUsage);
    return 0;
  }
  const startedAt = Date.now();
  const reader = await openReader(args.source, args.partition);
  let persister: GuardedPersister | undefined;
  let bar: ProgressBar | undefined;
  let failuresShown = 0;
  try {
    persister = new GuardedPersister(await openBackend(args.store));
    await persister.initialize();
    const total = await reader.count();
    process.stderr.write(`import: ${total} steps from Burr's ${args.source.layout} layout into ${redactUrl(args.store)}\n`);
    bar = new ProgressBar(process.stderr, total, startedAt);
    const counts = await copySteps(
      reader.steps(),
      persister,
      (done) => bar!.update(done.read),
      (step, error) => {
        if (++failuresShown > 20) return;
        bar!.finish();
        process.stderr.write(`import: not written: ${describeStep(step.partitionKey, step.appId, step.sequenceId)} position=${JSON.stringify(step.position)}: ${error.message}\n`);
      },
    );
    bar.finish();
    if (failuresShown > 20) process.stderr.write(`import: ${failuresShown - 20} more steps not written\n`);
    process.stdout.write(`${summaryLine(counts, Date.now() - startedAt)}\n`);
    return counts.failed > 0 ? 1 : 0;
  } finally {
    bar?.finish();
    await reader.close();
    await persister?.close();
  }
}
