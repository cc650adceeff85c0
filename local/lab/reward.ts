// Simulated reward model of the offline model lab (a simulation). It knows the gold answer of a known
// problem (or reads the <reference>), scores the pair by the correctness of chosen and rejected, names
// the failure and writes a critique; a little noise and a rare flipped verdict keep it from being a
// perfect oracle.
import { readTags, type RewardOutput } from '../../layers/core/src/prompts';
import { finalNumber, sameNumber } from './arith';
import { referenceNumber } from './judge';
import type { Knowledge } from './knowledge';
import { lastUserText, type LabReply, type LabRequest } from './protocol';
import type { Rng } from './rng';

// ---- model card: reward ----
/** Score ranges per verdict (before noise). */
export const REWARD_GOOD_PAIR: readonly [number, number] = [8, 9.5];
export const REWARD_JUDGE_BIAS: readonly [number, number] = [1, 2.5];
export const REWARD_BOTH_WRONG: readonly [number, number] = [2, 4];
export const REWARD_BOTH_CORRECT: readonly [number, number] = [4, 6];
/** Uniform noise added to every score. */
export const REWARD_NOISE = 0.7;
/** Chance the verdict is replaced by a random other one. */
export const REWARD_FLIP_RATE = 0.03;
/** Score range for a pair on a task with no known answer. */
export const REWARD_UNKNOWN: readonly [number, number] = [5, 8];

export const CRITIQUE_JUDGE_BIAS_LONGER =
  'The judge preferred a longer answer whose final number is wrong; the judge should verify answers against the reference with its tools.';
export const CRITIQUE_JUDGE_BIAS =
  'The judge preferred an answer whose final number is wrong over a correct one; the judge should verify answers against the reference with its tools.';
export const CRITIQUE_BOTH_WRONG =
  'Neither answer reaches the correct result; the answering model should reason step by step and check its arithmetic.';
export const CRITIQUE_BOTH_CORRECT =
  'Both answers are correct; the pair teaches nothing. The answering model should show its work step by step so mistakes surface.';

type Verdict = 'good' | 'judge_bias' | 'both_wrong' | 'both_correct';
const VERDICTS: readonly Verdict[] = ['good', 'judge_bias', 'both_wrong', 'both_correct'];

export function simulateReward(req: LabRequest, rng: Rng, knowledge: Knowledge): LabReply {
  const user = lastUserText(req);
  const one = (name: string) => readTags(user, name)[0]?.body;
  const task = one('task') ?? '';
  const reference = one('reference');
  const chosen = one('chosen') ?? '';
  const rejected = one('rejected') ?? '';
  const gold = knowledge.lookup(task)?.gold ?? (reference !== undefined ? referenceNumber(reference) : undefined);
  const choices = [];
  for (let i = 0; i < req.n; i++) {
    const r = rng.fork('choice', i);
    const out = gold !== undefined ? judgePair(gold, chosen, rejected, r) : judgeUnknown(chosen, rejected, r);
    choices.push({ content: JSON.stringify(out) });
  }
  return { choices };
}

function judgePair(gold: number, chosen: string, rejected: string, rng: Rng): RewardOutput {
  const isRight = (text: string) => {
    const n = finalNumber(text);
    return n !== undefined && sameNumber(n, gold);
  };
  const c = isRight(chosen);
  const r = isRight(rejected);
  let verdict: Verdict = c && !r ? 'good' : !c && r ? 'judge_bias' : c ? 'both_correct' : 'both_wrong';
  if (rng.chance(REWARD_FLIP_RATE)) verdict = rng.pick(VERDICTS.filter((v) => v !== verdict));
  const noisy = (range: readonly [number, number]) => round(clamp(rng.uniform(...range) + rng.uniform(-REWARD_NOISE, REWARD_NOISE)));
  switch (verdict) {
    case 'good':
      return {
        score: noisy(REWARD_GOOD_PAIR),
        failure: 'none',
        critique: 'The chosen answer reaches the correct result and the rejected answer does not; a clear, useful contrast.',
      };
    case 'judge_bias':
      return {
        score: noisy(REWARD_JUDGE_BIAS),
        failure: 'judge_bias',
        critique: chosen.length > rejected.length ? CRITIQUE_JUDGE_BIAS_LONGER : CRITIQUE_JUDGE_BIAS,
      };
    case 'both_wrong':
      return { score: noisy(REWARD_BOTH_WRONG), failure: 'chosen_incorrect', critique: CRITIQUE_BOTH_WRONG };
    case 'both_correct':
      return { score: noisy(REWARD_BOTH_CORRECT), failure: 'no_contrast', critique: CRITIQUE_BOTH_CORRECT };
  }
}

/** No known answer: a better-structured, fuller chosen answer makes a better pair. */
function judgeUnknown(chosen: string, rejected: string, rng: Rng): RewardOutput {
  const structure = (t: string) => (t.match(/^\s*(\d+\.|[-*•])\s/gm) ?? []).length + (t.match(/\n\s*\n/g) ?? []).length;
  const longer = chosen.length > rejected.length * 1.2;
  const better = structure(chosen) > structure(rejected);
  const [min, max] = REWARD_UNKNOWN;
  const span = max - min;
  if (longer && better) {
    return { score: round(rng.uniform(min + span * 0.5, max)), failure: 'none', critique: 'The chosen answer is fuller and better organized than the rejected one; a reasonable pair.' };
  }
  if (longer || better) {
    return {
      score: round(rng.uniform(min + span * 0.25, min + span * 0.75)),
      failure: 'none',
      critique: 'The chosen answer is somewhat better than the rejected one, though the difference is modest.',
    };
  }
  return {
    score: round(rng.uniform(min, min + span * 0.4)),
    failure: 'other',
    critique: 'The chosen answer is not clearly better than the rejected one; the contrast is weak.',
  };
}

const clamp = (x: number): number => Math.max(0, Math.min(10, x));
const round = (x: number): number => Math.round(x * 10) / 10;
