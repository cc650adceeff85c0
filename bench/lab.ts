// `npm run lab`: the Anyprefer comparison on the offline model lab. Four pipeline runs on the same
// GSM8K sample and seed, differing only in mode; every figure is computed from each run's outputs
// against the GSM8K gold answers. `--json` prints the rows as JSON.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { runLocal } from '../local/runtime';

const { values } = parseArgs({
  options: {
    json: { type: 'boolean', default: false },
    file: { type: 'string', default: new URL('../examples/gsm8k-sample.jsonl', import.meta.url).pathname },
    seed: { type: 'string', default: '7' },
  },
});

export const LAB_MODES = [
  { mode: 'self-rewarding', label: 'self-rewarding (target judges itself, no tools)', config: { mode: 'self-rewarding' } },
  { mode: 'judge-no-tools', label: 'separate judge, no tools', config: { mode: 'judge-only', tools: { enabled: [] } } },
  { mode: 'judge-tools', label: 'separate judge with tools', config: { mode: 'judge-only' } },
  { mode: 'anyprefer', label: 'tools + reward model + feedback', config: { mode: 'anyprefer' } },
] as const;

export interface LabRow {
  mode: string;
  labelAccuracy: number;
  acceptanceRate: number;
  callsPerPair: number | null;
  tokensPerPair: number | null;
}

const finalNumber = (text: string) => Number([...text.replace(/,/g, '').matchAll(/-?\d+(?:\.\d+)?/g)].at(-1)?.[0]);

async function main() {
  const lines = (await readFile(values.file!, 'utf8')).trim().split('\n');
  const gold = new Map(lines.map((l, i) => [i + 1, Number(String(JSON.parse(l).answer).split('####').at(-1)!.replace(/,/g, ''))]));
  const dir = await mkdtemp(join(tmpdir(), 'anyprefer-lab-'));
  const rows: LabRow[] = [];
  try {
    for (const m of LAB_MODES) {
      const config = { ...m.config, seed: Number(values.seed), candidatesPerPrompt: 4 };
      // Same run id in every mode, so candidate order and sampling seeds are the same.
      const result = await runLocal(values.file!, { config, runId: 'lab-comparison', outDir: join(dir, m.mode) });
      if (result.manifest.status !== 'complete') throw new Error(`${m.mode}: run failed: ${result.manifest.error}`);
      const full = (await readFile(join(result.outDir, 'pairs.full.jsonl'), 'utf8'))
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { line: number; chosen: string; rejected: string });
      const right = full.filter((p) => finalNumber(p.chosen) === gold.get(p.line) && finalNumber(p.rejected) !== gold.get(p.line)).length;
      const { counts, usage } = result.manifest;
      rows.push({
        mode: m.mode,
        labelAccuracy: full.length ? round(right / full.length) : 0,
        acceptanceRate: round(counts.accepted / counts.lines),
        callsPerPair: usage.perAcceptedPair.calls,
        tokensPerPair: usage.perAcceptedPair.tokens === null ? null : Math.round(usage.perAcceptedPair.tokens),
      });
      if (!values.json) process.stderr.write(`  ran ${m.mode}: ${counts.accepted}/${counts.lines} accepted\n`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  if (values.json) {
    console.log(JSON.stringify(rows));
    return;
  }
  console.log(`\nSIMULATION: offline model lab, ${lines.length} GSM8K problems, seed ${values.seed}. Label accuracy = accepted pairs whose chosen answer is right and rejected answer wrong (gold answers).\n`);
  const header = ['mode', 'label accuracy', 'acceptance', 'calls/pair', 'tokens/pair'];
  const table = rows.map((r, i) => [LAB_MODES[i]!.label, pct(r.labelAccuracy), pct(r.acceptanceRate), String(r.callsPerPair ?? 'n/a'), String(r.tokensPerPair ?? 'n/a')]);
  const widths = header.map((h, c) => Math.max(h.length, ...table.map((row) => row[c]!.length)));
  const fmt = (row: string[]) => `| ${row.map((cell, c) => cell.padEnd(widths[c]!)).join(' | ')} |`;
  console.log([fmt(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...table.map(fmt)].join('\n'));
}

const round = (x: number) => Math.round(x * 1000) / 1000;
const pct = (x: number) => `${(x * 100).toFixed(1)}%`;

await main();
