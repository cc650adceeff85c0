// Simulated target model of the offline model lab (a simulation). On a known GSM8K problem each
// candidate is right or wrong with a probability set by the system prompt and the problem's
// difficulty; wrong answers are arithmetic slips (a calculator catches them) or reasoning slips (it
// cannot); verbosity does not track correctness.
import { formatNumber, sameNumber, evaluateTokens, type Token } from './arith';
import { renderSegments, type Knowledge, type Problem, type Segment } from './knowledge';
import { lastUserText, systemText, type LabReply, type LabRequest } from './protocol';
import type { Rng } from './rng';

// ---- model card: target ----
/** Chance a candidate is correct with a plain prompt. */
export const TARGET_BASE_ACCURACY = 0.35;
/** Added when the system prompt asks for step-by-step reasoning. */
export const TARGET_STEP_BONUS = 0.2;
/** Added when the system prompt asks to check or verify the arithmetic. */
export const TARGET_CHECK_BONUS = 0.15;
/** Accuracy never exceeds this (before difficulty). */
export const TARGET_MAX_ACCURACY = 0.75;
/** Subtracted for problems whose gold solution has more than TARGET_HARD_STEPS calculations. */
export const TARGET_HARD_PENALTY = 0.1;
export const TARGET_HARD_STEPS = 4;
/** Without a step-by-step instruction, share of correct answers given as a bare "The answer is N." */
export const TARGET_TERSE_CORRECT_SHARE = 0.5;
/** Share of wrong answers that are arithmetic slips (a false equation); the rest are reasoning slips. */
export const TARGET_ARITHMETIC_SLIP_SHARE = 0.6;
/** Arithmetic-slip share when the prompt asks to check the arithmetic. */
export const TARGET_ARITHMETIC_SLIP_SHARE_CHECKED = 0.3;
/** Chance a wrong answer is padded with filler and restatement. */
export const TARGET_FILLER_WRONG = 0.6;
/** Chance a correct answer is padded with filler and restatement. */
export const TARGET_FILLER_CORRECT = 0.3;
/** What counts as asking for step-by-step reasoning. */
export const STEP_BY_STEP_RE = /step[- ]by[- ]step|show (your )?work|reason/i;
/** What counts as asking to check arithmetic: both must match. */
export const CHECK_RE = /check|verify|double-check/i;
export const ARITHMETIC_RE = /arithmetic|calculation|math/i;

export interface TargetPromptTraits {
  stepByStep: boolean;
  checksArithmetic: boolean;
}

export function targetTraits(systemPrompt: string): TargetPromptTraits {
  return {
    stepByStep: STEP_BY_STEP_RE.test(systemPrompt),
    checksArithmetic: CHECK_RE.test(systemPrompt) && ARITHMETIC_RE.test(systemPrompt),
  };
}

/** Chance one candidate is correct for this prompt and problem. */
export function targetAccuracy(traits: TargetPromptTraits, problem: Pick<Problem, 'steps'>): number {
  let p = TARGET_BASE_ACCURACY;
  if (traits.stepByStep) p += TARGET_STEP_BONUS;
  if (traits.checksArithmetic) p += TARGET_CHECK_BONUS;
  p = Math.min(p, TARGET_MAX_ACCURACY);
  if (problem.steps > TARGET_HARD_STEPS) p -= TARGET_HARD_PENALTY;
  return p;
}

export type CandidateKind = 'correct' | 'arithmetic_slip' | 'reasoning_slip';

export function simulateTarget(req: LabRequest, rng: Rng, knowledge: Knowledge): LabReply {
  const question = lastUserText(req);
  const problem = knowledge.lookup(question);
  const traits = targetTraits(systemText(req));
  const choices = [];
  for (let i = 0; i < req.n; i++) {
    const r = rng.fork('choice', i);
    const content = problem ? answerKnown(problem, traits, r).text : answerUnknown(question, r);
    choices.push({ content });
  }
  return { choices };
}

/** One candidate answer to a known problem (exported for tests and benchmarks). */
export function answerKnown(problem: Problem, traits: TargetPromptTraits, rng: Rng): { kind: CandidateKind; text: string } {
  const correct = rng.chance(targetAccuracy(traits, problem));
  let kind: CandidateKind = 'correct';
  let body: string;
  if (correct) {
    const terse = !traits.stepByStep && rng.chance(TARGET_TERSE_CORRECT_SHARE);
    body = terse ? `The answer is ${formatNumber(problem.gold)}.` : workedSolution(problem.lines, problem.gold);
  } else {
    const slipShare = traits.checksArithmetic ? TARGET_ARITHMETIC_SLIP_SHARE_CHECKED : TARGET_ARITHMETIC_SLIP_SHARE;
    const slip = rng.chance(slipShare) ? arithmeticSlip(problem, rng) : undefined;
    if (slip) {
      kind = 'arithmetic_slip';
      body = slip;
    } else {
      kind = 'reasoning_slip';
      body = reasoningSlip(problem, rng);
    }
  }
  const padded = rng.chance(kind === 'correct' ? TARGET_FILLER_CORRECT : TARGET_FILLER_WRONG);
  return { kind, text: padded ? pad(body, problem.question, rng) : body };
}

