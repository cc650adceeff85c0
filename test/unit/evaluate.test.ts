// Judge evaluation: reading labeled pairs (the three shapes, invalid lines), the Wilson interval,
// and agreement / ties / position consistency / errors / tokens with scripted judges.
import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { parseRunConfig, type ChatRequest } from '@anyprefer/core';
import {
  evaluateJudge,
  parseLabeledLine,
  readLabeledLines,
  wilsonInterval,
  type LabeledExample,
  type LabeledLine,
} from '../../layers/core/src/evaluate';
import { ModelCallError } from '../../layers/core/src/models/gateway';
import { openaiRecord, trlRecord } from '../../layers/core/src/output/records';
import { createToolRegistry } from '../../layers/core/src/tools/catalog';
import type { Attempt, NormalizedInput } from '../../layers/core/src/types';
import { reply, ScriptedModels } from '../support/memory';

const user = (content: string) => ({ role: 'user' as const, content });
const assistant = (content: string) => [{ role: 'assistant' as const, content }];

function ok(value: unknown, line = 1): LabeledExample {
  const r = parseLabeledLine(typeof value === 'string' ? value : JSON.stringify(value), line);
  if (!r.ok) throw new Error(`expected a valid line, got: ${r.invalid.reason}`);
  return r.example;
}

function reason(value: unknown, line = 1): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  const r = parseLabeledLine(text, line);
  if (r.ok) throw new Error(`expected an invalid line, got shape ${r.example.shape}`);
  expect(r.invalid.line).toBe(line);
  if (text.length <= 200) expect(r.invalid.excerpt).toBe(text);
  return r.invalid.reason;
}

