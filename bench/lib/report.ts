/** The bench's output: one JSON line per row and markdown tables, with the machine they ran on. */
import { execSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";

export interface Machine {
  nproc: number;
  cpu: string;
  node: string;
  memoryGiB: number;
  date: string;
  commit: string;
}

export function machine(): Machine {
  const cpuModel = /^model name\s*:\s*(.*)$/m.exec(fs.readFileSync("/proc/cpuinfo", "utf8"))?.[1] ?? os.cpus()[0]?.model ?? "unknown";
  let commit = "unknown";
  try {
    commit = execSync("git rev-parse --short HEAD", { stdio: ["ignore", "pipe", "ignore"] }).toString().trim();
  } catch {
    // not a git checkout
  }
  return {
    nproc: Number(execSync("nproc").toString().trim()),
    cpu: cpuModel.trim(),
    node: process.version,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    date: new Date().toISOString(),
    commit,
  };
}

export const machineLine = (m: Machine) =>
  `Machine: ${m.nproc} cores (\`nproc\`), ${m.cpu}, ${m.memoryGiB} GiB, Node ${m.node}; ${m.date.slice(0, 16).replace("T", " ")} UTC, commit ${m.commit}.`;

export function markdownTable(header: string[], rows: string[][], rightAligned: Set<number> = new Set()): string {
  const line = (cells: string[]) => `| ${cells.join(" | ")} |`;
  const rule = header.map((_, i) => (rightAligned.has(i) ? "---:" : "---"));
  return [line(header), line(rule), ...rows.map(line)].join("\n");
}

export const formatRate = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? "—" : Math.round(value).toLocaleString("en-US"));
export const formatMs = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? "—" : value < 10 ? value.toFixed(2) : value.toFixed(1));
export const formatRatio = (value: number | undefined) => (value === undefined || !Number.isFinite(value) ? "—" : value.toFixed(2));
export const formatBytes = (bytes: number) => (bytes >= 1024 * 1024 ? `${bytes / 1024 / 1024} MiB` : bytes >= 1024 ? `${bytes / 1024} KiB` : `${bytes} B`);
export const formatMiB = (bytes: number) => `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
