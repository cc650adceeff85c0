// `anyprefer status [RUN]`: one run's progress (items per stage, terminal counts, model usage so
// far) and the pipeline's queue depths; without RUN, the latest runs.
import { GetQueueAttributesCommand, type SQSClient } from '@aws-sdk/client-sqs';
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  DynamoStateStore,
  estimateCostUsd,
  ROLES,
  STAGES,
  TABLE,
  type ItemState,
  type QueueName,
  type RunRecord,
  type TerminalCounts,
  type TokenUsage,
  type UsageByRole,
} from '@anyprefer/core';
import {
  CONNECTION_USAGE,
  connect,
  connectionFlags,
  defaultIo,
  numberFlag,
  parseCommandArgs,
  runCommand,
  UsageError,
  type CommandIo,
} from './options';
import { table } from './format';
import type { ResolvedStack, StackResources } from './stack';

export const STATUS_USAGE = `usage: anyprefer status [RUN] (--stack NAME | --resources FILE) [--json] [--watch [--timeout S]]

Without RUN: the latest runs. With RUN: its items per stage, terminal counts, model calls and
tokens so far, and the depth of every stage queue and dead-letter queue.
  --limit N                  runs listed without RUN (default 10)
  --price-per-1k-tokens USD  also estimate the model cost so far at this price (prompt and
                             completion tokens alike)
  --json                     print the same data as JSON (with --watch: one line per refresh)
  --watch                    refresh every 5 s until the run is complete or failed
  --timeout S                give up watching after S seconds (default 3600; exit 1)
${CONNECTION_USAGE}`;

const ITEM_STATES: readonly ItemState[] = ['generate', 'judge', 'feedback', 'accepted', 'rejected', 'deadLettered'];

export interface QueueDepth {
  /** ApproximateNumberOfMessages: waiting to be received. */
  visible: number;
  /** ApproximateNumberOfMessagesNotVisible: received, being processed (or waiting to be retried). */
  inFlight: number;
}

export interface StageQueues {
  queue: QueueDepth;
  deadLetter: QueueDepth;
}

export interface RunReport {
  runId: string;
  found: boolean;
  run?: RunRecord & { elapsedSeconds: number };
  /** The run's terminal counters (exact under duplicate delivery). */
  terminal?: TerminalCounts;
  /** Items not yet terminal: items − terminal; null until ingest has counted the items. */
  inProgress?: number | null;
  /** The run's items by their current state (its progress per stage). */
  itemsByState?: Record<ItemState, number>;
  usage?: {
    byRole: UsageByRole;
    total: TokenUsage & { tokens: number };
    /** Only with --price-per-1k-tokens. */
    estimate?: { pricePer1kTokens: number; usd: number };
    /** At the run config's per-role prices (`budget.prices`), when it has any. */
    costUsd?: number;
  };
  /** The run's budget and whether it stopped the run taking new work. */
  budget?: { maxTokens?: number; maxCostUsd?: number; stopped: string | null };
  /** Queue depths of the whole pipeline (every run's messages). */
  queues: Record<QueueName, StageQueues>;
}

export interface RunListReport {
  runs: Pick<RunRecord, 'runId' | 'status' | 'createdAt' | 'finishedAt' | 'lines' | 'items' | 'invalid' | 'source' | 'error'>[];
  queues: Record<QueueName, StageQueues>;
}

