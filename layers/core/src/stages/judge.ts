// Judge: the judge model gathers evidence with tools (function calling, bounded rounds), scores
// all candidates in one listwise call, the best and worst form the pair, and the reward model
// scores the pair. Accept, send to feedback, or reject when the iterations are used up.
import { randomUUID } from 'node:crypto';
import { modeSettings, toolsFor, type RunConfig } from '../config';
import { parseStructured, structuredCall, toStrictJsonSchema } from '../models/structured';
import { addUsage, addUsageByRole, emptyUsage } from '../models/usage';
import type { BlobStore, ModelGateway, ModelMessage, ToolCall } from '../ports';
import { judgeMessages, judgeOutputSchema, rewardMessages, rewardOutputSchema, type JudgeOutput } from '../prompts';
import { seededRandom, shuffled } from '../random';
import type { ToolRegistry } from '../tools/registry';
import type { Attempt, Candidate, CandidateScore, Judgement, NormalizedInput, TokenUsage, ToolEvidence } from '../types';
import { attachImages, withResolvedImages } from './images';
import { advance, terminalOutcome, workKey, type StageContext, type StageOutcome } from './item';

export async function runJudge(ctx: StageContext): Promise<StageOutcome> {
  const { deps, config, item, input } = ctx;
  if (!item.candidatesKey) throw new Error(`item ${item.itemId} reached judge without candidates`);
  const candidates = distinct(JSON.parse(await deps.blobs.getText(deps.buckets.output, item.candidatesKey)) as Candidate[]);
  const gateway = deps.models(config);
  const mode = modeSettings(config);
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
    const judged = await judgeWithBiasControls({
      gateway,
      tools: deps.tools(config),
      config,
      judgePrompt: item.prompts.judge.text,
      input: await withResolvedImages(deps, input),
      candidates,
      seedKey: [item.runId, item.itemId, item.iteration],
      evidenceStore: { blobs: deps.blobs, bucket: deps.buckets.output, prefix: workKey(item.runId, 'items', item.itemId, `iter-${item.iteration}`) },
      runId: item.runId,
    });
    usage = addUsageByRole(usage, mode.judgeRole, judged.usage);
    attempt.judgement = judged.judgement;
    if (judged.positionConsistent === false) {
      attempt.failure = 'position_inconsistent';
      attempt.reward = { score: 0, critique: 'The judge picked a different pair when the candidates were shown in reverse order; its preference is not reliable.' };
    } else if (judged.judgement.margin < config.minMargin) {
      attempt.failure = 'no_contrast';
      attempt.reward = {
        score: 0,
        critique: `The judge's best and worst scores differ by ${judged.judgement.margin}, less than the minimum margin ${config.minMargin}; no clear preference.`,
      };
    } else if (mode.rewardGate) {
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
  const score = attempt.reward?.score;
  const changes = {
    usage,
    attempts: [...item.attempts, { iteration: item.iteration, key: attemptKey, rewardScore: score ?? attempt.judgement?.margin ?? 0, failure: attempt.failure }],
  };
  if (attempt.judgement && !attempt.failure && !mode.rewardGate) {
    return terminalOutcome(item, 'accepted', `judge margin ${attempt.judgement.margin} ≥ ${config.minMargin} (mode ${config.mode}, no reward gate)`, changes);
  }
  // A failure the reward model or the judge named blocks acceptance whatever the score ('other' is advisory).
  const blocked = attempt.failure !== undefined && attempt.failure !== 'other';
  if (attempt.judgement && !blocked && score !== undefined && score >= config.rewardThreshold) {
    return terminalOutcome(item, 'accepted', `reward ${score} ≥ ${config.rewardThreshold}`, changes);
  }
  if (item.iteration < mode.maxIterations) return advance(item, 'feedback', item.iteration, changes);
  return terminalOutcome(
    item,
    'rejected',
    mode.rewardGate
      ? `no pair reached reward ${config.rewardThreshold} in ${item.iteration} iteration(s); best ${Math.max(...changes.attempts.map((a) => a.rewardScore ?? 0))}`
      : `no usable pair: ${attempt.failure}`,
    changes,
  );
}

/** Candidates with identical text would make a meaningless pair: keep the first of each. */
function distinct(candidates: Candidate[]): Candidate[] {
  const seen = new Set<string>();
  return candidates.filter((c) => !seen.has(c.content) && seen.add(c.content));
}

export interface JudgeRequest {
  gateway: ModelGateway;
  tools: ToolRegistry;
  config: RunConfig;
  judgePrompt: string;
  input: NormalizedInput;
  candidates: Candidate[];
  /** Identity of this judgement (run, item, iteration): seeds the candidate order. */
  seedKey: (string | number)[];
  /** Where tool outputs too large to keep inline go. */
  evidenceStore?: { blobs: BlobStore; bucket: string; prefix: string };
  runId?: string;
}

export interface JudgeResult {
  judgement: Judgement;
  usage: TokenUsage;
  /** With swap judging: whether the reversed order gave the same pair. */
  positionConsistent?: boolean;
}

/**
 * Listwise judging with the run's position-bias controls: candidates in a seeded random order
 * (`judging.shuffle`), and optionally a second judgement in the reverse order whose scores are
 * averaged in; the pair stands only when both orders agree (`judging.swap`).
 */
export async function judgeWithBiasControls(req: JudgeRequest): Promise<JudgeResult> {
  const order = req.config.judging.shuffle ? shuffled(req.candidates, seededRandom(req.config.seed, ...req.seedKey, 'judge-order')) : req.candidates;
  const first = await judgeOnce(req, order);
  if (!req.config.judging.swap) return first;
  const second = await judgeOnce(req, [...order].reverse());
  const scores = first.judgement.scores.map((s) => {
    const other = second.judgement.scores.find((o) => o.index === s.index)!;
    return { index: s.index, score: Math.round(((s.score + other.score) / 2) * 1000) / 1000, rationale: s.rationale };
  });
  const agree = first.judgement.chosen === second.judgement.chosen && first.judgement.rejected === second.judgement.rejected;
  return {
    judgement: { ...pairOf(scores), evidence: [...first.judgement.evidence, ...second.judgement.evidence] },
    usage: addUsage(first.usage, second.usage),
    positionConsistent: agree,
  };
}

const EVIDENCE_INLINE_CHARS = 2_000;

/** One listwise judgement of the candidates in the order shown, with bounded tool rounds. */
async function judgeOnce(req: JudgeRequest, shown: Candidate[]): Promise<JudgeResult> {
  const { gateway, tools, config, input } = req;
  const judgeRole = modeSettings(config).judgeRole;
  const temperature = config.models[judgeRole].temperature ?? 0;
  const messages: ModelMessage[] = attachImages(judgeMessages(req.judgePrompt, input.messages, shown), input.images);
  const specs = tools.specs(toolsFor(config, input.domain));
  const offered = new Set(specs.map((t) => t.name));
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
    const res = await gateway.chat(judgeRole, { messages, tools: specs, jsonSchema, temperature, seed: config.seed });
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
      const result = offered.has(call.name)
        ? await tools.run(call, { reference: input.reference, domain: input.domain, runId: req.runId }, round)
        : refused(call, round);
      messages.push({ role: 'tool', toolCallId: call.id, content: result.ok ? result.output : `ERROR: ${result.output}` });
      evidence.push(await keepEvidence(req, result, evidence.length));
    }
  }
  if (!output) {
    // Tools stay declared (the history holds tool calls) but may not be called again.
    const final = await structuredCall(gateway, judgeRole, messages, schema, 'candidate_scores', {
      temperature,
      ...(evidence.length > 0 ? { tools: specs, toolChoice: 'none' as const } : {}),
    });
    usage = addUsage(usage, final.usage);
    output = final.value;
  }

  const scores: CandidateScore[] = output.scores.map((s) => ({ index: shown[s.candidate - 1]!.index, score: s.score, rationale: s.rationale }));
  return { judgement: { ...pairOf(scores), evidence }, usage };
}

