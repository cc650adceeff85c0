import { describe, expect, it } from 'vitest';
import { DEFAULT_TARGET_PROMPT } from '../../../layers/core/src/config';
import { targetMessages } from '../../../layers/core/src/prompts';
import { finalNumber, findEquations, evaluate, sameNumber } from '../../../local/lab/arith';
import { loadKnowledge } from '../../../local/lab/knowledge';
import { labReply } from '../../../local/lab/roles';
import { chat, gold, GSM8K, rows } from './helpers';

const knowledge = loadKnowledge([GSM8K]);
const STEP_CHECK_PROMPT = `${DEFAULT_TARGET_PROMPT}\nReason step by step, showing each calculation.\nCheck your arithmetic before giving the final answer.`;

const ask = (prompt: string, question: string, n: number, seed = 1, extra: Record<string, unknown> = {}) =>
  labReply(chat('lab-target', targetMessages(prompt, [{ role: 'user', content: question }]), { n, ...extra }), seed, knowledge)!.choices.map(
    (c) => c.content!,
  );

/** Candidates for the first `problems` GSM8K questions, n=4 each, with their correctness. */
function sample(prompt: string, problems: number) {
  return rows.slice(0, problems).map((row) => ask(prompt, row.question, 4).map((text) => ({ text, correct: sameNumber(finalNumber(text) ?? NaN, gold(row)) })));
}

const hasFalseEquation = (text: string) => findEquations(text).some((e) => !sameNumber(evaluate(e.expression)!, e.claimed));

describe('lab target (simulation)', () => {
  it('knows the GSM8K test set', () => {
    expect(knowledge.size).toBe(1319);
    expect(knowledge.lookup(`  ${rows[0]!.question.toUpperCase()}  `)?.gold).toBe(18);
  });

  it('answers the same request identically, differently for another seed, and varies across choices', () => {
    const q = rows[3]!.question;
    expect(ask(DEFAULT_TARGET_PROMPT, q, 8)).toEqual(ask(DEFAULT_TARGET_PROMPT, q, 8));
    expect(ask(DEFAULT_TARGET_PROMPT, q, 8, 2)).not.toEqual(ask(DEFAULT_TARGET_PROMPT, q, 8, 1));
    expect(new Set(ask(DEFAULT_TARGET_PROMPT, q, 8)).size).toBeGreaterThan(2);
    // The request's own seed is part of its identity (the gateway tops up `n` with per-request seeds).
    expect(ask(DEFAULT_TARGET_PROMPT, q, 1, 1, { seed: 5 })).not.toEqual(ask(DEFAULT_TARGET_PROMPT, q, 1, 1, { seed: 6 }));
  });

  it('is more accurate with a step-by-step, check-your-arithmetic prompt (200 draws each)', () => {
    const rate = (prompt: string) => {
      const all = sample(prompt, 50).flat();
      expect(all).toHaveLength(200);
      return all.filter((c) => c.correct).length / all.length;
    };
    const plain = rate(DEFAULT_TARGET_PROMPT);
    const improved = rate(STEP_CHECK_PROMPT);
    console.info(`[lab target] accuracy: default prompt ${plain.toFixed(3)}, step-by-step + check ${improved.toFixed(3)}`);
    expect(plain).toBeGreaterThan(0.2);
    expect(plain).toBeLessThan(0.45);
    expect(improved).toBeGreaterThan(0.55);
    expect(improved - plain).toBeGreaterThan(0.2);
  });

  it('writes worked solutions whose equations a calculator can check; arithmetic slips are visibly false', () => {
    const sets = sample(STEP_CHECK_PROMPT, 60).flat();
    const correct = sets.filter((c) => c.correct);
    expect(correct.every((c) => c.text.includes('The answer is') && !hasFalseEquation(c.text))).toBe(true);
    expect(correct.filter((c) => findEquations(c.text).length > 0).length / correct.length).toBeGreaterThan(0.9);
    const wrong = sets.filter((c) => !c.correct);
    const slipShare = wrong.filter((c) => hasFalseEquation(c.text)).length / wrong.length;
    const plainWrong = sample(DEFAULT_TARGET_PROMPT, 60).flat().filter((c) => !c.correct);
    const plainSlipShare = plainWrong.filter((c) => hasFalseEquation(c.text)).length / plainWrong.length;
    console.info(`[lab target] arithmetic-slip share of wrong answers: default ${plainSlipShare.toFixed(2)}, with check ${slipShare.toFixed(2)}`);
    expect(plainSlipShare).toBeGreaterThan(0.45);
    expect(slipShare).toBeLessThan(plainSlipShare - 0.15);
  });

  it('does not make length a proxy for correctness: the longest candidate is usually wrong', () => {
    let mixed = 0;
    let longestCorrect = 0;
    for (const set of sample(DEFAULT_TARGET_PROMPT, 80)) {
      if (set.every((c) => c.correct) || !set.some((c) => c.correct)) continue;
      mixed++;
      const longest = set.reduce((a, b) => (b.text.length > a.text.length ? b : a));
      if (longest.correct) longestCorrect++;
    }
    console.info(`[lab target] longest candidate correct in ${longestCorrect}/${mixed} mixed sets (default prompt)`);
    expect(mixed).toBeGreaterThan(30);
    expect(longestCorrect / mixed).toBeLessThan(0.4);
  });

  it('gives an unknown question generic answers of varied length, deterministically', () => {
    const q = 'Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences.';
    const answers = ask(DEFAULT_TARGET_PROMPT, q, 8);
    expect(answers).toEqual(ask(DEFAULT_TARGET_PROMPT, q, 8));
    const lengths = answers.map((a) => a.length);
    expect(Math.max(...lengths)).toBeGreaterThan(2 * Math.min(...lengths));
    for (const a of answers) expect(a).not.toMatch(/simulat/i);
  });
});