export function statusCommand(args: string[], io: CommandIo = defaultIo): Promise<number> {
  return runCommand('status', STATUS_USAGE, io, args, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      json: { type: 'boolean', default: false },
      watch: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      interval: { type: 'string' }, // seconds between refreshes; for tests (default 5)
      limit: { type: 'string' },
      'price-per-1k-tokens': { type: 'string' },
    });
    if (positionals.length > 1) throw new UsageError('expected at most one run id');
    const runId = positionals[0];
    if (values.watch && !runId) throw new UsageError('--watch needs a RUN');
    const limit = numberFlag(values.limit, '--limit', 10, { integer: true, min: 1 });
    const price = values['price-per-1k-tokens'] === undefined ? undefined : numberFlag(values['price-per-1k-tokens'], '--price-per-1k-tokens', 0);
    const timeoutMs = numberFlag(values.timeout, '--timeout', 3600) * 1000;
    const intervalMs = numberFlag(values.interval, '--interval', 5, { min: 0.05 }) * 1000;

    const stack = await connect(values);
    try {
      if (!runId) {
        const report = await listReport(stack, limit);
        io.out(values.json ? JSON.stringify(report, null, 2) : formatRunList(report));
        return 0;
      }
      if (!values.watch) {
        const report = await runReport(stack, runId, price);
        io.out(values.json ? JSON.stringify(report, null, 2) : formatRunReport(report, stack, connectionFlags(values)));
        if (!report.found) {
          if (!values.json) io.err(`run ${runId} not found; a run appears once ingest has read its S3 event (see the ingest queue above)`);
          return 1;
        }
        return 0;
      }

      const deadline = Date.now() + timeoutMs;
      const clear = !values.json && io === defaultIo && process.stdout.isTTY;
      for (;;) {
        const report = await runReport(stack, runId, price);
        if (values.json) io.out(JSON.stringify(report));
        else {
          if (clear) process.stdout.write('\x1b[2J\x1b[H');
          io.out(`${new Date().toISOString()}\n${formatRunReport(report, stack, connectionFlags(values))}\n`);
        }
        const status = report.run?.status;
        if (status === 'complete') return 0;
        if (status === 'failed') return 1;
        if (Date.now() + intervalMs > deadline) {
          io.err(`anyprefer status: run ${runId} is ${status ?? 'not started'} after ${Math.round(timeoutMs / 1000)} s; stopped watching`);
          return 1;
        }
        await new Promise((r) => setTimeout(r, intervalMs));
      }
    } finally {
      stack.close();
    }
  });
}

export async function runReport(stack: ResolvedStack, runId: string, pricePer1kTokens?: number): Promise<RunReport> {
  const state = new DynamoStateStore(stack.clients.dynamo, stack.outputs.table);
  const [run, queues] = await Promise.all([state.getRun(runId), queueDepths(stack.clients.sqs, stack.outputs)]);
  if (!run) return { runId, found: false, queues };
  const [terminal, items] = await Promise.all([state.terminalCounts(runId), itemSummary(stack, runId)]);
  const end = run.finishedAt ? Date.parse(run.finishedAt) : Date.now();
  const tokens = items.total.promptTokens + items.total.completionTokens;
  return {
    runId,
    found: true,
    run: { ...run, elapsedSeconds: Math.max(0, Math.round((end - Date.parse(run.createdAt)) / 1000)) },
    terminal,
    inProgress: run.ingested && run.items !== undefined ? Math.max(0, run.items - terminal.total) : null,
    itemsByState: items.byState,
    usage: {
      byRole: items.byRole,
      total: { ...items.total, tokens },
      ...(pricePer1kTokens !== undefined
        ? { estimate: { pricePer1kTokens, usd: Math.round((tokens / 1000) * pricePer1kTokens * 10_000) / 10_000 } }
        : {}),
      ...(Object.keys(run.config.budget?.prices ?? {}).length > 0
        ? { costUsd: Math.round(estimateCostUsd(items.byRole, run.config.budget.prices) * 10_000) / 10_000 }
        : {}),
    },
    ...(run.config.budget?.maxTokens !== undefined || run.config.budget?.maxCostUsd !== undefined || run.budgetStop
      ? { budget: { maxTokens: run.config.budget?.maxTokens, maxCostUsd: run.config.budget?.maxCostUsd, stopped: run.budgetStop ?? null } }
      : {}),
    queues,
  };
}

export async function listReport(stack: ResolvedStack, limit: number): Promise<RunListReport> {
  const state = new DynamoStateStore(stack.clients.dynamo, stack.outputs.table);
  const [runs, queues] = await Promise.all([state.listRuns(limit), queueDepths(stack.clients.sqs, stack.outputs)]);
  return {
    runs: runs.map((r) => ({
      runId: r.runId,
      status: r.status,
      createdAt: r.createdAt,
      ...(r.finishedAt ? { finishedAt: r.finishedAt } : {}),
      ...(r.lines !== undefined ? { lines: r.lines } : {}),
      ...(r.items !== undefined ? { items: r.items } : {}),
      ...(r.invalid !== undefined ? { invalid: r.invalid } : {}),
      source: r.source,
      ...(r.error ? { error: r.error } : {}),
    })),
    queues,
  };
}

