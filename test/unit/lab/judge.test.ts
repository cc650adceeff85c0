import { describe, expect, it } from 'vitest';
import { DEFAULT_JUDGE_PROMPT } from '../../../layers/core/src/config';
import { judgeMessages, judgeOutputSchema, type JudgeOutput } from '../../../layers/core/src/prompts';
import { evaluate, formatNumber } from '../../../local/lab/arith';
import { loadKnowledge } from '../../../local/lab/knowledge';
import { labReply } from '../../../local/lab/roles';
import { chat, GSM8K, json, rows } from './helpers';

const knowledge = loadKnowledge([GSM8K]);
const TOOL_PROMPT = `${DEFAULT_JUDGE_PROMPT}\nAlways use your tools: check each candidate's final answer against the reference answer and verify its arithmetic with the calculator before scoring.`;
const QUESTION = rows[0]!.question; // Janet's ducks: 16 - 3 - 4 = 9, 9 * 2 = 18

const CORRECT_SHORT = 'The answer is 18.';
const CORRECT_WORKED = 'Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = 18 every day at the market.\nThe answer is 18.';
const ARITH_SLIP_LONG = [
  'Let me think about this carefully.',
  `First, let me restate the question: ${QUESTION}`,
  'Janet sells 16 - 3 - 4 = 9 duck eggs a day.\nShe makes 9 * 2 = 19 every day at the market.',
  'I went through every part of the problem, so I am confident in this result.',
  'The answer is 19.',
].join('\n\n');

const TOOLS = [
  { type: 'function', function: { name: 'reference', description: 'reference answer', parameters: { type: 'object', properties: {} } } },
  {
    type: 'function',
    function: { name: 'calculator', description: 'arithmetic', parameters: { type: 'object', properties: { expression: { type: 'string' } } } },
  },
];
const FORMAT = { type: 'json_schema', json_schema: { name: 'judgement', schema: {}, strict: true } };

function judge(prompt: string, candidates: string[], extra: Record<string, unknown> = {}, seed = 1) {
  const messages = judgeMessages(prompt, [{ role: 'user', content: QUESTION }], candidates.map((content, index) => ({ index, content })));
  return { messages, reply: labReply(chat('lab-judge', messages, { response_format: FORMAT, ...extra }), seed, knowledge)! };
}

const scores = (content: string | null) => judgeOutputSchema.parse(json(content)).scores.map((s) => s.score);

/** Runs the tool round with the pipeline's tools simulated, then asks for the scores. */
function judgeWithTools(candidates: string[], tools: (name: string, args: Record<string, string>) => string, seed = 1) {
  const first = judge(TOOL_PROMPT, candidates, { tools: TOOLS }, seed);
  const calls = first.reply.choices[0]!.toolCalls!;
  expect(calls.length).toBeGreaterThan(0);
  const messages = [
    ...first.messages,
    { role: 'assistant', content: null, tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })) },
    ...calls.map((c) => ({ role: 'tool', tool_call_id: c.id, content: tools(c.name, JSON.parse(c.arguments) as Record<string, string>) })),
  ];
  const reply = labReply(chat('lab-judge', messages as never, { tools: TOOLS, tool_choice: 'none', response_format: FORMAT }), seed, knowledge)!;
  return { calls, output: json<JudgeOutput>(reply.choices[0]!.content) };
}

const calculator = (expr: string) => formatNumber(evaluate(expr)!);

