// `npm run lab -- --json`: the four-mode comparison really runs the pipeline and the judge's
// tools measurably lift label accuracy.
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

it('prints the four modes as JSON, with tools well above the no-tool judge', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'anyprefer-lab-test-'));
  try {
    const sample = join(dir, 'sample.jsonl');
    const lines = (await readFile(new URL('../../examples/gsm8k-sample.jsonl', import.meta.url), 'utf8')).trim().split('\n');
    await writeFile(sample, lines.slice(0, 24).join('\n') + '\n');
    const { stdout } = await promisify(execFile)('npx', ['tsx', 'bench/lab.ts', '--json', '--file', sample, '--seed', '7'], {
      cwd: new URL('../..', import.meta.url).pathname,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      timeout: 170_000,
    });
    const rows = JSON.parse(stdout.trim().split('\n').at(-1)!) as { mode: string; labelAccuracy: number; acceptanceRate: number; callsPerPair: number; tokensPerPair: number }[];
    expect(rows.map((r) => r.mode)).toEqual(['self-rewarding', 'judge-no-tools', 'judge-tools', 'anyprefer']);
    for (const r of rows) {
      expect(Object.keys(r).sort()).toEqual(['acceptanceRate', 'callsPerPair', 'labelAccuracy', 'mode', 'tokensPerPair']);
      expect(r.acceptanceRate).toBeGreaterThan(0);
      expect(r.tokensPerPair).toBeGreaterThan(0);
    }
    const by = Object.fromEntries(rows.map((r) => [r.mode, r]));
    expect(by['judge-tools']!.labelAccuracy).toBeGreaterThan(by['judge-no-tools']!.labelAccuracy + 0.2);
    expect(by['anyprefer']!.labelAccuracy).toBeGreaterThanOrEqual(by['judge-tools']!.labelAccuracy);
    // Feedback and the reward model cost calls: the full method spends more per pair.
    expect(by['anyprefer']!.callsPerPair).toBeGreaterThan(by['judge-tools']!.callsPerPair);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}, 180_000);
