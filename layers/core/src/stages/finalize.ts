// Finalize: when every item of a run is terminal, write the dataset, the reports, the manifest
// and the dataset card under datasets/<runId>/. Any number of finalize messages may arrive;
// the outputs are a deterministic function of the stored items, and the run moves to
// `complete` exactly once (a conditional write), with the manifest written last.
import type { Dependencies } from '../dependencies';
import { addUsage, emptyUsage } from '../models/usage';
import { jsonLinesUpload } from '../output/jsonl-upload';
import { datasetCard, fullRecord, openaiRecord, rejectedRecord, trlRecord, type DatasetSummary } from '../output/records';
import type { ItemRecord, RunRecord, TerminalCounts } from '../state/records';
import { ROLES, type Attempt, type FinalizeMessage, type TokenUsage, type UsageByRole } from '../types';
import { estimateCostUsd } from '../budget';
import { publishableConfig } from '../config';
import { INITIAL_VERSION, PROMPT_ROLES } from '../policy';
import { loadInput, workKey } from './item';

export const OUTPUT_FILES = {
  trl: 'pairs.trl.jsonl',
  openai: 'pairs.openai.jsonl',
  full: 'pairs.full.jsonl',
  rejected: 'rejected.jsonl',
  invalid: 'invalid.jsonl',
  manifest: 'manifest.json',
  card: 'README.md',
} as const;

const LOAD_CONCURRENCY = 16;

export async function runFinalize(deps: Dependencies, body: string): Promise<void> {
  const { runId } = JSON.parse(body) as FinalizeMessage;
  const run = await deps.state.getRun(runId);
  if (!run) throw new Error(`run ${runId} not found`);
  if (run.status === 'complete' || run.status === 'failed') return; // already finished: a duplicate
  const counts = await deps.state.terminalCounts(runId);
  if (!run.ingested || counts.total < (run.items ?? 0)) {
    deps.log.info('finalize asked before the run is complete', { runId, terminal: counts.total, items: run.items });
    return;
  }
  // Another finalize may have completed the run meanwhile: then its files stand.
  if (!(await deps.state.updateRun(runId, { status: 'finalizing' }, ['active', 'finalizing']))) return;
  const summary = await writeDataset(deps, run, counts);
  if (await deps.state.updateRun(runId, { status: 'complete', finishedAt: summary.finishedAt }, ['finalizing'])) {
    deps.log.info('run complete', { runId, ...summary.counts });
  }
}

async function writeDataset(deps: Dependencies, run: RunRecord, counts: TerminalCounts): Promise<DatasetSummary> {
  const bucket = deps.buckets.output;
  const key = (file: string) => `${run.outputPrefix}${file}`;
  const streams = {
    trl: jsonLinesUpload(deps.blobs, bucket, key(OUTPUT_FILES.trl)),
    openai: jsonLinesUpload(deps.blobs, bucket, key(OUTPUT_FILES.openai)),
    full: jsonLinesUpload(deps.blobs, bucket, key(OUTPUT_FILES.full)),
    rejected: jsonLinesUpload(deps.blobs, bucket, key(OUTPUT_FILES.rejected)),
  };

  const usage: UsageByRole = {};
  const acceptedByIteration: Record<string, number> = {};
  const finalPrompts = new Map<string, { role: 'target' | 'judge'; version: string; text: string; parent?: string; critique?: string; items: number }>();
  const written = { accepted: 0, rejected: 0, deadLettered: 0 };
  // Attempt-level acceptance per iteration: does feedback make later attempts succeed more often?
  const byIteration: Record<string, { attempts: number; accepted: number }> = {};

  try {
    for await (const page of pages(deps.state.listItems(run.runId), LOAD_CONCURRENCY)) {
      const loaded = await Promise.all(page.map((item) => loadTerminal(deps, item)));
      for (const { item, attempt, input } of loaded) {
        for (const a of item.attempts) {
          const entry = (byIteration[a.iteration] ??= { attempts: 0, accepted: 0 });
          entry.attempts++;
          if (item.state === 'accepted' && a === item.attempts.at(-1)) entry.accepted++;
        }
        for (const role of ROLES) {
          const u = item.usage[role];
          if (u) usage[role] = addUsage(usage[role] ?? emptyUsage(), u);
        }
        if (item.state === 'accepted' && attempt?.judgement) {
          written.accepted++;
          acceptedByIteration[item.iteration] = (acceptedByIteration[item.iteration] ?? 0) + 1;
          for (const role of ['target', 'judge'] as const) {
            const p = item.prompts[role];
            const entry = finalPrompts.get(`${role}:${p.version}`) ?? { role, ...p, items: 0 };
            entry.items++;
            finalPrompts.set(`${role}:${p.version}`, entry);
          }
          await streams.trl.write(trlRecord(input, attempt));
          await streams.openai.write(openaiRecord(input, attempt));
          await streams.full.write(fullRecord(run, item, input, attempt));
        } else {
          written[item.state === 'deadLettered' ? 'deadLettered' : 'rejected']++;
          await streams.rejected.write(rejectedRecord(item, input, attempt));
        }
      }
    }
  } catch (error) {
    // Abort every file: a failed pass must never replace a complete dataset with a cut-off one.
    await Promise.all(Object.values(streams).map((s) => s.abort(error as Error)));
    throw error;
  }
  await Promise.all(Object.values(streams).map((s) => s.finish()));
  if (written.accepted !== counts.accepted || written.rejected !== counts.rejected || written.deadLettered !== counts.deadLettered) {
    // The items are the truth for the files; the counters must agree with them.
    deps.log.error('terminal counters disagree with the items', { runId: run.runId, counts, written });
  }

  await copyInvalid(deps, run);
  const total = Object.values(usage).reduce<TokenUsage>((a, u) => addUsage(a, u), emptyUsage());
  const perPair = (n: number) => (written.accepted > 0 ? Math.round((n / written.accepted) * 100) / 100 : null);
  const summary: DatasetSummary = {
    runId: run.runId,
    status: 'complete',
    source: run.source,
    createdAt: run.createdAt,
    finishedAt: new Date().toISOString(),
    counts: {
      lines: run.lines ?? 0,
      accepted: written.accepted,
      rejected: written.rejected,
      invalid: run.invalid ?? 0,
      deadLettered: written.deadLettered,
    },
    acceptedByIteration,
    iterations: Object.fromEntries(
      Object.entries(byIteration).map(([k, v]) => [k, { ...v, acceptanceRate: Math.round((v.accepted / v.attempts) * 1000) / 1000 }]),
    ),
    config: publishableConfig(run.config),
    prompts: {
      initial: { target: run.config.prompts.target, judge: run.config.prompts.judge },
      final: [...finalPrompts.values()].sort((a, b) => b.items - a.items),
      policy: await policySummary(deps, run),
    },
    ...(run.budgetStop || run.config.budget.maxTokens !== undefined || run.config.budget.maxCostUsd !== undefined
      ? {
          budget: {
            maxTokens: run.config.budget.maxTokens,
            maxCostUsd: run.config.budget.maxCostUsd,
            usedTokens: run.usedTokens ?? 0,
            estimatedCostUsd: Math.round(estimateCostUsd(run.usage, run.config.budget.prices) * 10_000) / 10_000,
            stopped: run.budgetStop ?? null,
          },
        }
      : {}),
    usage: {
      byRole: usage,
      total,
      perAcceptedPair: { calls: perPair(total.calls), tokens: perPair(total.promptTokens + total.completionTokens) },
    },
    simulation: Object.values(run.config.models).some((m) => m.model.startsWith('lab-') && !m.baseURL),
    files: Object.values(OUTPUT_FILES),
  };
  await deps.blobs.put(bucket, key(OUTPUT_FILES.card), datasetCard(summary), 'text/markdown');
  await deps.blobs.put(bucket, key(OUTPUT_FILES.manifest), JSON.stringify(summary, null, 2), 'application/json');
  return summary;
}