function workedSolution(lines: readonly Segment[][], final: number): string {
  return [...lines.map(renderSegments).filter((l) => l.length > 0), `The answer is ${formatNumber(final)}.`].join('\n');
}

/** Position of the last clean equation: [line, segment]. */
function lastEquation(lines: readonly Segment[][]): [number, number] | undefined {
  for (let li = lines.length - 1; li >= 0; li--) {
    const line = lines[li]!;
    for (let si = line.length - 1; si >= 0; si--) if (line[si]!.kind === 'equation') return [li, si];
  }
  return undefined;
}

/** Replaces mentions of `from` with `to` in the prose after position [li, si]. */
function replaceLater(lines: Segment[][], li: number, si: number, from: number, to: number): void {
  const re = new RegExp(`(?<![\\d.,])${formatNumber(from).replace('.', '\\.')}(?![\\d]|[.,]\\d)`, 'g');
  for (let l = li; l < lines.length; l++) {
    const line = lines[l]!;
    for (let s = l === li ? si + 1 : 0; s < line.length; s++) {
      const seg = line[s]!;
      if (seg.kind === 'text') line[s] = { kind: 'text', text: seg.text.replace(re, formatNumber(to)) };
    }
  }
}

const cloneLines = (lines: readonly Segment[][]): Segment[][] => lines.map((l) => l.map((s) => ({ ...s })));

/** The last equation's result is off (a false equation); the final answer follows it. */
function arithmeticSlip(problem: Problem, rng: Rng): string | undefined {
  const at = lastEquation(problem.lines);
  if (!at) return undefined;
  const lines = cloneLines(problem.lines);
  const seg = lines[at[0]]![at[1]]! as Extract<Segment, { kind: 'equation' }>;
  const r = seg.result;
  const integer = Number.isInteger(problem.gold);
  const base = integer ? Math.round(r) : r;
  const raw = Math.abs(r) * rng.uniform(0.01, 0.1);
  const delta = integer ? Math.max(1, Math.round(raw)) : Math.max(0.01, Number(raw.toFixed(2)));
  let wrong = rng.chance(0.5) ? base + delta : base - delta;
  if (wrong < 0 && r >= 0) wrong = base + delta;
  if (sameNumber(wrong, problem.gold) || sameNumber(wrong, r)) wrong = base + delta * 2;
  if (sameNumber(wrong, problem.gold)) wrong = problem.gold + delta;
  lines[at[0]]![at[1]] = { ...seg, result: wrong };
  replaceLater(lines, at[0], at[1], r, wrong);
  return workedSolution(lines, wrong);
}

/** A wrong operand or operation in the last step, computed correctly: every equation is true. */
function reasoningSlip(problem: Problem, rng: Rng): string {
  const at = lastEquation(problem.lines);
  const gold = problem.gold;
  const acceptable = (v: number | undefined, old: number): v is number =>
    v !== undefined &&
    !sameNumber(v, gold) &&
    !sameNumber(v, old) &&
    (v >= 0 || gold < 0) &&
    (Number.isInteger(gold) ? Number.isInteger(v) : Math.abs(v * 100 - Math.round(v * 100)) < 1e-9);
  if (at) {
    const lines = cloneLines(problem.lines);
    const seg = lines[at[0]]![at[1]]! as Extract<Segment, { kind: 'equation' }>;
    for (const tokens of rng.shuffle(variants(seg.tokens, rng))) {
      const v = evaluateTokens(tokens);
      if (!acceptable(v, seg.result)) continue;
      lines[at[0]]![at[1]] = { ...seg, tokens, result: v };
      replaceLater(lines, at[0], at[1], seg.result, v);
      return workedSolution(lines, v);
    }
  }
  // No usable equation: a prose answer with a plausible wrong total and no calculation to check.
  const raw = Math.max(1, Math.abs(gold) * rng.uniform(0.1, 0.5));
  const unit = 10 ** Math.max(0, Math.floor(Math.log10(raw)) - 1);
  const off = Math.max(1, Math.round(raw / unit) * unit);
  const wrong = rng.chance(0.5) || gold - off < 0 ? gold + off : gold - off;
  const prose = problem.lines
    .map((l) => renderSegments(l.filter((s) => s.kind === 'text')))
    .filter((l) => l.length > 20)
    .slice(0, 2);
  return [...prose, `Putting these together gives ${formatNumber(wrong)}.`, `The answer is ${formatNumber(wrong)}.`].join('\n');
}

