// The whole pipeline on the embedded default: in-process AWS-compatible servers, the very Lambda
// handlers driven by the Lambda-like poller, and the offline model lab.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocal, type LocalRunResult } from '../../local/runtime';

const SAMPLE = new URL('../../examples/gsm8k-sample.jsonl', import.meta.url);
const CONFIG = { candidatesPerPrompt: 4, rewardThreshold: 7, maxIterations: 3, seed: 7 };

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'anyprefer-e2e-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const readJsonl = async (path: string) =>
  (await readFile(path, 'utf8'))
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, any>);

async function outputs(result: LocalRunResult) {
  const file = (name: string) => join(result.outDir, name);
  return {
    manifest: JSON.parse(await readFile(file('manifest.json'), 'utf8')),
    trl: await readJsonl(file('pairs.trl.jsonl')),
    openai: await readJsonl(file('pairs.openai.jsonl')),
    full: await readJsonl(file('pairs.full.jsonl')),
    rejected: await readJsonl(file('rejected.jsonl')),
    invalid: await readJsonl(file('invalid.jsonl')),
    card: await readFile(file('README.md'), 'utf8'),
  };
}

/** The last number in a text: how GSM8K answers are graded. */
const finalNumber = (text: string) => Number([...text.replace(/,/g, '').matchAll(/-?\d+(?:\.\d+)?/g)].at(-1)?.[0]);