describe('parseLabeledLine', () => {
  it('reads {prompt, chosen, rejected} with strings, a numeric reference, id and category', () => {
    const e = ok({ id: 7, prompt: 'What is 2 + 2?', chosen: '2 + 2 = 4. The answer is 4.', rejected: 'The answer is 5.', reference: 4, category: 'math' }, 3);
    expect(e).toEqual({
      id: '7',
      line: 3,
      shape: 'pair',
      chosen: '2 + 2 = 4. The answer is 4.',
      rejected: 'The answer is 5.',
      input: { id: '7', line: 3, format: 'prompt', messages: [user('What is 2 + 2?')], reference: '4', domain: 'math' },
    });
    expect(ok({ prompt: 'q', chosen: 'a', rejected: 'b' }, 9).id).toBe('line-9');
  });

  it('reads the TRL conversational form: message lists, text parts, a system message', () => {
    const e = ok({
      prompt: [{ role: 'system', content: 'Be brief.' }, user('Capital of France?')],
      chosen: [{ role: 'assistant', content: [{ type: 'text', text: 'Paris.' }] }],
      rejected: assistant('Lyon.'),
      domain: 'geo',
    });
    expect(e.shape).toBe('pair');
    expect(e.input.messages).toEqual([{ role: 'system', content: 'Be brief.' }, user('Capital of France?')]);
    expect([e.chosen, e.rejected, e.input.domain, e.input.reference]).toEqual(['Paris.', 'Lyon.', 'geo', undefined]);
  });

  it('reads the TRL implicit prompt: the shared messages before the answers', () => {
    const e = ok({
      chosen: [user('Hi, 3 * 4?'), { role: 'assistant', content: '12' }],
      rejected: [user('Hi, 3 * 4?'), { role: 'assistant', content: '7' }],
      reference: '12',
    });
    expect(e.shape).toBe('trl-implicit');
    expect(e.input.messages).toEqual([user('Hi, 3 * 4?')]);
    expect([e.chosen, e.rejected, e.input.reference]).toEqual(['12', '7', '12']);
  });

  it('reads the OpenAI DPO form, images as image_url parts', () => {
    const e = ok({
      input: { messages: [user('Describe it.'), { role: 'assistant', content: 'A cat?' }, { role: 'user', content: [{ type: 'text', text: 'Sure?' }, { type: 'image_url', image_url: { url: 'https://x.test/cat.png' } }] }] },
      preferred_output: assistant('Yes, a cat.'),
      non_preferred_output: assistant('A dog.'),
      reference: 'cat',
    });
    expect(e.shape).toBe('openai');
    expect(e.input.messages.map((m) => m.content)).toEqual(['Describe it.', 'A cat?', 'Sure?']);
    expect(e.input.images).toEqual(['https://x.test/cat.png']);
    expect([e.chosen, e.rejected, e.input.reference]).toEqual(['Yes, a cat.', 'A dog.', 'cat']);
  });

  it('reads the pairs anyprefer writes (pairs.trl.jsonl and pairs.openai.jsonl), images included', () => {
    const input: NormalizedInput = { id: 'a', line: 1, format: 'prompt', messages: [user('What is shown?')], images: ['https://x.test/a.png'] };
    const attempt: Attempt = {
      iteration: 1,
      targetPromptVersion: 'initial',
      judgePromptVersion: 'initial',
      candidates: [
        { index: 0, content: 'A red square.' },
        { index: 1, content: 'Nothing.' },
      ],
      judgement: { scores: [], evidence: [], chosen: 0, rejected: 1, margin: 5 },
    };
    for (const record of [trlRecord(input, attempt), openaiRecord(input, attempt)]) {
      const e = ok(record);
      expect(e.input.messages).toEqual([user('What is shown?')]);
      expect(e.input.images).toEqual(['https://x.test/a.png']);
      expect([e.chosen, e.rejected]).toEqual(['A red square.', 'Nothing.']);
    }
  });

  it('reports invalid lines with the line number, a reason and an excerpt', () => {
    expect(reason('', 4)).toBe('empty line');
    expect(reason('{"prompt": "q", "chosen": ', 5)).toMatch(/^not valid JSON: /);
    expect(reason('[1, 2]')).toBe('expected a JSON object, got array');
    expect(reason({ question: 'q', answer: 'a' })).toMatch(/^no labeled pair: expected "prompt", "chosen" and "rejected" .* the line has keys "question", "answer"$/);
    expect(reason({ prompt: 'q', chosen: 'a' })).toBe('field "rejected" is missing');
    expect(reason({ prompt: 'q', chosen: 'a', rejected: '  ' })).toBe('field "rejected" is empty');
    expect(reason({ prompt: 'q', chosen: 'same', rejected: 'same' })).toMatch(/same text/);
    expect(reason({ prompt: 'q', chosen: 3, rejected: 'b' })).toMatch(/^field "chosen" must be a string or a list with one assistant message, got number$/);
    expect(reason({ prompt: 'q', chosen: [...assistant('a'), ...assistant('b')], rejected: 'b' })).toBe('field "chosen" must be one assistant message, got 2 messages');
    expect(reason({ prompt: 'q', chosen: [user('a')], rejected: 'b' })).toBe('field "chosen[0].role" must be "assistant", got "user"');
    expect(reason({ prompt: '', chosen: 'a', rejected: 'b' })).toBe('field "prompt" is empty');
    expect(reason({ prompt: [user('q'), { role: 'assistant', content: 'x' }], chosen: 'a', rejected: 'b' })).toMatch(/^field "prompt" must end with a user message/);
    expect(reason({ prompt: 'q', chosen: 'a', rejected: 'b', reference: { n: 1 } })).toBe('field "reference" must be a string or a number, got object');
    expect(reason({ chosen: [user('q'), ...assistant('a')], rejected: [user('other'), ...assistant('b')] })).toMatch(/share every message but the last/);
    expect(reason({ chosen: 'a', rejected: 'b' })).toMatch(/^field "prompt" is missing/);
    expect(reason({ preferred_output: assistant('a'), non_preferred_output: assistant('b') })).toBe('field "input" is missing');
    expect(reason({ input: { messages: [{ role: 'robot', content: 'q' }] }, preferred_output: assistant('a'), non_preferred_output: assistant('b') })).toMatch(
      /^field "input\.messages\[0\]\.role" must be one of system, user, assistant/,
    );
    const long = JSON.stringify({ prompt: 'x'.repeat(500), chosen: 'a' });
    const r = parseLabeledLine(long, 2);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.invalid).toEqual({ line: 2, reason: 'field "rejected" is missing', excerpt: `${long.slice(0, 199)}…` });
  });

  it('streams a file: byte-level problems from readLines are invalid lines too', async () => {
    const body = Readable.from([
      Buffer.from(`${JSON.stringify({ prompt: 'q', chosen: 'a', rejected: 'b' })}\n`),
      Buffer.from([0x7b, 0xff, 0x7d, 0x0a]),
      Buffer.from(`${JSON.stringify({ prompt: 'q2', chosen: 'c', rejected: 'd' })}`),
    ]);
    const lines: LabeledLine[] = [];
    for await (const l of readLabeledLines(body)) lines.push(l);
    expect(lines.map((l) => (l.ok ? `${l.example.line} ok` : `${l.invalid.line} ${l.invalid.reason}`))).toEqual(['1 ok', '2 line is not valid UTF-8', '3 ok']);
  });
});

