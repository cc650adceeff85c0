// Generate: the target model samples N candidates under the item's current target prompt,
// in one request (`n`) where the endpoint supports it.
import { randomUUID } from 'node:crypto';
import { addUsageByRole } from '../models/usage';
import { targetMessages } from '../prompts';
import type { Candidate } from '../types';
import { attachImages, withResolvedImages } from './images';
import { advance, PermanentItemError, workKey, type StageContext, type StageOutcome } from './item';

export async function runGenerate({ deps, config, item, input }: StageContext): Promise<StageOutcome> {
  const endpoint = config.models.target;
  const result = await deps.models(config).chat('target', {
    messages: attachImages(targetMessages(item.prompts.target.text, input.messages), (await withResolvedImages(deps, input)).images),
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
    candidatesKey,
    usage: addUsageByRole(item.usage, 'target', result.usage),
  });
}
