import { describe, expect, it } from 'vitest';
import { rewardMessages, rewardOutputSchema, type RewardOutput } from '../../../layers/core/src/prompts';
import { loadKnowledge } from '../../../local/lab/knowledge';
import { labReply } from '../../../local/lab/roles';
import { chat, GSM8K, json, rows } from './helpers';

const knowledge = loadKnowledge([GSM8K]);
const QUESTION = rows[0]!.question; // gold 18
const RIGHT = 'Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = 18 every day.\nThe answer is 18.';
const WRONG = 'Let me think about this carefully.\n\nJanet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = 19 every day.\n\nThe answer is 19.';
const WRONG2 = 'The answer is 20.';

function reward(chosen: string, rejected: string, seed = 1, opts: { question?: string; reference?: string } = {}): RewardOutput {
  const messages = rewardMessages({
    conversation: [{ role: 'user', content: opts.question ?? QUESTION }],
    ...(opts.reference !== undefined ? { reference: opts.reference } : {}),
    chosen,
    rejected,
    judgeRationale: 'Candidate 1 is more thorough.',
    evidence: [],
  });
  const format = { type: 'json_schema', json_schema: { name: 'reward', schema: {}, strict: true } };
  return rewardOutputSchema.parse(json(labReply(chat('lab-reward', messages, { response_format: format }), seed, knowledge)!.choices[0]!.content));
}

/** The most common verdict over many seeds (the reward flips a verdict 3% of the time). */
function typical(chosen: string, rejected: string, opts?: { question?: string; reference?: string }) {
  const outs = Array.from({ length: 100 }, (_, i) => reward(chosen, rejected, i + 1, opts));
  const counts = new Map<string, number>();
  for (const o of outs) counts.set(o.failure, (counts.get(o.failure) ?? 0) + 1);
  const [failure, count] = [...counts].sort((a, b) => b[1] - a[1])[0]!;
  return { failure, share: count / outs.length, outs: outs.filter((o) => o.failure === failure) };
}

describe('lab reward model (simulation)', () => {
  it('chosen correct, rejected wrong: a good pair (8-9.5 ± 0.7), failure none', () => {
    const t = typical(RIGHT, WRONG);
    expect(t.failure).toBe('none');
    expect(t.share).toBeGreaterThan(0.9);
    for (const o of t.outs) expect(o.score).toBeGreaterThanOrEqual(7.3);
  });

  it('chosen wrong, rejected correct: judge_bias with a critique that asks for tools', () => {
    const t = typical(WRONG, RIGHT);
    expect(t.failure).toBe('judge_bias');
    for (const o of t.outs) {
      expect(o.score).toBeLessThanOrEqual(3.2);
      expect(o.critique).toMatch(/judge should verify answers against the reference with its tools/);
    }
    expect(t.outs[0]!.critique).toMatch(/longer answer/);
  });

  it('both wrong: chosen_incorrect, asking for step-by-step reasoning and checked arithmetic', () => {
    const t = typical(WRONG, WRONG2);
    expect(t.failure).toBe('chosen_incorrect');
    for (const o of t.outs) {
      expect(o.score).toBeGreaterThanOrEqual(1.3);
      expect(o.score).toBeLessThanOrEqual(4.7);
    }
    expect(t.outs[0]!.critique).toMatch(/reason step by step and check its arithmetic/);
  });

  it('both correct: no_contrast (4-6 ± 0.7), below the default threshold', () => {
    const t = typical(RIGHT, 'The answer is 18.');
    expect(t.failure).toBe('no_contrast');
    for (const o of t.outs) expect(o.score).toBeLessThan(7);
    expect(t.outs[0]!.critique).toMatch(/show its work step by step/);
  });

  it('uses the <reference> for a task it does not know', () => {
    const question = 'A shop sells pens at 3 dollars each. How much do 7 pens cost?';
    expect(typical('3 * 7 = 21. The answer is 21.', 'The answer is 24.', { question, reference: '21' }).failure).toBe('none');
    expect(typical('The answer is 24.', '3 * 7 = 21. The answer is 21.', { question, reference: '21' }).failure).toBe('judge_bias');
  });

  it('is not a perfect oracle: a few verdicts flip', () => {
    const t = typical(RIGHT, WRONG);
    expect(t.share).toBeLessThan(1);
  });

  it('without a gold answer or reference scores by length and structure (5-8)', () => {
    const question = 'Give me advice on writing a cover letter.';
    const rich = 'Here is how I would approach this:\n\n1. **Open strongly**: name the role.\n2. **Be concrete**: cite results.\n3. **Close**: ask for a meeting.\n\nI hope this helps.';
    const thin = 'It depends on the job.';
    const good = reward(rich, thin, 1, { question });
    const weak = reward(thin, rich, 1, { question });
    expect(good.failure).toBe('none');
    expect(weak.failure).toBe('other');
    expect(good.score).toBeGreaterThan(weak.score);
    for (const o of [good, weak]) {
      expect(o.score).toBeGreaterThanOrEqual(5);
      expect(o.score).toBeLessThanOrEqual(8);
    }
  });
});