describe('anyprefer run on the embedded default', () => {
  it('turns the GSM8K sample into a verified preference dataset', async () => {
    const result = await runLocal(SAMPLE.pathname, { config: CONFIG, outDir: join(dir, 'demo') });
    const out = await outputs(result);
    const lines = (await readFile(SAMPLE, 'utf8')).trim().split('\n');
    const c = out.manifest.counts;

    expect(c.lines).toBe(lines.length);
    expect(c.accepted + c.rejected + c.invalid + c.deadLettered).toBe(c.lines);
    // Every input line is in exactly one output file.
    const seen = [...out.full, ...out.rejected, ...out.invalid].map((r) => r.line).sort((a, b) => a - b);
    expect(seen).toEqual(lines.map((_, i) => i + 1));
    expect(out.trl).toHaveLength(c.accepted);
    expect(out.openai).toHaveLength(c.accepted);

    for (const row of out.trl) {
      expect(row.prompt[0].content.length).toBeGreaterThan(0);
      expect(row.chosen[0].content.length).toBeGreaterThan(0);
      expect(row.rejected[0].content.length).toBeGreaterThan(0);
      expect(row.chosen[0].content).not.toBe(row.rejected[0].content);
    }
    for (const row of out.openai) {
      expect(row.input.messages.at(-1).role).toBe('user');
      expect(row.preferred_output[0].content).not.toBe(row.non_preferred_output[0].content);
    }
    // Chosen answers are right against the GSM8K gold answer.
    const gold = new Map(lines.map((l, i) => [i + 1, Number(JSON.parse(l).answer.split('####').at(-1).replace(/,/g, ''))]));
    const correct = out.full.filter((p) => finalNumber(p.chosen) === gold.get(p.line)).length;
    expect(correct / out.full.length).toBeGreaterThanOrEqual(0.95);
    expect(c.accepted).toBeGreaterThanOrEqual(lines.length * 0.6);
    // Feedback did work: some pairs were accepted only after a revised prompt.
    const afterFeedback = out.full.filter((p) => p.iteration > 1);
    expect(afterFeedback.length).toBeGreaterThan(0);
    expect(afterFeedback.some((p) => p.prompts.target.version !== 'initial' || p.prompts.judge.version !== 'initial')).toBe(true);
    // The policy learned: later attempts are accepted more often than first ones, and the
    // manifest shows which revisions were promoted and why.
    expect(out.manifest.iterations['2'].acceptanceRate).toBeGreaterThan(out.manifest.iterations['1'].acceptanceRate);
    const promotions = out.manifest.prompts.policy.incumbents.flatMap((i: { promotions: unknown[] }) => i.promotions);
    expect(promotions.length).toBeGreaterThan(0);
    expect(promotions[0].reason).toMatch(/lift/);
    expect(out.card).toContain('Promotions');
    // The judge used tools, and the evidence is in the full record.
    expect(out.full.every((p) => Array.isArray(p.evidence))).toBe(true);
    expect(out.full.some((p) => p.evidence.some((e: { tool: string }) => e.tool === 'reference'))).toBe(true);

    expect(out.manifest.simulation).toBe(true);
    expect(out.card).toContain('Simulation');
    expect(out.manifest.usage.total.calls).toBeGreaterThan(c.lines * 3);
    expect(out.manifest.usage.perAcceptedPair.calls).toBeCloseTo(out.manifest.usage.total.calls / c.accepted, 1);
    expect(result.manifest.status).toBe('complete');
  }, 120_000);

  it('gets the same dataset when every queue message is delivered twice and reordered', async () => {
    const file = join(dir, 'small.jsonl');
    await writeFile(file, (await readFile(SAMPLE, 'utf8')).trim().split('\n').slice(0, 16).join('\n') + '\n');
    // Same run id: the judge's candidate order is seeded by run, item and iteration. Prompt
    // promotion and exploration react to the order in which outcomes arrive (by design), so
    // this comparison fixes the prompts.
    const runId = 'duplicates-test';
    const fixed = { ...CONFIG, policy: { promote: false, explore: 0 } };
    const plain = await outputs(await runLocal(file, { config: fixed, runId, outDir: join(dir, 'plain') }));
    const chaotic = await runLocal(file, { config: fixed, runId, outDir: join(dir, 'chaos'), chaos: { duplicate: true, reorder: true, seed: 5 } });
    const twice = await outputs(chaotic);

    // Tool timings differ between runs; nothing else may.
    const stable = (rows: Record<string, any>[]) =>
      JSON.parse(JSON.stringify(rows, (k, v) => (k === 'durationMs' ? undefined : v)));
    expect(stable(twice.full)).toEqual(stable(plain.full));
    expect(twice.trl).toEqual(plain.trl);
    expect(stable(twice.rejected)).toEqual(stable(plain.rejected));
    expect(twice.manifest.counts).toEqual(plain.manifest.counts);
    const ids = twice.full.map((p) => p.line);
    expect(new Set(ids).size).toBe(ids.length);
    expect((chaotic.pollerStats as Record<string, { copies: number }>).generate!.copies).toBeGreaterThan(0);
  }, 120_000);

  it('runs a file that mixes every input format with broken lines, reporting each broken line', async () => {
    const gsm = (await readFile(SAMPLE, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { question: string; answer: string });
    const gold = (i: number) => gsm[i]!.answer.split('####').at(-1)!.trim();
    const valid = [
      JSON.stringify({ prompt: gsm[0]!.question, reference: gold(0), id: 'p-1' }),
      JSON.stringify({ instruction: gsm[1]!.question, input: '', output: gold(1) }),
      JSON.stringify(gsm[2]),
      JSON.stringify({ messages: [{ role: 'system', content: 'Be concise.' }, { role: 'user', content: gsm[3]!.question }], reference: gold(3) }),
      JSON.stringify({ conversations: [{ from: 'human', value: gsm[4]!.question }, { from: 'gpt', value: gold(4) }], domain: 'math' }),
      JSON.stringify({ question_id: 81, category: 'writing', turns: ['Write a haiku about autumn rain.', 'Now make it rhyme.'] }),
    ];
    const broken: [string | Buffer, RegExp][] = [
      ['{"prompt": "unterminated', /not valid JSON/],
      ['', /empty line/],
      [JSON.stringify({ prompt: 42 }), /prompt/],
      [JSON.stringify({ messages: 'hello' }), /messages/],
      [JSON.stringify({ prompt: 'x'.repeat(2 * 1024 * 1024) }), /over the 1048576-byte limit/],
      [Buffer.from([0x7b, 0x00, 0xff, 0xfe, 0x01, 0x7d]), /binary|UTF-8/],
      [JSON.stringify({ foo: 'bar' }), /no known format/],
    ];
    // Interleave: valid, broken, valid, broken...
    const parts: (string | Buffer)[] = [];
    const expectedBroken = new Map<number, RegExp>();
    for (let i = 0; i < Math.max(valid.length, broken.length); i++) {
      if (valid[i]) parts.push(valid[i]!);
      if (broken[i]) {
        parts.push(broken[i]![0]);
        expectedBroken.set(parts.length, broken[i]![1]);
      }
    }
    const file = join(dir, 'mixed.jsonl');
    await writeFile(file, Buffer.concat(parts.flatMap((p) => [Buffer.isBuffer(p) ? p : Buffer.from(p), Buffer.from('\n')])));

    const result = await runLocal(file, { config: { ...CONFIG, seed: 11 }, outDir: join(dir, 'mixed') });
    const out = await outputs(result);
    expect(out.manifest.counts).toMatchObject({ lines: parts.length, invalid: broken.length, deadLettered: 0 });
    expect(out.invalid.map((r) => r.line)).toEqual([...expectedBroken.keys()]);
    for (const row of out.invalid) {
      expect(row.reason).toMatch(expectedBroken.get(row.line)!);
      expect(row.excerpt.length).toBeLessThanOrEqual(200);
    }
    // Every valid line produced a pair: accepted, or rejected with its best pair shown.
    const pairLines = [...out.full.map((p) => p.line), ...out.rejected.filter((r) => r.best?.chosen).map((r) => r.line)].sort((a, b) => a - b);
    expect(pairLines).toHaveLength(valid.length);
    expect(out.full.length).toBeGreaterThanOrEqual(4);
    const formats = new Set(out.full.map((p) => p.format));
    expect(formats.size).toBeGreaterThanOrEqual(4);
    const chat = out.full.find((p) => p.format === 'openai-chat');
    if (chat) expect(chat.prompt[0]).toEqual({ role: 'system', content: 'Be concise.' });
  }, 120_000);

  it('carries images through to both output formats', async () => {
    const gsm = (await readFile(SAMPLE, 'utf8')).trim().split('\n').slice(0, 3).map((l) => JSON.parse(l) as { question: string; answer: string });
    const images = ['https://images.example.com/chart.png', 's3://anyprefer-input/images/scan 1.png', 'data:image/png;base64,iVBORw0KGgo='];
    const file = join(dir, 'vision.jsonl');
    await writeFile(file, gsm.map((g, i) => JSON.stringify({ ...g, images: [images[i]!] })).join('\n') + '\n');
    const out = await outputs(await runLocal(file, { config: CONFIG, outDir: join(dir, 'vision') }));
    expect(out.trl.length).toBeGreaterThan(0);
    for (const row of out.trl) {
      expect(row.images).toHaveLength(1);
      expect(images).toContain(row.images[0]);
      expect(row.prompt[0].content).toEqual([{ type: 'image' }, { type: 'text', text: expect.any(String) }]);
    }
    for (const row of out.openai) {
      const parts = row.input.messages[0].content;
      expect(parts[0]).toEqual({ type: 'text', text: expect.any(String) });
      expect(images).toContain(parts[1].image_url.url);
    }
    expect(out.full.every((p) => p.images.length === 1)).toBe(true);
  }, 60_000);

  it('stops taking new work at the token budget and still accounts for every line', async () => {
    const result = await runLocal(SAMPLE.pathname, { config: { ...CONFIG, budget: { maxTokens: 40_000 }, concurrency: { generate: 2, judge: 2 } }, outDir: join(dir, 'budget') });
    const out = await outputs(result);
    const c = out.manifest.counts;
    expect(c.accepted + c.rejected + c.invalid + c.deadLettered).toBe(c.lines);
    expect([...out.full, ...out.rejected, ...out.invalid]).toHaveLength(c.lines);
    expect(out.manifest.budget.stopped).toMatch(/^token budget reached: \d+ ≥ 40000 tokens$/);
    expect(out.manifest.budget.usedTokens).toBeGreaterThanOrEqual(40_000);
    const notStarted = out.rejected.filter((r) => /^not started: token budget/.test(r.reason));
    expect(notStarted.length).toBeGreaterThan(0);
    expect(c.accepted).toBeGreaterThan(0);
    // In-flight work finished; the overshoot is bounded by what was in flight, not the whole file.
    expect(out.manifest.usage.total.promptTokens + out.manifest.usage.total.completionTokens).toBeLessThan(160_000);
    expect(out.card).toContain('stopped taking new work');
  }, 120_000);
});
