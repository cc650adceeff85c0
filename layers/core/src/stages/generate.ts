// Generate: the target model samples N candidates under the item's current target prompt,
// in one request (`n`) where the endpoint supports it.
import { randomUUID } from 'node:crypto';
import { addUsageByRole } from '../models/usage';
import { targetMessages } from '../prompts';
import type { Candidate } from '../types';
import { attachImages, withResolvedImages } from './images';
import { budgetStop } from '../budget';
import { domainOf, promptsForNewItem } from '../policy';
import { advance, terminalOutcome, PermanentItemError, workKey, type StageContext, type StageOutcome } from './item';

export async function runGenerate({ deps, run, config, item, input }: StageContext): Promise<StageOutcome> {
  const stop = budgetStop(config, run);
  if (stop) {
    if (!run.budgetStop) await deps.state.updateRun(run.runId, { budgetStop: stop });
    return terminalOutcome(item, 'rejected', item.iteration === 1 ? `not started: ${stop}` : `stopped after ${item.iteration - 1} iteration(s): ${stop}`);
  }
  // A new item takes the run's current prompts (the policy's incumbents, or a revision to try);
  // an item sent back by feedback keeps the revision made for it.
  const prompts = item.iteration === 1 ? await promptsForNewItem(deps, config, item, domainOf(input.domain)) : item.prompts;
  const endpoint = config.models.target;
  const result = await deps.models(config).chat('target', {
    messages: attachImages(targetMessages(prompts.target.text, input.messages), (await withResolvedImages(deps, input)).images),
    n: config.candidatesPerPrompt,
    temperature: endpoint.temperature ?? 1,
    seed: config.seed + item.iteration,
  });
  const candidates: Candidate[] = result.choices
    .map((c, index) => ({ index, content: (c.content ?? '').trim() }))
    .filter((c) => c.content.length > 0);
  if (candidates.length === 0) throw new PermanentItemError('the target returned no non-empty candidate');

  // The key is unique per execution, so a racing duplicate never overwrites what the winner stored.
  const candidatesKey = workKey(item.runId, 'items', item.itemId, `iter-${item.iteration}`, `candidates-${randomUUID().slice(0, 8)}.json`);
  await deps.blobs.put(deps.buckets.output, candidatesKey, JSON.stringify(candidates), 'application/json');
  return advance(item, 'judge', item.iteration, {
    prompts,
    candidatesKey,
    usage: addUsageByRole(item.usage, 'target', result.usage),
  });
}
