// `anyprefer eval` end to end: the labeled GSM8K fixture judged by the offline model lab's judge
// (a simulation) through the real gateway, tools and bias controls.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { evalCommand } from '../../bin/commands/eval';
import type { CommandIo } from '../../bin/commands/options';
import { startLab } from '../../local/lab/server';

const FIXTURE = 'examples/eval-fixture.jsonl';
const CONFIG = 'examples/eval.config.json';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'anyprefer-eval-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const io: CommandIo = { out: (t) => out.push(t), err: (t) => err.push(t) };
  const code = await evalCommand(args, io);
  return { code, out, err };
}

async function runJson(args: string[]) {
  const r = await run([...args, '--json']);
  expect(r.code).toBe(0);
  expect(r.out).toHaveLength(1);
  const result = JSON.parse(r.out[0]!) as Record<string, number>;
  expect(Object.keys(result)).toEqual(['n', 'agreement', 'ciLow', 'ciHigh', 'positionConsistency', 'tokens']);
  return result;
}

interface Row {
  prompt: string;
  reference: string;
  chosen: string;
  rejected: string;
}
const fixture = async () => (await readFile(FIXTURE, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as Row);
const finalNumber = (text: string) => /The answer is (-?\d+)\.$/.exec(text)?.[1];

describe('anyprefer eval on the offline lab', () => {
  it('the fixture is 8 GSM8K pairs, 2 of them labeled wrong', async () => {
    const rows = await fixture();
    const sample = (await readFile('examples/gsm8k-sample.jsonl', 'utf8')).trim().split('\n').slice(0, 8).map((l) => JSON.parse(l));
    expect(rows.map((r) => r.prompt)).toEqual(sample.map((s) => s.question));
    expect(rows.map((r) => r.reference)).toEqual(sample.map((s) => s.answer.split('####')[1].trim().replace(/,/g, '')));
    expect(rows.map((r) => finalNumber(r.chosen) === r.reference)).toEqual([true, true, false, true, true, true, false, true]);
    expect(rows.every((r) => finalNumber(r.rejected) !== undefined && finalNumber(r.rejected) !== finalNumber(r.chosen))).toBe(true);
    expect(rows.every((r) => (finalNumber(r.chosen) === r.reference) !== (finalNumber(r.rejected) === r.reference))).toBe(true);
  });

  it('a judge that checks the reference agrees with the labels exactly as often as the labels are right', async () => {
    const result = await runJson([FIXTURE, '--config', CONFIG]);
    const handCount = (await fixture()).filter((r) => finalNumber(r.chosen) === r.reference).length / 8;
    expect(handCount).toBe(0.75);
    expect(result.n).toBe(8);
    expect(result.agreement).toBe(0.75);
    expect(result.ciLow).toBeCloseTo(0.409, 3);
    expect(result.ciHigh).toBeCloseTo(0.929, 3);
    expect(result.positionConsistency).toBe(1);
    expect(result.tokens).toBeGreaterThan(0);
  });

  it('without tools the judge has no evidence, prefers the longer answer, and agrees less', async () => {
    const config = join(dir, 'no-tools.config.json');
    await writeFile(config, JSON.stringify({ prompts: { judge: 'You are a judge. Score every candidate answer from 0 to 10.' }, tools: { enabled: [] }, seed: 7 }));
    const result = await runJson([FIXTURE, '--config', config]);
    const longerChosen = (await fixture()).filter((r) => r.chosen.length > r.rejected.length).length / 8;
    expect(result.n).toBe(8);
    expect(result.agreement).not.toBe(0.75);
    expect(result.agreement).toBeLessThanOrEqual(0.75);
    // The lab's judge without evidence scores by length rank, far apart enough that the longer always wins.
    expect(result.agreement).toBe(longerChosen);
    expect(result.positionConsistency).toBe(1);
    expect(result.tokens).toBeGreaterThan(0);
  });

  it('prints a human summary marked SIMULATION, with the counts and cost', async () => {
    const r = await run([FIXTURE, '--config', CONFIG, '--concurrency', '2']);
    expect(r.code).toBe(0);
    const text = r.out.join('\n');
    expect(text).toContain('SIMULATION');
    expect(text).toMatch(/8 examples judged, 0 invalid lines, 0 errors/);
    expect(text).toMatch(/agreement\s+0\.750 \(6\/8\), 95% CI \[0\.409, 0\.929\]/);
    expect(text).toMatch(/position consistency\s+1\.000 \(8\/8/);
    expect(text).toMatch(/ties\s+0/);
    expect(text).toMatch(/model calls\s+\d+, tokens \d+ \(\d+ per example\)/);
    expect(r.err.join('\n')).toMatch(/simulated models/);
  });

  it('judges through a configured endpoint without starting a lab of its own', async () => {
    const lab = await startLab({ seed: 7, log: () => {} });
    try {
      const config = join(dir, 'endpoint.config.json');
      const base = JSON.parse(await readFile(CONFIG, 'utf8'));
      await writeFile(config, JSON.stringify({ ...base, models: { judge: { model: 'lab-judge', baseURL: lab.baseURL, apiKeyName: 'ANYPREFER_TEST_NO_KEY' } } }));
      const r = await run([FIXTURE, '--config', config]);
      expect(r.code).toBe(0);
      expect(r.out.join('\n')).not.toContain('SIMULATION');
      expect(r.out.join('\n')).toMatch(/agreement\s+0\.750/);
      expect(r.err.join('\n')).not.toMatch(/simulated models/);
      expect(lab.stats().requests.judge).toBeGreaterThanOrEqual(16);
    } finally {
      await lab.stop();
    }
  });

  it('exits 1 when nothing could be judged and 2 on usage errors', async () => {
    const bad = join(dir, 'bad.jsonl');
    await writeFile(bad, '{"prompt": "q", "chosen": "a"}\nnot json\n');
    const r = await run([bad, '--json']);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.out[0]!)).toMatchObject({ n: 0, agreement: null });
    expect(r.err.join('\n')).toMatch(/line 1: invalid: field "rejected" is missing/);
    expect(r.err.join('\n')).toMatch(/line 2: invalid: not valid JSON/);
    expect((await run([])).code).toBe(2);
    expect((await run([FIXTURE, '--concurrency', 'many'])).code).toBe(2);
    expect((await run([FIXTURE, '--nope'])).code).toBe(2);
    expect((await run([join(dir, 'missing.jsonl')])).code).toBe(1);
  });
});