/**
 * Items by state and usage summed per role, from the run's item records (only those two
 * attributes are read). Key layout: layers/core/src/adapters/dynamo-state-store.ts.
 */
async function itemSummary(stack: ResolvedStack, runId: string) {
  const byState = Object.fromEntries(ITEM_STATES.map((s) => [s, 0])) as Record<ItemState, number>;
  const byRole: UsageByRole = {};
  let start: Record<string, unknown> | undefined;
  do {
    const page = await stack.clients.dynamo.send(
      new QueryCommand({
        TableName: stack.outputs.table,
        KeyConditionExpression: '#pk = :pk AND begins_with(#sk, :item)',
        ExpressionAttributeNames: { '#pk': TABLE.partitionKey, '#sk': TABLE.sortKey, '#state': 'state', '#usage': 'usage' },
        ExpressionAttributeValues: { ':pk': `RUN#${runId}`, ':item': 'ITEM#' },
        ProjectionExpression: '#state, #usage',
        ExclusiveStartKey: start,
      }),
    );
    for (const item of page.Items ?? []) {
      const s = item.state as ItemState;
      if (s in byState) byState[s]++;
      for (const role of ROLES) {
        const u = (item.usage as UsageByRole | undefined)?.[role];
        if (!u) continue;
        const sum = (byRole[role] ??= { calls: 0, promptTokens: 0, completionTokens: 0 });
        sum.calls += Number(u.calls ?? 0);
        sum.promptTokens += Number(u.promptTokens ?? 0);
        sum.completionTokens += Number(u.completionTokens ?? 0);
      }
    }
    start = page.LastEvaluatedKey;
  } while (start);
  const total: TokenUsage = { calls: 0, promptTokens: 0, completionTokens: 0 };
  for (const u of Object.values(byRole)) {
    total.calls += u.calls;
    total.promptTokens += u.promptTokens;
    total.completionTokens += u.completionTokens;
  }
  return { byState, byRole, total };
}

export async function queueDepths(sqs: SQSClient, outputs: StackResources): Promise<Record<QueueName, StageQueues>> {
  const depth = async (url: string): Promise<QueueDepth> => {
    const { Attributes: a = {} } = await sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: url,
        AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'],
      }),
    );
    return { visible: Number(a.ApproximateNumberOfMessages ?? 0), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) };
  };
  const entries = await Promise.all(
    STAGES.map(async (s) => {
      const q = outputs.queues[s.name];
      const [queue, deadLetter] = await Promise.all([depth(q.url), depth(q.dlqUrl)]);
      return [s.name, { queue, deadLetter }] as const;
    }),
  );
  return Object.fromEntries(entries) as Record<QueueName, StageQueues>;
}

// ---------- text ----------

const duration = (seconds: number): string => {
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${s}s` : `${s}s`;
};

function formatQueues(queues: Record<QueueName, StageQueues>): string {
  const rows: (string | number)[][] = [['queue (all runs)', 'waiting', 'in flight', 'dead-letter']];
  for (const s of STAGES) {
    const q = queues[s.name];
    rows.push([`  ${s.name}`, q.queue.visible, q.queue.inFlight, q.deadLetter.visible + q.deadLetter.inFlight]);
  }
  const dead = STAGES.reduce((n, s) => n + queues[s.name].deadLetter.visible + queues[s.name].deadLetter.inFlight, 0);
  return table(rows) + (dead > 0 ? `\n${dead} message(s) in dead-letter queues: find the cause, then \`anyprefer redrive\`` : '');
}