describe('wilsonInterval', () => {
  const rounded = (i: { low: number; high: number }) => [Number(i.low.toFixed(3)), Number(i.high.toFixed(3))];
  it('matches known 95% intervals', () => {
    expect(rounded(wilsonInterval(6, 8))).toEqual([0.409, 0.929]);
    expect(rounded(wilsonInterval(50, 100))).toEqual([0.404, 0.596]);
    expect(rounded(wilsonInterval(5, 8))).toEqual([0.306, 0.863]);
    expect(rounded(wilsonInterval(0, 10))).toEqual([0, 0.278]);
    expect(rounded(wilsonInterval(10, 10))).toEqual([0.722, 1]);
  });
  it('stays within [0, 1], and is [0, 1] without data', () => {
    expect(wilsonInterval(0, 0)).toEqual({ low: 0, high: 1 });
    const all = wilsonInterval(1000, 1000);
    expect(all.high).toBe(1);
    expect(all.low).toBeGreaterThan(0.99);
    expect(wilsonInterval(0, 3).low).toBe(0);
    expect(() => wilsonInterval(3, 2)).toThrow(RangeError);
  });
});

// ---------- evaluateJudge with scripted judges ----------

/** The candidates as shown to the judge: [shown index (1-based), text]. */
function shownCandidates(request: ChatRequest): [number, string][] {
  const content = request.messages.find((m) => m.role === 'user')!.content!;
  const text = typeof content === 'string' ? content : content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  return [...text.matchAll(/<candidate index="(\d+)">\n([\s\S]*?)\n<\/candidate>/g)].map((m) => [Number(m[1]), m[2]!]);
}

const scores = (request: ChatRequest, score: (text: string, shownIndex: number) => number) =>
  reply(JSON.stringify({ scores: shownCandidates(request).map(([i, t]) => ({ candidate: i, score: score(t, i), rationale: 'r' })) }));

const example = (line: number, chosen: string, rejected: string, extra: Partial<NormalizedInput> = {}): LabeledExample => ({
  id: `ex-${line}`,
  line,
  shape: 'pair',
  chosen,
  rejected,
  input: { id: `ex-${line}`, line, format: 'prompt', messages: [{ role: 'user', content: `question ${line}` }], ...extra },
});

const noTools = parseRunConfig({ tools: { enabled: [] } });
const registry = (config = noTools) => createToolRegistry(config.tools);

