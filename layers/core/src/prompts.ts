// What each role is asked, and the shape of what it must answer. The tagged sections
// (<task>, <candidate index="1">, ...) keep the parts unambiguous for real models and let the
// offline lab read a request the way a model would.
import { z } from 'zod';
import type { Candidate, ChatMessage, ToolEvidence } from './types';

export const tag = (name: string, body: string, attrs = ''): string =>
  `<${name}${attrs ? ` ${attrs}` : ''}>\n${body}\n</${name}>`;

/** The task as text: the last user turn, with earlier turns as context. */
export function taskText(messages: readonly ChatMessage[]): string {
  if (messages.length === 1) return messages[0]!.content;
  return messages.map((m) => `[${m.role}] ${m.content}`).join('\n\n');
}

// ---------- target ----------

export function targetMessages(targetPrompt: string, conversation: readonly ChatMessage[]): ChatMessage[] {
  return [{ role: 'system', content: targetPrompt }, ...conversation.filter((m) => m.role !== 'system')];
}

// ---------- judge ----------

export const JUDGE_PROTOCOL = [
  'You compare candidate answers to one task.',
  'Before scoring you may call the tools you are offered to gather evidence (a reference answer, a calculation, ...).',
  'When you have what you need, reply with JSON only: {"scores":[{"candidate":<index>,"score":<0-10>,"rationale":"..."}]},',
  'one entry per candidate. Judge correctness first, then helpfulness and clarity; length alone is not quality.',
].join(' ');

export const judgeOutputSchema = z.strictObject({
  scores: z
    .array(
      z.strictObject({
        candidate: z.int().min(1),
        score: z.number().min(0).max(10),
        rationale: z.string(),
      }),
    )
    .min(1),
});
export type JudgeOutput = z.infer<typeof judgeOutputSchema>;

/** Candidates are shown 1-based in the order given (the caller shuffles for position-bias control). */
export function judgeMessages(judgePrompt: string, conversation: readonly ChatMessage[], shown: readonly Candidate[]): ChatMessage[] {
  const body = [
    tag('task', taskText(conversation)),
    ...shown.map((c, i) => tag('candidate', c.content, `index="${i + 1}"`)),
  ].join('\n\n');
  return [
    { role: 'system', content: `${judgePrompt}\n\n${JUDGE_PROTOCOL}` },
    { role: 'user', content: body },
  ];
}

// ---------- reward ----------

export const REWARD_PROTOCOL = [
  'You evaluate a preference pair made for training a model with DPO.',
  'A good pair has a chosen answer that is correct and clearly better than the rejected one, for a reason that matters.',
  'Reply with JSON only: {"score":<0-10>,"failure":"<none|chosen_incorrect|rejected_correct|no_contrast|judge_bias|other>","critique":"..."}.',
  'The critique names what went wrong and what the answering model or the judge should do differently.',
].join(' ');

export const REWARD_FAILURES = ['none', 'chosen_incorrect', 'rejected_correct', 'no_contrast', 'judge_bias', 'other'] as const;

export const rewardOutputSchema = z.strictObject({
  score: z.number().min(0).max(10),
  failure: z.enum(REWARD_FAILURES),
  critique: z.string(),
});
export type RewardOutput = z.infer<typeof rewardOutputSchema>;

export function rewardMessages(args: {
  conversation: readonly ChatMessage[];
  reference?: string;
  chosen: string;
  rejected: string;
  judgeRationale: string;
  evidence: readonly ToolEvidence[];
}): ChatMessage[] {
  const parts = [tag('task', taskText(args.conversation))];
  if (args.reference !== undefined) parts.push(tag('reference', args.reference));
  parts.push(tag('chosen', args.chosen), tag('rejected', args.rejected), tag('judge_rationale', args.judgeRationale));
  if (args.evidence.length > 0) {
    parts.push(tag('judge_evidence', args.evidence.map((e) => `${e.tool}(${JSON.stringify(e.arguments)}) -> ${e.ok ? '' : 'ERROR '}${e.output}`).join('\n')));
  }
  return [
    { role: 'system', content: REWARD_PROTOCOL },
    { role: 'user', content: parts.join('\n\n') },
  ];
}

// ---------- optimizer ----------

export const OPTIMIZER_PROTOCOL = [
  'You improve the prompts of a preference-data pipeline from a critique (a textual gradient).',
  'The target prompt is the system prompt of the model that answers; the judge prompt is the system prompt of the model that scores answers with tools.',
  'Change only what the critique calls for, keep what works, and keep each prompt general: never copy the task or its answer into a prompt.',
  'Reply with JSON only: {"target_prompt":"...","judge_prompt":"...","rationale":"..."}.',
].join(' ');

export const optimizerOutputSchema = z.strictObject({
  target_prompt: z.string().min(1),
  judge_prompt: z.string().min(1),
  rationale: z.string(),
});
export type OptimizerOutput = z.infer<typeof optimizerOutputSchema>;

export function optimizerMessages(args: {
  targetPrompt: string;
  judgePrompt: string;
  conversation: readonly ChatMessage[];
  chosen?: string;
  rejected?: string;
  failure: string;
  critique: string;
}): ChatMessage[] {
  const parts = [
    tag('target_prompt', args.targetPrompt),
    tag('judge_prompt', args.judgePrompt),
    tag('task', taskText(args.conversation)),
  ];
  if (args.chosen !== undefined) parts.push(tag('chosen', args.chosen));
  if (args.rejected !== undefined) parts.push(tag('rejected', args.rejected));
  parts.push(tag('failure', args.failure), tag('critique', args.critique));
  return [
    { role: 'system', content: OPTIMIZER_PROTOCOL },
    { role: 'user', content: parts.join('\n\n') },
  ];
}

/** Reads `<name ...>body</name>` sections back out of a message (used by the lab and tests). */
export function readTags(text: string, name: string): { attrs: string; body: string }[] {
  const re = new RegExp(`<${name}((?: [^>]*)?)>\\n([\\s\\S]*?)\\n</${name}>`, 'g');
  return [...text.matchAll(re)].map((m) => ({ attrs: (m[1] ?? '').trim(), body: m[2] ?? '' }));
}
