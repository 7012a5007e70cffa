/**
 * Summarizes a V8 CPU profile (from `npm run bench -- --profile`): the functions with the most
 * self time, and the files they live in, so a profile can be read without DevTools.
 *
 *   npx tsx bench/profile-top.ts bench/results/profiles/<stamp>/sqlite/CPU.*.cpuprofile [--top 30]
 */
import * as fs from "node:fs";
import * as path from "node:path";
import { parseArgs } from "node:util";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const { values, positionals } = parseArgs({ options: { top: { type: "string" } }, allowPositionals: true });
const top = Number(values.top ?? 30);

for (const file of positionals) {
  const profile = JSON.parse(fs.readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const selfMicros = new Map<number, number>();
  profile.samples.forEach((id, i) => selfMicros.set(id, (selfMicros.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfMicros.values()].reduce((a, b) => a + b, 0);

  const where = (node: ProfileNode) => {
    const url = node.callFrame.url.replace(/^file:\/\//, "");
    const short = url.includes("node_modules/") ? url.slice(url.lastIndexOf("node_modules/") + 13) : path.relative(process.cwd(), url) || url;
    return short ? `${short}:${node.callFrame.lineNumber + 1}` : "(native)";
  };
  const byFunction = new Map<string, number>();
  const byFile = new Map<string, number>();
  for (const [id, micros] of selfMicros) {
    const node = byId.get(id)!;
    const name = `${node.callFrame.functionName || "(anonymous)"}  ${where(node)}`;
    byFunction.set(name, (byFunction.get(name) ?? 0) + micros);
    const fileKey = where(node).replace(/:\d+$/, "").replace(/^(@?[^/]+(?:\/[^/]+)?)\/.*$/, (m, pkg: string) => (m.includes("/") && !m.startsWith("core") && !m.startsWith("server") && !m.startsWith("client") && !m.startsWith("gen") ? pkg : m));
    byFile.set(fileKey, (byFile.get(fileKey) ?? 0) + micros);
  }
  const print = (title: string, entries: Map<string, number>) => {
    console.log(`\n${title}`);
    for (const [name, micros] of [...entries].sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${((100 * micros) / total).toFixed(1).padStart(5)}%  ${(micros / 1000).toFixed(0).padStart(6)} ms  ${name}`);
    }
  };
  console.log(`${file}: ${(total / 1000).toFixed(0)} ms sampled`);
  print("self time by function", byFunction);
  print("self time by package or file", byFile);
}
