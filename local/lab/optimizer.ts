// Simulated prompt optimizer of the offline model lab (a simulation). It reads the failure and the
// critique and adds the one general instruction they call for, if the prompt does not already have it;
// it never copies the task into a prompt.
import { REWARD_FAILURES, readTags, type OptimizerOutput } from '../../layers/core/src/prompts';
import type { LabReply, LabRequest } from './protocol';
import { lastUserText } from './protocol';
import type { Rng } from './rng';
import { ARITHMETIC_RE, CHECK_RE, STEP_BY_STEP_RE } from './target';

// ---- model card: optimizer ----
/** Added to the judge prompt after a judge_bias (or rejected_correct) failure. */
export const JUDGE_TOOLS_INSTRUCTION =
  "Always use your tools: check each candidate's final answer against the reference answer and verify its arithmetic with the calculator before scoring.";
/** Added to the target prompt after chosen_incorrect / no_contrast, first this... */
export const TARGET_STEP_INSTRUCTION = 'Reason step by step, showing each calculation.';
/** ...then, once the prompt already reasons step by step, this. */
export const TARGET_CHECK_INSTRUCTION = 'Check your arithmetic before giving the final answer.';

const append = (prompt: string, line: string): string => `${prompt.trimEnd()}\n${line}`;

export function simulateOptimizer(req: LabRequest, _rng: Rng): LabReply {
  const user = lastUserText(req);
  const one = (name: string) => readTags(user, name)[0]?.body;
  const out = optimize(one('target_prompt') ?? '', one('judge_prompt') ?? '', (one('failure') ?? '').trim(), one('critique') ?? '');
  return { choices: Array.from({ length: req.n }, () => ({ content: JSON.stringify(out) })) };
}

export function optimize(targetPrompt: string, judgePrompt: string, failure: string, critique = ''): OptimizerOutput {
  const keep = (rationale: string): OptimizerOutput => ({ target_prompt: targetPrompt, judge_prompt: judgePrompt, rationale });
  // A failure outside the reward model's categories: infer what the critique asks for.
  const known = (REWARD_FAILURES as readonly string[]).includes(failure);
  const judgeFault = known ? failure === 'judge_bias' || failure === 'rejected_correct' : /\bjudge\b/i.test(critique) && /tool|reference|verif/i.test(critique);
  const targetFault = known ? failure === 'chosen_incorrect' || failure === 'no_contrast' : /step by step|arithmetic|show (its|your) work/i.test(critique);
  if (judgeFault) {
    if (judgePrompt.includes(JUDGE_TOOLS_INSTRUCTION)) {
      return keep('The judge prompt already asks the judge to verify answers with its tools; no change is needed.');
    }
    return {
      target_prompt: targetPrompt,
      judge_prompt: append(judgePrompt, JUDGE_TOOLS_INSTRUCTION),
      rationale: 'The judge preferred a wrong answer; the judge prompt now asks it to check final answers against the reference and verify arithmetic with its tools.',
    };
  }
  if (targetFault) {
    if (!STEP_BY_STEP_RE.test(targetPrompt)) {
      return {
        target_prompt: append(targetPrompt, TARGET_STEP_INSTRUCTION),
        judge_prompt: judgePrompt,
        rationale: 'The answers did not show their reasoning; the target prompt now asks for step-by-step reasoning with each calculation shown.',
      };
    }
    if (!(CHECK_RE.test(targetPrompt) && ARITHMETIC_RE.test(targetPrompt))) {
      return {
        target_prompt: append(targetPrompt, TARGET_CHECK_INSTRUCTION),
        judge_prompt: judgePrompt,
        rationale: 'The target already reasons step by step but still makes mistakes; the prompt now asks it to check its arithmetic.',
      };
    }
    return keep('The target prompt already asks for step-by-step reasoning and checked arithmetic; no further change is warranted.');
  }
  return keep('The critique does not point to a prompt problem; both prompts are kept unchanged.');
}