/** The run-level prompts per role and domain, the promotions and why, and every version's evidence. */
async function policySummary(deps: Dependencies, run: RunRecord): Promise<DatasetSummary['prompts']['policy']> {
  const versions = await deps.state.listPromptVersions(run.runId);
  const domains = [...new Set(versions.map((v) => v.domain))].sort();
  const incumbents = [];
  for (const domain of domains) {
    for (const role of PROMPT_ROLES) {
      const policy = await deps.state.getPolicy(run.runId, role, domain);
      const version = policy?.incumbent ?? INITIAL_VERSION;
      const text = version === INITIAL_VERSION ? run.config.prompts[role] : versions.find((v) => v.version === version && v.role === role)?.text;
      incumbents.push({ role, domain, version, text, promotions: policy?.history ?? [] });
    }
  }
  return {
    rule: run.config.policy,
    incumbents,
    versions: versions
      .map((v) => ({
        role: v.role,
        domain: v.domain,
        version: v.version,
        parent: v.parent,
        trials: v.trials,
        acceptanceRate: v.trials ? Math.round((v.accepted / v.trials) * 1000) / 1000 : null,
        meanReward: v.trials ? Math.round((v.rewardSum / v.trials) * 100) / 100 : null,
        critique: v.critique,
        text: v.text,
      }))
      .sort((a, b) => a.role.localeCompare(b.role) || b.trials - a.trials),
  };
}

/** The attempt an item's output row shows: the accepted one, else the best-scored. */
async function loadTerminal(deps: Dependencies, item: ItemRecord) {
  const input = await loadInput(deps, item);
  const pick =
    item.state === 'accepted'
      ? item.attempts.at(-1)
      : [...item.attempts].sort((a, b) => (b.rewardScore ?? 0) - (a.rewardScore ?? 0) || b.iteration - a.iteration)[0];
  const attempt = pick ? (JSON.parse(await deps.blobs.getText(deps.buckets.output, pick.key)) as Attempt) : undefined;
  return { item, input, attempt };
}

async function copyInvalid(deps: Dependencies, run: RunRecord): Promise<void> {
  const source = workKey(run.runId, 'invalid.jsonl');
  const exists = await deps.blobs.head(deps.buckets.output, source);
  const target = `${run.outputPrefix}${OUTPUT_FILES.invalid}`;
  if (!exists) return deps.blobs.put(deps.buckets.output, target, '', 'application/x-ndjson');
  await deps.blobs.putStream(deps.buckets.output, target, await deps.blobs.getStream(deps.buckets.output, source), 'application/x-ndjson');
}

async function* pages<T>(source: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  let page: T[] = [];
  for await (const x of source) {
    page.push(x);
    if (page.length >= size) {
      yield page;
      page = [];
    }
  }
  if (page.length > 0) yield page;
}

/** A run that could not start (a bad config file): the manifest says why. */
export async function writeFailedRun(deps: Dependencies, run: RunRecord): Promise<void> {
  const manifest = { runId: run.runId, status: 'failed', error: run.error, source: run.source, createdAt: run.createdAt };
  await deps.blobs.put(deps.buckets.output, `${run.outputPrefix}${OUTPUT_FILES.manifest}`, JSON.stringify(manifest, null, 2), 'application/json');
}
