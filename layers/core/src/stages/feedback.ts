// Feedback: the optimizer turns the reward model's critique into revised target and judge
// prompts (a textual gradient); the revisions become new prompt versions for this item, which
// goes round again at the next iteration.
import { structuredCall } from '../models/structured';
import { addUsageByRole } from '../models/usage';
import { optimizerMessages, optimizerOutputSchema } from '../prompts';
import type { Attempt } from '../types';
import type { PromptRef } from '../state/records';
import { advance, type StageContext, type StageOutcome } from './item';

export async function runFeedback({ deps, config, item, input }: StageContext): Promise<StageOutcome> {
  const last = item.attempts.at(-1);
  if (!last) throw new Error(`item ${item.itemId} reached feedback without an attempt`);
  const attempt = JSON.parse(await deps.blobs.getText(deps.buckets.output, last.key)) as Attempt;
  const pick = (index: number | undefined) => attempt.candidates.find((c) => c.index === index)?.content;

  const revision = await structuredCall(
    deps.models(config),
    'optimizer',
    optimizerMessages({
      targetPrompt: item.prompts.target.text,
      judgePrompt: item.prompts.judge.text,
      conversation: input.messages,
      chosen: pick(attempt.judgement?.chosen),
      rejected: pick(attempt.judgement?.rejected),
      failure: attempt.failure ?? 'other',
      critique: attempt.reward?.critique ?? 'No critique was given.',
    }),
    optimizerOutputSchema,
    'prompt_revision',
    { temperature: config.models.optimizer.temperature ?? 0 },
  );
  const next = item.iteration + 1;
  const revise = (current: PromptRef, text: string): PromptRef =>
    text.trim() === current.text.trim()
      ? current
      : { version: `${item.itemId}.${next}`, text: text.trim(), parent: current.version, critique: attempt.reward?.critique };

  return advance(item, 'generate', next, {
    prompts: {
      target: revise(item.prompts.target, revision.value.target_prompt),
      judge: revise(item.prompts.judge, revision.value.judge_prompt),
    },
    usage: addUsageByRole(item.usage, 'optimizer', revision.usage),
  });
}