describe('lab judge (simulation)', () => {
  it('without evidence prefers the longer candidate (verbosity bias), with or without tools offered', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const [short, long] = scores(judge(DEFAULT_JUDGE_PROMPT, [CORRECT_SHORT, ARITH_SLIP_LONG], {}, seed).reply.choices[0]!.content);
      expect(long).toBeGreaterThan(short!);
    }
    const s = scores(judge(DEFAULT_JUDGE_PROMPT, [CORRECT_SHORT, ARITH_SLIP_LONG], { tools: TOOLS, tool_choice: 'none' }).reply.choices[0]!.content);
    expect(s[1]).toBeGreaterThan(s[0]!);
  });

  it('calls its tools when its prompt asks for them: reference plus one calculator call per distinct equation', () => {
    const { reply } = judge(TOOL_PROMPT, [CORRECT_WORKED, ARITH_SLIP_LONG], { tools: TOOLS });
    const choice = reply.choices[0]!;
    expect(choice.content).toBeNull();
    expect(choice.toolCalls!.map((c) => c.id)).toEqual(['call_1', 'call_2', 'call_3']);
    expect(choice.toolCalls!.map((c) => [c.name, JSON.parse(c.arguments)])).toEqual([
      ['reference', {}],
      ['calculator', { expression: '9 * 2' }],
      ['calculator', { expression: '16 - 3 - 4' }],
    ]);
  });

  it('calls tools about half the time with a prompt that does not mention them', () => {
    let called = 0;
    for (let seed = 1; seed <= 60; seed++) if (judge(DEFAULT_JUDGE_PROMPT, [CORRECT_WORKED, ARITH_SLIP_LONG], { tools: TOOLS }, seed).reply.choices[0]!.toolCalls) called++;
    expect(called).toBeGreaterThan(15);
    expect(called).toBeLessThan(45);
  });

  it('with a reference result scores the matching candidate high and the others low', () => {
    for (let seed = 1; seed <= 10; seed++) {
      const { output } = judgeWithTools([ARITH_SLIP_LONG, CORRECT_SHORT], (name, args) => (name === 'reference' ? '18' : calculator(args.expression!)), seed);
      const [wrong, right] = output.scores;
      expect(right!.score).toBeGreaterThanOrEqual(8);
      expect(wrong!.score).toBeLessThanOrEqual(4);
      expect(right!.rationale).toMatch(/reference/);
    }
    // A worked GSM8K answer as the reference (the pipeline may hand the whole solution) works too.
    const { output } = judgeWithTools([ARITH_SLIP_LONG, CORRECT_SHORT], (name, args) => (name === 'reference' ? rows[0]!.answer : calculator(args.expression!)));
    expect(output.scores[1]!.score).toBeGreaterThan(output.scores[0]!.score);
  });

  it('with calculator results only penalizes the arithmetic slip, citing the calculation', () => {
    const { output } = judgeWithTools([ARITH_SLIP_LONG, CORRECT_WORKED], (name, args) => (name === 'reference' ? 'ERROR: this task has no reference answer' : calculator(args.expression!)));
    const [slip, right] = output.scores;
    expect(slip!.score).toBeLessThanOrEqual(3);
    expect(slip!.rationale).toContain('9 * 2 = 19');
    expect(right!.score).toBeGreaterThan(slip!.score);
    expect(right!.score).toBeLessThanOrEqual(7);
  });

  it('reads evidence only from tool messages, never from its own knowledge', () => {
    // A "reference" that disagrees with the gold answer: the judge follows the tool.
    const { output } = judgeWithTools([CORRECT_SHORT, 'The answer is 20.'], (name, args) => (name === 'reference' ? '20' : calculator(args.expression!)));
    expect(output.scores[1]!.score).toBeGreaterThan(output.scores[0]!.score);
  });

  it('is deterministic per request and seed', () => {
    const a = judge(DEFAULT_JUDGE_PROMPT, [CORRECT_SHORT, CORRECT_WORKED, ARITH_SLIP_LONG]).reply;
    expect(judge(DEFAULT_JUDGE_PROMPT, [CORRECT_SHORT, CORRECT_WORKED, ARITH_SLIP_LONG]).reply).toEqual(a);
    expect(judge(DEFAULT_JUDGE_PROMPT, [CORRECT_SHORT, CORRECT_WORKED, ARITH_SLIP_LONG], {}, 2).reply).not.toEqual(a);
  });
});
