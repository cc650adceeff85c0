// The dataset's rows, in the formats trainers read, and the dataset card.
import type { RunConfig } from '../config';
import type { ItemRecord, RunRecord } from '../state/records';
import type { Attempt, ChatMessage, NormalizedInput, TokenUsage, UsageByRole } from '../types';

export interface DatasetSummary {
  runId: string;
  status: 'complete';
  source: RunRecord['source'];
  createdAt: string;
  finishedAt: string;
  counts: { lines: number; accepted: number; rejected: number; invalid: number; deadLettered: number };
  acceptedByIteration: Record<string, number>;
  /** Judge attempts per iteration and how many of them were accepted. */
  iterations: Record<string, { attempts: number; accepted: number; acceptanceRate: number }>;
  config: RunConfig;
  prompts: {
    initial: { target: string; judge: string };
    /** The prompt versions the accepted pairs were made with, most used first. */
    final: { role: 'target' | 'judge'; version: string; text: string; parent?: string; critique?: string; items: number }[];
    policy: {
      rule: RunConfig['policy'];
      incumbents: { role: 'target' | 'judge'; domain: string; version: string; text?: string; promotions: { version: string; from: string; at: string; reason: string }[] }[];
      versions: {
        role: 'target' | 'judge';
        domain: string;
        version: string;
        parent?: string;
        trials: number;
        acceptanceRate: number | null;
        meanReward: number | null;
        critique?: string;
        text?: string;
      }[];
    };
  };
  budget?: { maxTokens?: number; maxCostUsd?: number; usedTokens: number; estimatedCostUsd: number; stopped: string | null };
  usage: { byRole: UsageByRole; total: TokenUsage; perAcceptedPair: { calls: number | null; tokens: number | null } };
  /** True when any role ran on the offline model lab: the data is simulated, not model output. */
  simulation: boolean;
  files: string[];
}

const pairTexts = (attempt: Attempt) => {
  const j = attempt.judgement!;
  const text = (index: number) => attempt.candidates.find((c) => c.index === index)!.content;
  return { chosen: text(j.chosen), rejected: text(j.rejected) };
};

const assistant = (content: string): ChatMessage[] => [{ role: 'assistant', content }];

/** The prompt messages with the last user turn's content rewritten for images (unchanged without images). */
function withImageContent<P>(input: NormalizedInput, parts: (text: string, images: string[]) => P[]) {
  const images = input.images ?? [];
  if (images.length === 0) return input.messages;
  const last = input.messages.map((m) => m.role).lastIndexOf('user');
  return input.messages.map((m, i) => (i === last ? { role: m.role, content: parts(m.content, images) } : m));
}

/**
 * TRL conversational preference format: `prompt`, `chosen`, `rejected` as message lists. With
 * images, TRL's vision form: an `images` column and `{"type": "image"}` placeholders in the content.
 */
export function trlRecord(input: NormalizedInput, attempt: Attempt) {
  const { chosen, rejected } = pairTexts(attempt);
  const prompt = withImageContent(input, (text, images) => [...images.map(() => ({ type: 'image' })), { type: 'text', text }]);
  return {
    ...(input.images?.length ? { images: input.images } : {}),
    prompt,
    chosen: assistant(chosen),
    rejected: assistant(rejected),
  };
}

/** OpenAI preference fine-tuning (DPO) format; images as `image_url` content parts. */
export function openaiRecord(input: NormalizedInput, attempt: Attempt) {
  const { chosen, rejected } = pairTexts(attempt);
  const messages = withImageContent(input, (text, images) => [
    { type: 'text', text },
    ...images.map((url) => ({ type: 'image_url', image_url: { url } })),
  ]);
  return { input: { messages }, preferred_output: assistant(chosen), non_preferred_output: assistant(rejected) };
}

/** Everything known about an accepted pair: scores, rationales, evidence, lineage, cost. */
export function fullRecord(run: RunRecord, item: ItemRecord, input: NormalizedInput, attempt: Attempt) {
  const { chosen, rejected } = pairTexts(attempt);
  const j = attempt.judgement!;
  const score = (index: number) => j.scores.find((s) => s.index === index);
  return {
    id: input.id,
    line: input.line,
    runId: run.runId,
    format: input.format,
    domain: input.domain,
    prompt: input.messages,
    images: input.images,
    reference: input.reference,
    chosen,
    rejected,
    scores: { chosen: score(j.chosen)?.score, rejected: score(j.rejected)?.score, margin: j.margin, all: j.scores },
    rationales: { chosen: score(j.chosen)?.rationale, rejected: score(j.rejected)?.rationale },
    reward: attempt.reward,
    evidence: j.evidence,
    candidates: attempt.candidates.length,
    iteration: attempt.iteration,
    iterations: item.attempts.map((a) => ({ iteration: a.iteration, rewardScore: a.rewardScore, failure: a.failure })),
    prompts: item.prompts,
    models: Object.fromEntries(Object.entries(run.config.models).map(([role, m]) => [role, m.model])),
    usage: item.usage,
    metadata: input.metadata,
    source: { bucket: run.source.bucket, key: run.source.key, line: input.line },
  };
}

