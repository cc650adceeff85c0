// Feedback: the optimizer turns the reward model's critique into revised target and judge
// prompts (a textual gradient); the revisions become new prompt versions for this item, which
// goes round again at the next iteration.
import { structuredCall } from '../models/structured';
import { addUsageByRole } from '../models/usage';
import { optimizerMessages, optimizerOutputSchema } from '../prompts';
import type { Attempt } from '../types';
import { domainOf, recordRevision } from '../policy';
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
  const revise = (role: 'target' | 'judge', text: string) =>
    recordRevision(deps, { runId: item.runId, itemId: item.itemId, role, domain: domainOf(input.domain), current: item.prompts[role], text, critique: attempt.reward?.critique });

  return advance(item, 'generate', item.iteration + 1, {
    prompts: {
      target: await revise('target', revision.value.target_prompt),
      judge: await revise('judge', revision.value.judge_prompt),
    },
    usage: addUsageByRole(item.usage, 'optimizer', revision.usage),
  });
}
