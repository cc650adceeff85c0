// Simulated judge of the offline model lab (a simulation). It learns answers only through its tools:
// a reference result makes it accurate, calculator results let it catch false equations, and with no
// evidence it falls back on a verbosity bias (longer looks better).
import { JUDGE_PROTOCOL, readTags, type JudgeOutput } from '../../layers/core/src/prompts';
import { canonicalExpression, findEquations, finalNumber, formatNumber, parseNumber, sameNumber, type Equation } from './arith';
import { attr, lastUserText, systemText, type LabReply, type LabRequest, type LabToolCall } from './protocol';
import type { Rng } from './rng';

// ---- model card: judge ----
/** Chance the judge calls its tools when offered them, with a prompt that does not ask for them. */
export const JUDGE_TOOL_USE_BASE = 0.5;
/** Chance the judge calls its tools when its prompt mentions a reference, tools, verifying or a calculator. */
export const JUDGE_TOOL_USE_PROMPTED = 1.0;
/** What in the judge prompt (before the protocol) makes it use its tools. */
export const JUDGE_TOOL_PROMPT_RE = /reference|tool|verify|calculat/i;
/** Most tool calls in one round. */
export const JUDGE_MAX_TOOL_CALLS = 8;
/** Score range for a candidate matching the reference answer, and for one that does not. */
export const JUDGE_REFERENCE_MATCH: readonly [number, number] = [8, 10];
export const JUDGE_REFERENCE_MISMATCH: readonly [number, number] = [1, 4];
/** Score range for a candidate with a calculation the calculator shows to be false. */
export const JUDGE_FALSE_EQUATION: readonly [number, number] = [1, 3];
/** Highest score for a candidate whose checked calculations are right but whose answer is unverified. */
export const JUDGE_UNVERIFIED_CAP = 7;
/** Verbosity bias without evidence: score = base + span * (length rank in [0,1]) ± noise. */
export const JUDGE_LENGTH_BASE = 4;
export const JUDGE_LENGTH_SPAN = 4;
export const JUDGE_LENGTH_NOISE = 1;

interface Candidate {
  index: number;
  text: string;
}

interface Evidence {
  /** The reference answer's number, when a reference tool result gives one. */
  reference?: number;
  referenceText?: string;
  /** Calculator results by canonical expression. */
  calculations: Map<string, number>;
}

export function simulateJudge(req: LabRequest, rng: Rng): LabReply {
  const user = lastUserText(req);
  const candidates: Candidate[] = readTags(user, 'candidate').map((t, i) => ({
    index: Number(attr(t.attrs, 'index') ?? i + 1),
    text: t.body,
  }));
  const judgePrompt = systemText(req).split(JUDGE_PROTOCOL)[0] ?? '';
  const hasToolResults = req.messages.some((m) => m.role === 'tool');
  const choices = [];
  for (let i = 0; i < req.n; i++) {
    const r = rng.fork('choice', i);
    if (req.tools.length > 0 && req.toolChoice !== 'none' && !hasToolResults && candidates.length > 0) {
      const prompted = JUDGE_TOOL_PROMPT_RE.test(judgePrompt) || req.toolChoice === 'required';
      const q = prompted ? JUDGE_TOOL_USE_PROMPTED : JUDGE_TOOL_USE_BASE;
      if (r.chance(q)) {
        const calls = planToolCalls(req.tools, candidates);
        if (calls.length > 0) {
          choices.push({ content: null, toolCalls: calls });
          continue;
        }
      }
    }
    const output = score(candidates, readEvidence(req), r);
    choices.push({ content: JSON.stringify(output) });
  }
  return { choices };
}

/** `reference` if offered, then `calculator` for each distinct equation in the candidates. */
export function planToolCalls(tools: readonly string[], candidates: readonly Candidate[]): LabToolCall[] {
  const calls: { name: string; args: Record<string, string> }[] = [];
  if (tools.includes('reference')) calls.push({ name: 'reference', args: {} });
  if (tools.includes('calculator')) {
    // Round-robin over candidates, each from its last calculation back (slips usually sit at the end).
    const queues = candidates.map((c) => findEquations(c.text).reverse());
    const seen = new Set<string>();
    while (queues.some((q) => q.length > 0)) {
      for (const q of queues) {
        const eq = q.shift();
        if (!eq || seen.has(eq.expression)) continue;
        seen.add(eq.expression);
        calls.push({ name: 'calculator', args: { expression: eq.expression } });
      }
    }
  }
  return calls.slice(0, JUDGE_MAX_TOOL_CALLS).map((c, i) => ({ id: `call_${i + 1}`, name: c.name, arguments: JSON.stringify(c.args) }));
}