/** Plausible wrong versions of an expression: an operand off by a little, doubled or halved, or a swapped operation. */
function variants(tokens: readonly Token[], rng: Rng): Token[][] {
  const out: Token[][] = [];
  tokens.forEach((t, i) => {
    if (t.kind === 'num') {
      const options = [t.value + 1, t.value - 1, t.value + rng.int(2, 5), t.value * 2, t.value / 2];
      for (const v of options) {
        if (v <= 0 || sameNumber(v, t.value)) continue;
        const copy = [...tokens];
        copy[i] = { kind: 'num', value: v, text: formatNumber(v) };
        out.push(copy);
      }
    } else if (t.kind === 'op') {
      const swaps: Record<string, Array<'+' | '-' | '*' | '/'>> = { '+': ['-', '*'], '-': ['+'], '*': ['+', '/'], '/': ['*', '-'] };
      for (const op of swaps[t.text] ?? []) {
        const copy = [...tokens];
        copy[i] = { kind: 'op', text: op };
        out.push(copy);
      }
    }
  });
  return out;
}

const OPENERS = [
  'Let me think about this carefully.',
  "Let's work through this problem carefully, one piece at a time.",
  'This is a multi-step word problem, so let me be careful with each part.',
  'Okay, let me break this down.',
];
const RESTATE = ['First, let me restate the question:', 'To restate the problem:', 'We are told the following:'];
const CLOSERS = [
  'I went through every part of the problem, so I am confident in this result.',
  'Each step follows from the information given in the question.',
  'This accounts for everything described in the problem.',
];

/** Filler and restatement around an answer: length that says nothing about correctness. */
function pad(body: string, question: string, rng: Rng): string {
  const lines = body.split('\n');
  const final = lines.pop()!;
  const parts = [rng.pick(OPENERS), `${rng.pick(RESTATE)} ${question.replace(/\s+/g, ' ').trim()}`];
  if (lines.length > 0) parts.push(lines.join('\n'));
  parts.push(rng.pick(CLOSERS), final);
  return parts.join('\n\n');
}

// ---------- unknown questions: generic answers of varied quality ----------

const VAGUE = [
  'It depends on the situation, but in general the best approach is to consider the main factors and decide what fits your needs.',
  'There are many ways to approach this. Generally speaking, it is a good idea to keep things simple and be clear.',
  'That is a good question. The answer varies, but most people would agree it comes down to context and priorities.',
];
const POINTS: readonly (readonly [string, string])[] = [
  ['Clarify the goal', 'be explicit about what the result should achieve and who it is for'],
  ['Gather the key facts', 'collect the information the answer depends on before drawing conclusions'],
  ['Consider the alternatives', 'compare at least two options and note their trade-offs'],
  ['Be concrete', 'use specific examples rather than general statements'],
  ['Check the constraints', 'make sure the answer respects every condition stated in the request'],
  ['Structure the answer', 'present the main idea first, then the supporting details'],
  ['Review and refine', 'reread the result and remove anything that does not serve the goal'],
];

function topicOf(question: string): string {
  const first = question.replace(/\s+/g, ' ').trim().split(/(?<=[.?!])\s/)[0] ?? question;
  const words = first.replace(/[.?!:]+$/, '').split(' ');
  const topic = words.slice(0, 14).join(' ') + (words.length > 14 ? '…' : '');
  return topic.charAt(0).toLowerCase() + topic.slice(1);
}

/** A generic answer to a question the lab has no knowledge of: short and vague up to structured and detailed. */
export function answerUnknown(question: string, rng: Rng): string {
  const topic = topicOf(question);
  const quality = rng.pick([0, 0, 1, 1, 2, 2, 2, 3]);
  if (quality === 0) return rng.pick(VAGUE);
  if (quality === 1) {
    return `Regarding your request (${topic}): ${rng.pick(VAGUE)} ${rng.pick(POINTS)[1].replace(/^./, (c) => c.toUpperCase())}.`;
  }
  const count = quality === 2 ? rng.int(3, 4) : rng.int(5, 7);
  const points = rng.shuffle(POINTS).slice(0, count);
  const intro = quality === 3 ? `Here is a detailed answer to your request: ${topic}.\n\n` : `Here is how I would approach this: ${topic}.\n\n`;
  const list = points.map(([head, detail], i) => `${i + 1}. **${head}**: ${detail}.`).join('\n');
  const outro =
    quality === 3
      ? '\n\nIn summary, following these steps gives a complete, well-organized result. Let me know if you would like me to expand on any of them.'
      : '\n\nI hope this helps.';
  return intro + list + outro;
}