/** Best and worst candidate (ties go to the lower index) and their margin. */
function pairOf(scores: CandidateScore[]): Omit<Judgement, 'evidence'> {
  const ranked = [...scores].sort((a, b) => b.score - a.score || a.index - b.index);
  const best = ranked[0]!;
  const worst = ranked[ranked.length - 1]!;
  return {
    scores: [...scores].sort((a, b) => a.index - b.index),
    chosen: best.index,
    rejected: worst.index,
    margin: Math.round((best.score - worst.score) * 1000) / 1000,
  };
}

function refused(call: ToolCall, round: number): ToolEvidence {
  return { round, tool: call.name, arguments: call.arguments, ok: false, output: `tool "${call.name}" was not offered for this task`, durationMs: 0 };
}

/** Evidence stays inline up to a few KB; the full output of a larger one goes to S3. */
async function keepEvidence(req: JudgeRequest, e: ToolEvidence, n: number): Promise<ToolEvidence> {
  if (e.output.length <= EVIDENCE_INLINE_CHARS || !req.evidenceStore) return e;
  const { blobs, bucket, prefix } = req.evidenceStore;
  const blobKey = `${prefix}/evidence-${randomUUID().slice(0, 8)}-${n}.txt`;
  await blobs.put(bucket, blobKey, e.output, 'text/plain; charset=utf-8');
  return { ...e, output: `${e.output.slice(0, EVIDENCE_INLINE_CHARS)}…[full output at ${blobKey}]`, blobKey };
}

function coversAll(output: JudgeOutput, count: number): boolean {
  const seen = new Set(output.scores.map((s) => s.candidate));
  return output.scores.length === count && seen.size === count && [...seen].every((i) => i >= 1 && i <= count);
}
