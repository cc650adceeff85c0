// Judge: the judge model gathers evidence with tools (function calling, bounded rounds), scores
// all candidates in one listwise call, the best and worst form the pair, and the reward model
// scores the pair. Accept, send to feedback, or reject when the iterations are used up.
import { randomUUID } from 'node:crypto';
import { toolsFor, type RunConfig } from '../config';
import { parseStructured, structuredCall, toStrictJsonSchema } from '../models/structured';
import { addUsage, addUsageByRole, emptyUsage } from '../models/usage';
import type { ModelGateway, ModelMessage } from '../ports';
import { judgeMessages, judgeOutputSchema, rewardMessages, rewardOutputSchema, type JudgeOutput } from '../prompts';
import { seededRandom, shuffled } from '../random';
import type { ToolRegistry } from '../tools/registry';
import type { Attempt, Candidate, CandidateScore, Judgement, NormalizedInput, TokenUsage, ToolEvidence } from '../types';
import { advance, terminalOutcome, workKey, type StageContext, type StageOutcome } from './item';

export async function runJudge(ctx: StageContext): Promise<StageOutcome> {
  const { deps, config, item, input } = ctx;
  if (!item.candidatesKey) throw new Error(`item ${item.itemId} reached judge without candidates`);
  const candidates = distinct(JSON.parse(await deps.blobs.getText(deps.buckets.output, item.candidatesKey)) as Candidate[]);
  const gateway = deps.models(config);
  const attempt: Attempt = {
    iteration: item.iteration,
    targetPromptVersion: item.prompts.target.version,
    judgePromptVersion: item.prompts.judge.version,
    candidates,
  };
  let usage = item.usage;

  if (candidates.length < 2) {
    attempt.failure = 'no_contrast';
    attempt.reward = { score: 0, critique: 'The target produced fewer than two distinct answers, so no pair can be formed. Encourage varied, worked answers.' };
  } else {
    const judged = await judgeCandidates(gateway, deps.tools, config, item.prompts.judge.text, input, candidates, order(config, item));
    usage = addUsageByRole(usage, 'judge', judged.usage);
    attempt.judgement = judged.judgement;
    if (judged.judgement.margin < config.minMargin) {
      attempt.failure = 'no_contrast';
      attempt.reward = {
        score: 0,
        critique: `The judge's best and worst scores differ by ${judged.judgement.margin}, less than the minimum margin ${config.minMargin}; no clear preference.`,
      };
    } else {
      const chosen = candidates.find((c) => c.index === judged.judgement.chosen)!;
      const rejected = candidates.find((c) => c.index === judged.judgement.rejected)!;
      const reward = await structuredCall(
        gateway,
        'reward',
        rewardMessages({
          conversation: input.messages,
          reference: input.reference,
          chosen: chosen.content,
          rejected: rejected.content,
          judgeRationale: judged.judgement.scores.find((s) => s.index === chosen.index)?.rationale ?? '',
          evidence: judged.judgement.evidence,
        }),
        rewardOutputSchema,
        'pair_review',
        { temperature: config.models.reward.temperature ?? 0 },
      );
      usage = addUsageByRole(usage, 'reward', reward.usage);
      attempt.reward = { score: reward.value.score, critique: reward.value.critique };
      if (reward.value.failure !== 'none') attempt.failure = reward.value.failure;
    }
  }

  const attemptKey = workKey(item.runId, 'items', item.itemId, `iter-${item.iteration}`, `attempt-${randomUUID().slice(0, 8)}.json`);
  await deps.blobs.put(deps.buckets.output, attemptKey, JSON.stringify(attempt), 'application/json');
  const score = attempt.reward?.score ?? 0;
  const changes = {
    usage,
    attempts: [...item.attempts, { iteration: item.iteration, key: attemptKey, rewardScore: score, failure: attempt.failure }],
  };
  if (attempt.judgement && score >= config.rewardThreshold) return terminalOutcome(item, 'accepted', `reward ${score} ≥ ${config.rewardThreshold}`, changes);
  if (item.iteration < config.maxIterations) return advance(item, 'feedback', item.iteration, changes);
  return terminalOutcome(
    item,
    'rejected',
    `no pair reached reward ${config.rewardThreshold} in ${config.maxIterations} iteration(s); best ${Math.max(...changes.attempts.map((a) => a.rewardScore ?? 0))}`,
    changes,
  );
}