/** What the tool messages say, matched to their calls through the assistant messages' tool_calls. */
export function readEvidence(req: LabRequest): Evidence {
  const calls = new Map<string, LabToolCall>();
  const evidence: Evidence = { calculations: new Map() };
  for (const m of req.messages) {
    if (m.role === 'assistant') for (const c of m.toolCalls) calls.set(c.id, c);
    if (m.role !== 'tool') continue;
    const call = calls.get(m.toolCallId);
    if (!call || isError(m.content)) continue;
    if (call.name === 'reference') {
      const n = referenceNumber(m.content);
      if (n !== undefined) {
        evidence.reference = n;
        evidence.referenceText = m.content.trim();
      }
    } else if (call.name === 'calculator') {
      let expression: string | undefined;
      try {
        const args = JSON.parse(call.arguments) as { expression?: unknown };
        if (typeof args.expression === 'string') expression = canonicalExpression(args.expression);
      } catch {
        expression = undefined;
      }
      const value = parseNumber(m.content.trim()) ?? firstNumber(m.content);
      if (expression !== undefined && value !== undefined) evidence.calculations.set(expression, value);
    }
  }
  return evidence;
}

const isError = (text: string): boolean => /^\s*(error\b|\{"error")/i.test(text);

function firstNumber(text: string): number | undefined {
  const m = /-?\d[\d,]*(?:\.\d+)?/.exec(text);
  return m ? parseNumber(m[0]) : undefined;
}

/** The number a reference answer gives: the whole text, `#### n`, or its final number. */
export function referenceNumber(text: string): number | undefined {
  const whole = parseNumber(text.trim());
  if (whole !== undefined) return whole;
  return finalNumber(text);
}

function score(candidates: readonly Candidate[], evidence: Evidence, rng: Rng): JudgeOutput {
  const lengthRank = ranks(candidates.map((c) => c.text.length));
  const lengthScore = (i: number) =>
    clamp(JUDGE_LENGTH_BASE + JUDGE_LENGTH_SPAN * lengthRank[i]! + rng.uniform(-JUDGE_LENGTH_NOISE, JUDGE_LENGTH_NOISE));
  const scores = candidates.map((c, i) => {
    const answer = finalNumber(c.text);
    if (evidence.reference !== undefined) {
      const ref = formatNumber(evidence.reference);
      if (answer !== undefined && sameNumber(answer, evidence.reference)) {
        return entry(c, rng.uniform(...JUDGE_REFERENCE_MATCH), `Its final answer, ${formatNumber(answer)}, matches the reference answer (${ref}).`);
      }
      const why = answer === undefined ? 'It gives no final number' : `Its final answer, ${formatNumber(answer)}, differs from the reference answer (${ref})`;
      return entry(c, rng.uniform(...JUDGE_REFERENCE_MISMATCH), `${why}; the answer is incorrect.`);
    }
    if (evidence.calculations.size > 0) {
      const checked = findEquations(c.text).filter((e) => evidence.calculations.has(e.expression));
      const wrong = checked.find((e) => !sameNumber(e.claimed, evidence.calculations.get(e.expression)!));
      if (wrong) return entry(c, rng.uniform(...JUDGE_FALSE_EQUATION), falseEquation(wrong, evidence.calculations.get(wrong.expression)!));
      const s = Math.min(JUDGE_UNVERIFIED_CAP, lengthScore(i));
      const why = checked.length > 0 ? `The calculator confirms its ${checked.length} calculation${checked.length > 1 ? 's' : ''}` : 'It shows no calculation to check';
      return entry(c, s, `${why}; ${lengthRank[i]! >= 0.5 ? 'a complete, well-explained answer' : 'a brief answer with little explanation'}, but the final answer is not verified.`);
    }
    const long = lengthRank[i]! >= 0.5;
    return entry(
      c,
      lengthScore(i),
      long
        ? 'A thorough answer that walks through the problem in detail and states a clear final answer.'
        : 'A brief answer that gives little explanation of how it was reached.',
    );
  });
  return { scores };
}

function falseEquation(eq: Equation, actual: number): string {
  return `The calculation ${eq.expression} = ${formatNumber(eq.claimed)} is wrong: the calculator gives ${formatNumber(actual)}, so the final answer cannot be trusted.`;
}

function entry(c: Candidate, score: number, rationale: string) {
  return { candidate: c.index, score: Math.round(clamp(score) * 10) / 10, rationale };
}

const clamp = (x: number): number => Math.max(0, Math.min(10, x));

/** Rank of each value in [0, 1] (ties share the average rank; a single value ranks 1). */
function ranks(values: readonly number[]): number[] {
  if (values.length <= 1) return values.map(() => 1);
  return values.map((v) => {
    const below = values.filter((w) => w < v).length;
    const equal = values.filter((w) => w === v).length - 1;
    return (below + equal / 2) / (values.length - 1);
  });
}