/** A line that produced no accepted pair: why, and its best attempt. */
export function rejectedRecord(item: ItemRecord, input: NormalizedInput, attempt: Attempt | undefined) {
  return {
    id: input.id,
    line: input.line,
    status: item.state,
    reason: item.reason,
    iterations: item.attempts.length,
    prompt: input.messages,
    best: attempt
      ? {
          iteration: attempt.iteration,
          reward: attempt.reward,
          failure: attempt.failure,
          chosen: attempt.judgement ? pairTexts(attempt).chosen : undefined,
          rejected: attempt.judgement ? pairTexts(attempt).rejected : undefined,
          candidates: attempt.candidates.length,
        }
      : undefined,
    usage: item.usage,
  };
}

export function datasetCard(s: DatasetSummary): string {
  const c = s.counts;
  const models = Object.entries(s.config.models)
    .map(([role, m]) => `| ${role} | \`${m.model}\` | ${m.baseURL ?? (m.model.startsWith('lab-') ? 'offline model lab (simulation)' : 'OpenAI')} |`)
    .join('\n');
  const iterations = Object.entries(s.acceptedByIteration)
    .map(([k, v]) => `iteration ${k}: ${v}`)
    .join(', ');
  const revised = s.prompts.final.filter((p) => p.version !== 'initial');
  return `# Preference dataset \`${s.runId}\`

${s.simulation ? '> **Simulation.** At least one role ran on the anyprefer offline model lab, a simulator. These pairs exercise the pipeline; they are not model output and not training data.\n' : ''}
Synthesized by anyprefer with the Anyprefer method: the target model sampled
${s.config.candidatesPerPrompt} candidates per prompt, a separate judge scored them with tools
(${s.config.tools.enabled.join(', ') || 'none'}), a reward model checked each pair (threshold ${s.config.rewardThreshold}/10),
and rejected pairs went through prompt feedback (up to ${s.config.maxIterations} iterations).

Source: \`s3://${s.source.bucket}/${s.source.key}\`, finished ${s.finishedAt}.

## Counts

| lines | accepted | rejected | invalid | dead-lettered |
| --- | --- | --- | --- | --- |
| ${c.lines} | ${c.accepted} | ${c.rejected} | ${c.invalid} | ${c.deadLettered} |

Accepted by iteration: ${iterations || 'none'}. Model calls per accepted pair: ${s.usage.perAcceptedPair.calls ?? 'n/a'};
tokens per accepted pair: ${s.usage.perAcceptedPair.tokens ?? 'n/a'}.

## Models

| role | model | endpoint |
| --- | --- | --- |
${models}

## Files

- \`pairs.trl.jsonl\`: TRL conversational preference format (\`prompt\`, \`chosen\`, \`rejected\` message lists), for \`DPOTrainer\`.
- \`pairs.openai.jsonl\`: OpenAI preference fine-tuning format (\`input.messages\`, \`preferred_output\`, \`non_preferred_output\`).
- \`pairs.full.jsonl\`: every accepted pair with judge scores, rationales, tool evidence, reward critique, prompt versions, usage and source line.
- \`rejected.jsonl\`: lines without an accepted pair (status \`rejected\` or \`deadLettered\`), with the reason and the best attempt.
- \`invalid.jsonl\`: input lines that could not be read, with line number and reason.
- \`manifest.json\`: counts, config, final prompts, usage.

## Prompts

${revised.length === 0 ? 'No accepted pair needed a revised prompt.' : `${revised.length} revised prompt version(s) produced accepted pairs; the most used:\n\n${revised
        .slice(0, 4)
        .map((p) => `- ${p.role} \`${p.version}\` (${p.items} pair(s)): ${p.text.replace(/\n/g, ' ').slice(0, 300)}`)
        .join('\n')}`}

## Prompt policy

${policyText(s)}

${s.budget ? `## Budget\n\nUsed ${s.budget.usedTokens} tokens (estimated $${s.budget.estimatedCostUsd}). ${s.budget.stopped ? `The run stopped taking new work: ${s.budget.stopped}.` : 'Within budget.'}\n` : ''}
## Licence

The prompts come from the source file and keep its licence; check it before you publish this dataset.
`;
}

function policyText(s: DatasetSummary): string {
  const promoted = s.prompts.policy.incumbents.flatMap((i) => i.promotions.map((p) => ({ ...p, role: i.role, domain: i.domain })));
  const iterations = Object.entries(s.iterations)
    .map(([k, v]) => `iteration ${k}: ${v.accepted}/${v.attempts} attempts accepted (${(v.acceptanceRate * 100).toFixed(0)}%)`)
    .join('; ');
  const lines = [
    `${s.prompts.policy.versions.filter((v) => v.version !== 'initial').length} revised prompt version(s) were tried. ${iterations}.`,
    promoted.length === 0
      ? 'No revision beat the incumbent prompts by the promotion rule, so the run-level prompts stayed as configured.'
      : `Promotions (a revision replaced the run-level prompt on evidence):\n\n${promoted.map((p) => `- ${p.role}/${p.domain}: \`${p.from}\` → \`${p.version}\`: ${p.reason}`).join('\n')}`,
  ];
  return lines.join('\n\n');
}