/** Candidates with identical text would make a meaningless pair: keep the first of each. */
function distinct(candidates: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return candidates.filter((c) => !seen.has(c.content) && seen.add(c.content));
}

/** Candidate order is shuffled for every judge call (position-bias control), reproducibly. */
function order(config: RunConfig, item: { runId: string; itemId: string; iteration: number }): () => number {
  return seededRandom(config.seed, item.runId, item.itemId, item.iteration, 'judge-order');
}

export async function judgeCandidates(
  gateway: ModelGateway,
  tools: ToolRegistry,
  config: RunConfig,
  judgePrompt: string,
  input: NormalizedInput,
  candidates: Candidate[],
  random: () => number,
): Promise<{ judgement: Judgement; usage: TokenUsage }> {
  const shown = shuffled(candidates, random);
  const messages: ModelMessage[] = judgeMessages(judgePrompt, input.messages, shown);
  const specs = tools.specs(toolsFor(config, input.domain));
  const schema = judgeOutputSchema.refine((o) => coversAll(o, shown.length), {
    message: `score every candidate exactly once, indices 1..${shown.length}`,
  });
  const jsonSchema = { name: 'candidate_scores', schema: toStrictJsonSchema(judgeOutputSchema) };
  const evidence: ToolEvidence[] = [];
  let usage = emptyUsage();
  let output: JudgeOutput | undefined;

  // Tool rounds: the judge either asks for tools or answers. A malformed answer falls through
  // to the structured call below, which has its own repair attempt.
  for (let round = 1; round <= config.tools.maxRounds && specs.length > 0 && !output; round++) {
    const res = await gateway.chat('judge', { messages, tools: specs, jsonSchema, temperature: config.models.judge.temperature ?? 0, seed: config.seed });
    usage = addUsage(usage, res.usage);
    const choice = res.choices[0];
    if (!choice) break;
    if (choice.toolCalls.length === 0) {
      const parsed = parseStructured(choice.content ?? '', schema);
      if (parsed.ok) output = parsed.value;
      break;
    }
    messages.push({ role: 'assistant', content: choice.content, toolCalls: choice.toolCalls });
    for (const call of choice.toolCalls) {
      const result = await tools.run(call, { reference: input.reference, domain: input.domain }, round);
      evidence.push(result);
      messages.push({ role: 'tool', toolCallId: call.id, content: result.ok ? result.output : `ERROR: ${result.output}` });
    }
  }
  if (!output) {
    // Tools stay declared (the history holds tool calls) but may not be called again.
    const final = await structuredCall(gateway, 'judge', messages, schema, 'candidate_scores', {
      temperature: config.models.judge.temperature ?? 0,
      ...(evidence.length > 0 ? { tools: specs, toolChoice: 'none' as const } : {}),
    });
    usage = addUsage(usage, final.usage);
    output = final.value;
  }

  const scores: CandidateScore[] = output.scores.map((s) => ({ index: shown[s.candidate - 1]!.index, score: s.score, rationale: s.rationale }));
  const ranked = [...scores].sort((a, b) => b.score - a.score || a.index - b.index);
  const best = ranked[0]!;
  const worst = ranked[ranked.length - 1]!;
  return {
    judgement: { scores: scores.sort((a, b) => a.index - b.index), evidence, chosen: best.index, rejected: worst.index, margin: Math.round((best.score - worst.score) * 1000) / 1000 },
    usage,
  };
}

function coversAll(output: JudgeOutput, count: number): boolean {
  const seen = new Set(output.scores.map((s) => s.candidate));
  return output.scores.length === count && seen.size === count && [...seen].every((i) => i >= 1 && i <= count);
}