describe('evaluateJudge', () => {
  it('measures agreement with the labels; swap judging is forced on, so every example is judged twice', async () => {
    const models = new ScriptedModels({ judge: (r) => scores(r, (t) => (t.startsWith('good') ? 9 : 2)) });
    const config = parseRunConfig({ tools: { enabled: [] }, judging: { swap: false } });
    const report = await evaluateJudge({
      gateway: models,
      tools: registry(config),
      config,
      examples: [example(1, 'good one', 'bad one'), example(2, 'bad label', 'good answer'), example(3, 'good again', 'bad again')],
    });
    expect(report).toMatchObject({ n: 3, agreed: 2, agreement: 2 / 3, positionConsistency: 1, ties: 0, calls: 6, tokens: 6 * 15, errors: [], invalid: [] });
    expect(report.perExample).toEqual([
      { line: 1, id: 'ex-1', agrees: true, tie: false, positionConsistent: true, chosenScore: 9, rejectedScore: 2, tokens: 30 },
      { line: 2, id: 'ex-2', agrees: false, tie: false, positionConsistent: true, chosenScore: 2, rejectedScore: 9, tokens: 30 },
      { line: 3, id: 'ex-3', agrees: true, tie: false, positionConsistent: true, chosenScore: 9, rejectedScore: 2, tokens: 30 },
    ]);
    const ci = wilsonInterval(2, 3);
    expect([report.ciLow, report.ciHigh]).toEqual([ci.low, ci.high]);
    // Both orders were shown: each example's two requests show the candidates reversed.
    const orders = models.requests.map((r) => shownCandidates(r.request).map(([, t]) => t).join(' | '));
    expect(orders).toContain('good one | bad one');
    expect(orders).toContain('bad one | good one');
  });

  it('a judge that always prefers the first shown answer is position-inconsistent, and its ties count as disagreement', async () => {
    const models = new ScriptedModels({ judge: (r) => scores(r, (_t, shown) => (shown === 1 ? 8 : 2)) });
    const report = await evaluateJudge({ gateway: models, tools: registry(), config: noTools, examples: [example(1, 'a', 'b'), example(2, 'c', 'd')] });
    // Averaged over both orders, both answers score 5: an exact tie, which pairOf would break toward `chosen`.
    expect(report).toMatchObject({ n: 2, agreed: 0, agreement: 0, ties: 2, positionConsistency: 0 });
    expect(report.perExample.map((e) => [e.chosenScore, e.rejectedScore, e.tie, e.agrees, e.positionConsistent])).toEqual([
      [5, 5, true, false, false],
      [5, 5, true, false, false],
    ]);
  });

  it('a judge whose bias is partly positional: consistent on clear pairs, inconsistent on close ones', async () => {
    // Quality 6 vs 5 plus a +2 bonus for the first shown: the order decides the close pair.
    const quality = (t: string) => Number(t.split(':')[1]);
    const models = new ScriptedModels({ judge: (r) => scores(r, (t, shown) => quality(t) + (shown === 1 ? 2 : 0)) });
    const report = await evaluateJudge({ gateway: models, tools: registry(), config: noTools, examples: [example(1, 'q:7', 'q:2'), example(2, 'q:6', 'q:5')] });
    expect(report.perExample.map((e) => [e.agrees, e.positionConsistent, e.chosenScore, e.rejectedScore])).toEqual([
      [true, true, 8, 3],
      [true, false, 7, 6],
    ]);
    expect(report.positionConsistency).toBe(0.5);
    expect(report.agreement).toBe(1);
  });

  it('gives the judge the reference through its tool, as in a run', async () => {
    const models = new ScriptedModels({
      judge: (r) => {
        const tool = r.messages.find((m) => m.role === 'tool');
        if (!tool) return reply('', [{ id: 'c1', name: 'reference', arguments: '{}' }]);
        const ref = String(tool.content);
        return scores(r, (t) => (t.endsWith(`is ${ref}.`) ? 9 : 1));
      },
    });
    const config = parseRunConfig({ tools: { enabled: ['reference'] } });
    const report = await evaluateJudge({
      gateway: models,
      tools: registry(config),
      config,
      examples: [example(1, 'The answer is 42.', 'The answer is 41.', { reference: '42' }), example(2, 'The answer is 5.', 'The answer is 6.', { reference: '6' })],
    });
    expect(report.perExample.map((e) => e.agrees)).toEqual([true, false]);
    expect(report.calls).toBe(8); // two orders x (tool call + scores) x two examples
    const toolMessages = models.requests.flatMap((r) => r.request.messages.filter((m) => m.role === 'tool').map((m) => m.content));
    expect(new Set(toolMessages)).toEqual(new Set(['42', '6']));
  });

  it('counts a model error as an error with its line, not a crash; its spent tokens still count', async () => {
    const models = new ScriptedModels({
      judge: (r) => {
        if (r.messages.some((m) => typeof m.content === 'string' && m.content.includes('question 2'))) {
          throw new ModelCallError({ role: 'judge', model: 'm', status: 500, attempts: 5, retryable: true, detail: 'boom', usage: { calls: 1, promptTokens: 7, completionTokens: 0 } });
        }
        return scores(r, (t) => (t === 'yes' ? 9 : 1));
      },
    });
    const invalid: LabeledLine = { ok: false, invalid: { line: 4, reason: 'empty line', excerpt: '' } };
    const valid = (e: LabeledExample): LabeledLine => ({ ok: true, example: e });
    const seen: number[] = [];
    const report = await evaluateJudge({
      gateway: models,
      tools: registry(),
      config: noTools,
      examples: [valid(example(1, 'yes', 'no')), valid(example(2, 'yes', 'no')), valid(example(3, 'no', 'yes')), invalid],
      onResult: (r) => seen.push(r.line),
    });
    expect(report).toMatchObject({ n: 2, agreed: 1, agreement: 0.5 });
    expect(report.errors).toEqual([{ line: 2, id: 'ex-2', error: expect.stringMatching(/status=500.*boom/) }]);
    expect(report.invalid).toEqual([invalid.invalid]);
    expect(seen.sort()).toEqual([1, 2, 3]);
    // Two successful examples (2 calls of 15 tokens each) and the failed first call of example 2.
    expect(report.calls).toBe(4 + 1);
    expect(report.tokens).toBe(4 * 15 + 7);
  });

  it('keeps at most `concurrency` examples in flight, pulling lazily from an async source', async () => {
    let inFlight = 0;
    let peak = 0;
    const models = new ScriptedModels({
      judge: async (r) => {
        inFlight++;
        peak = Math.max(peak, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight--;
        return scores(r, (t) => (t === 'good' ? 9 : 1));
      },
    });
    let pulled = 0;
    async function* source() {
      for (let line = 1; line <= 12; line++) {
        pulled++;
        yield example(line, 'good', 'bad');
      }
    }
    const report = await evaluateJudge({ gateway: models, tools: registry(), config: noTools, examples: source(), concurrency: 3 });
    expect(report.n).toBe(12);
    expect(report.agreement).toBe(1);
    expect(pulled).toBe(12);
    expect(peak).toBe(3); // the two orders of one example run one after the other
    expect(report.perExample.map((e) => e.line)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
  });

  it('reports nothing judged without examples, and rejects a bad concurrency', async () => {
    const models = new ScriptedModels({});
    const report = await evaluateJudge({ gateway: models, tools: registry(), config: noTools, examples: [] });
    expect(report).toMatchObject({ n: 0, agreement: null, positionConsistency: null, ciLow: 0, ciHigh: 1, tokens: 0, calls: 0 });
    await expect(evaluateJudge({ gateway: models, tools: registry(), config: noTools, examples: [], concurrency: 0 })).rejects.toThrow(RangeError);
  });
});
