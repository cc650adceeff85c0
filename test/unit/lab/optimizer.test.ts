import { describe, expect, it } from 'vitest';
import { DEFAULT_JUDGE_PROMPT, DEFAULT_TARGET_PROMPT } from '../../../layers/core/src/config';
import { optimizerMessages, optimizerOutputSchema } from '../../../layers/core/src/prompts';
import { loadKnowledge } from '../../../local/lab/knowledge';
import { JUDGE_TOOLS_INSTRUCTION, TARGET_CHECK_INSTRUCTION, TARGET_STEP_INSTRUCTION } from '../../../local/lab/optimizer';
import { CRITIQUE_BOTH_CORRECT, CRITIQUE_BOTH_WRONG, CRITIQUE_JUDGE_BIAS_LONGER } from '../../../local/lab/reward';
import { targetTraits } from '../../../local/lab/target';
import { labReply } from '../../../local/lab/roles';
import { chat, GSM8K, json, rows } from './helpers';

const knowledge = loadKnowledge([GSM8K]);
const QUESTION = rows[0]!.question;

function optimize(targetPrompt: string, judgePrompt: string, failure: string, critique: string) {
  const messages = optimizerMessages({
    targetPrompt,
    judgePrompt,
    conversation: [{ role: 'user', content: QUESTION }],
    chosen: 'The answer is 19.',
    rejected: 'The answer is 18.',
    failure,
    critique,
  });
  const out = optimizerOutputSchema.parse(json(labReply(chat('lab-optimizer', messages), 1, knowledge)!.choices[0]!.content));
  for (const p of [out.target_prompt, out.judge_prompt]) {
    expect(p).not.toContain('Janet');
    expect(p).not.toContain('18');
  }
  return out;
}

describe('lab optimizer (simulation)', () => {
  it('judge_bias: the judge prompt gains the use-your-tools instruction, once', () => {
    const out = optimize(DEFAULT_TARGET_PROMPT, DEFAULT_JUDGE_PROMPT, 'judge_bias', CRITIQUE_JUDGE_BIAS_LONGER);
    expect(out.judge_prompt).toBe(`${DEFAULT_JUDGE_PROMPT}\n${JUDGE_TOOLS_INSTRUCTION}`);
    expect(out.target_prompt).toBe(DEFAULT_TARGET_PROMPT);
    const again = optimize(out.target_prompt, out.judge_prompt, 'judge_bias', CRITIQUE_JUDGE_BIAS_LONGER);
    expect(again.judge_prompt).toBe(out.judge_prompt);
  });

  it('chosen_incorrect / no_contrast: step-by-step first, then checking arithmetic, then nothing more', () => {
    const first = optimize(DEFAULT_TARGET_PROMPT, DEFAULT_JUDGE_PROMPT, 'chosen_incorrect', CRITIQUE_BOTH_WRONG);
    expect(first.target_prompt).toBe(`${DEFAULT_TARGET_PROMPT}\n${TARGET_STEP_INSTRUCTION}`);
    expect(first.judge_prompt).toBe(DEFAULT_JUDGE_PROMPT);
    const second = optimize(first.target_prompt, first.judge_prompt, 'no_contrast', CRITIQUE_BOTH_CORRECT);
    expect(second.target_prompt).toBe(`${first.target_prompt}\n${TARGET_CHECK_INSTRUCTION}`);
    expect(targetTraits(second.target_prompt)).toEqual({ stepByStep: true, checksArithmetic: true });
    const third = optimize(second.target_prompt, second.judge_prompt, 'chosen_incorrect', CRITIQUE_BOTH_WRONG);
    expect(third.target_prompt).toBe(second.target_prompt);
  });

  it('none / other: prompts unchanged, and the rationale says so', () => {
    for (const failure of ['none', 'other']) {
      const out = optimize(DEFAULT_TARGET_PROMPT, DEFAULT_JUDGE_PROMPT, failure, 'A fine pair.');
      expect(out.target_prompt).toBe(DEFAULT_TARGET_PROMPT);
      expect(out.judge_prompt).toBe(DEFAULT_JUDGE_PROMPT);
      expect(out.rationale).toMatch(/unchanged/);
    }
  });
});