export function formatRunReport(r: RunReport, stack: ResolvedStack, flags: string): string {
  if (!r.found || !r.run) return `run ${r.runId}: not found (yet)\n\n${formatQueues(r.queues)}`;
  const run = r.run;
  const lines: string[] = [];
  lines.push(`run ${run.runId}: ${run.status}${run.finishedAt ? `, finished after ${duration(run.elapsedSeconds)}` : `, running for ${duration(run.elapsedSeconds)}`}`);
  lines.push(`  source   s3://${run.source.bucket}/${run.source.key}`);
  lines.push(`  created  ${run.createdAt}${run.finishedAt ? `   finished ${run.finishedAt}` : ''}`);
  if (run.error) lines.push(`  error    ${run.error}`);
  lines.push(
    run.ingested
      ? `  lines    ${run.lines ?? 0}: ${run.items ?? 0} items, ${run.invalid ?? 0} invalid`
      : `  lines    still being read by ingest (${Object.values(r.itemsByState ?? {}).reduce((a, b) => a + b, 0)} items so far)`,
  );
  const t = r.terminal!;
  const byState = r.itemsByState!;
  lines.push(
    `  items    generate ${byState.generate}, judge ${byState.judge}, feedback ${byState.feedback}; ` +
      `accepted ${byState.accepted}, rejected ${byState.rejected}, dead-lettered ${byState.deadLettered}`,
  );
  lines.push(
    `  done     ${t.total}${run.items !== undefined ? ` of ${run.items}` : ''}: accepted ${t.accepted}, rejected ${t.rejected}, ` +
      `dead-lettered ${t.deadLettered}${r.inProgress !== null && r.inProgress !== undefined ? `; in progress ${r.inProgress}` : ''}`,
  );
  const u = r.usage!;
  const usageRows: (string | number)[][] = [['  model usage', 'calls', 'prompt tokens', 'completion tokens']];
  for (const role of ROLES) {
    const x = u.byRole[role];
    if (x) usageRows.push([`    ${role}`, x.calls, x.promptTokens, x.completionTokens]);
  }
  usageRows.push(['    total', u.total.calls, u.total.promptTokens, u.total.completionTokens]);
  lines.push(table(usageRows));
  lines.push(
    u.estimate
      ? `  cost     ≈ $${u.estimate.usd.toFixed(4)} for ${u.total.tokens} tokens at $${u.estimate.pricePer1kTokens} per 1k (model tokens only)`
      : u.costUsd !== undefined
        ? `  cost     ≈ $${u.costUsd.toFixed(4)} at the run config's prices (model tokens only)`
        : '  cost     pass --price-per-1k-tokens USD for an estimate, or set budget.prices in the run config',
  );
  if (r.budget) {
    const limits = [r.budget.maxTokens !== undefined ? `${r.budget.maxTokens} tokens` : '', r.budget.maxCostUsd !== undefined ? `$${r.budget.maxCostUsd}` : ''].filter(Boolean).join(', ');
    lines.push(`  budget   ${limits || 'none'}${r.budget.stopped ? `; stopped taking new work: ${r.budget.stopped}` : ''}`);
  }
  if (run.config.models && Object.values(run.config.models).some((m) => m.model.startsWith('lab-') && !m.baseURL)) {
    lines.push('  note     a role uses the offline model lab (simulation)');
  }
  lines.push('');
  lines.push(formatQueues(r.queues));
  if (run.status === 'complete') {
    lines.push('', `dataset: s3://${stack.outputs.outputBucket}/${run.outputPrefix}`, `  anyprefer pull ${run.runId} ${flags}`);
  }
  return lines.join('\n');
}

export function formatRunList(r: RunListReport): string {
  const parts: string[] = [];
  if (r.runs.length === 0) parts.push('no runs yet: start one with `anyprefer submit FILE`');
  else {
    const rows: (string | number)[][] = [['RUN', 'STATUS', 'CREATED', 'FINISHED', 'LINES', 'ITEMS', 'INVALID', 'SOURCE']];
    for (const run of r.runs) {
      rows.push([
        run.runId,
        run.status,
        run.createdAt.replace(/\.\d+Z$/, 'Z'),
        run.finishedAt?.replace(/\.\d+Z$/, 'Z') ?? '-',
        run.lines ?? '-',
        run.items ?? '-',
        run.invalid ?? '-',
        run.source.key,
      ]);
    }
    parts.push(table(rows));
  }
  parts.push('', formatQueues(r.queues));
  return parts.join('\n');
}
