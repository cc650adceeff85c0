// The item state machine and the at-least-once discipline every item stage shares:
//   generate(i) → judge(i) → accepted | rejected | feedback(i) → generate(i+1)
// A message names (item, stage, iteration). A stage runs only when the stored item is exactly
// there; it stores its transition with a conditional write and an outbox (the message to send
// next), then sends and clears the outbox. A duplicate or a retry after a crash finds the
// outbox and sends it again, so nothing is lost and nothing runs twice to completion.
import { parseRunConfig, type RunConfig } from '../config';
import type { Dependencies } from '../dependencies';
import { ModelCallError } from '../models/gateway';
import { ModelOutputError } from '../models/structured';
import { recordUsageDelta, type MetricName } from '../metrics';
import { usageDelta } from '../models/usage';
import { domainOf, recordAttempt } from '../policy';
import { WORK_PREFIX } from '../resources';
import type { ItemRecord, Outbox, RunRecord } from '../state/records';
import { type ItemMessage, type ItemState, type NormalizedInput, type StageName } from '../types';
import { runFeedback } from './feedback';
import { runGenerate } from './generate';
import { runJudge } from './judge';
import { checkRunComplete } from './progress';

/** What a stage decided: the item's next record (without rev) — the caller stores and announces it. */
export type StageOutcome = Omit<ItemRecord, 'rev'>;

export interface StageContext {
  deps: Dependencies;
  run: RunRecord;
  config: RunConfig;
  item: ItemRecord;
  input: NormalizedInput;
}

const STAGES: Record<StageName, (ctx: StageContext) => Promise<StageOutcome>> = {
  generate: runGenerate,
  judge: runJudge,
  feedback: runFeedback,
};

/** A failure that retrying cannot fix: the item is rejected with the reason at once. */
export class PermanentItemError extends Error {
  override name = 'PermanentItemError';
}

export function parseItemMessage(body: string): ItemMessage {
  const m = JSON.parse(body) as Partial<ItemMessage>;
  if (typeof m.runId !== 'string' || typeof m.itemId !== 'string' || typeof m.stage !== 'string' || typeof m.iteration !== 'number') {
    throw new Error(`not an item message: ${body.slice(0, 200)}`);
  }
  return m as ItemMessage;
}

export async function runItemStage(stage: StageName, deps: Dependencies, body: string, receiveCount: number): Promise<void> {
  const message = parseItemMessage(body);
  if (message.stage !== stage) throw new Error(`message for stage ${message.stage} reached the ${stage} queue`);
  let item = await deps.state.getItem(message.runId, message.itemId);
  if (!item) throw new Error(`item ${message.runId}/${message.itemId} not found`);

  let ctx: StageContext | undefined;
  try {
    if (item.outbox) item = await flushOutbox(deps, item);
    if (item.state !== stage || item.iteration !== message.iteration) return; // duplicate or stale
    const run = await deps.state.getRun(message.runId);
    if (!run) throw new Error(`run ${message.runId} not found`);
    ctx = { deps, run, config: parseRunConfig(run.config), item, input: await loadInput(deps, item) };
    const outcome = await STAGES[stage](ctx);
    await commit(deps, item, outcome, stage === 'judge' ? (stored) => afterJudged(ctx!, stored) : undefined);
  } catch (error) {
    const reason = errorReason(error);
    if (error instanceof ModelCallError) deps.metrics.add('ModelErrors', 1, { Role: error.role });
    if (ctx && isPermanent(error)) {
      deps.log.warn('item failed permanently', { runId: item.runId, itemId: item.itemId, stage, reason });
      await commit(deps, item, terminalOutcome(item, 'rejected', `${stage} failed: ${reason}`));
      return;
    }
    if (receiveCount >= deps.maxReceiveCount(stage)) await deadLetter(deps, message, stage, `${stage} failed ${receiveCount} times: ${reason}`);
    throw error;
  }
}

/**
 * Last delivery: the item ends as dead-lettered so the run can finish (the message still goes to
 * the dead-letter queue for inspection). Works on a fresh copy: the failure may have come after
 * a transition was stored, and then its outbox is what must go out.
 */
async function deadLetter(deps: Dependencies, message: ItemMessage, stage: StageName, reason: string): Promise<void> {
  try {
    const item = await deps.state.getItem(message.runId, message.itemId);
    if (!item) return;
    if (item.outbox) {
      await flushOutbox(deps, item);
      return;
    }
    if (item.state !== stage || item.iteration !== message.iteration) return;
    deps.log.error('item dead-lettered', { runId: item.runId, itemId: item.itemId, stage, reason });
    await commit(deps, item, terminalOutcome(item, 'deadLettered', reason));
  } catch (e) {
    deps.log.error('could not mark the item dead-lettered; redrive its message', { ...message, error: errorReason(e) });
  }
}

function isPermanent(error: unknown): boolean {
  return (
    error instanceof PermanentItemError ||
    error instanceof ModelOutputError ||
    (error instanceof ModelCallError && !error.retryable)
  );
}

export const errorReason = (error: unknown): string => (error instanceof Error ? error.message : String(error));

/**
 * Stores the outcome if nobody else moved the item meanwhile, then announces it. Only the one
 * delivery whose write wins records what it spent and what it learned (`onStored`), so neither
 * is counted twice; a crash right after the write loses that record (counters may undercount).
 */
async function commit(deps: Dependencies, prev: ItemRecord, outcome: StageOutcome, onStored?: (stored: ItemRecord) => Promise<void>): Promise<void> {
  const stored = await deps.state.replaceItem(prev, outcome);
  if (!stored) return; // a concurrent duplicate won; it sends the outbox
  recordUsageDelta(deps.metrics, prev.usage, stored.usage);
  const terminalMetric = TERMINAL_METRICS[stored.state];
  if (terminalMetric) deps.metrics.add(terminalMetric, 1);
  const spent = usageDelta(prev.usage, stored.usage);
  if (spent.tokens > 0) await deps.state.addRunUsage(stored.runId, spent.tokens, spent.byRole);
  await onStored?.(stored);
  await flushOutbox(deps, stored);
}

/** A judge attempt is evidence for the prompt versions it used (see policy.ts). */
async function afterJudged(ctx: StageContext, stored: ItemRecord): Promise<void> {
  const attempt = stored.attempts.at(-1);
  if (!attempt || attempt.iteration !== ctx.item.iteration) return;
  await recordAttempt(ctx.deps, ctx.config, {
    runId: stored.runId,
    domain: domainOf(ctx.input.domain),
    prompts: ctx.item.prompts,
    accepted: stored.state === 'accepted',
    reward: attempt.rewardScore ?? 0,
  });
}

const TERMINAL_METRICS: Partial<Record<ItemState, MetricName>> = {
  accepted: 'PairsAccepted',
  rejected: 'ItemsRejected',
  deadLettered: 'ItemsDeadLettered',
};

/** Sends what the item's last transition promised, then clears the outbox. Safe to repeat. */
export async function flushOutbox(deps: Dependencies, item: ItemRecord): Promise<ItemRecord> {
  const outbox = item.outbox;
  if (!outbox) return item;
  if (outbox.kind === 'message') {
    await deps.queues.send(outbox.message.stage, [outbox.message]);
  } else {
    await deps.state.recordTerminal(item.runId, item.itemId, item.state);
    await checkRunComplete(deps, item.runId);
  }
  const { outbox: _sent, ...rest } = item;
  return (await deps.state.replaceItem(item, { ...rest, updatedAt: new Date().toISOString() })) ?? (await reload(deps, item));
}

async function reload(deps: Dependencies, item: ItemRecord): Promise<ItemRecord> {
  return (await deps.state.getItem(item.runId, item.itemId)) ?? item;
}

/** The next non-terminal state with the message that carries it out. */
export function advance(item: ItemRecord, state: StageName, iteration: number, changes: Partial<ItemRecord>): StageOutcome {
  const { rev: _rev, ...rest } = item;
  const outbox: Outbox = { kind: 'message', message: { runId: item.runId, itemId: item.itemId, stage: state, iteration } };
  return { ...rest, ...changes, state, iteration, outbox, updatedAt: new Date().toISOString() };
}

/** A terminal state: finalize reads the item's attempts from it; the outbox counts it. */
export function terminalOutcome(
  item: ItemRecord,
  state: Extract<ItemState, 'accepted' | 'rejected' | 'deadLettered'>,
  reason: string,
  changes: Partial<ItemRecord> = {},
): StageOutcome {
  const { rev: _rev, ...rest } = item;
  return { ...rest, ...changes, state, reason, outbox: { kind: 'terminal' }, updatedAt: new Date().toISOString() };
}

export const workKey = (runId: string, ...parts: string[]): string => `${WORK_PREFIX}${runId}/${parts.join('/')}`;

export async function loadInput(deps: Dependencies, item: ItemRecord): Promise<NormalizedInput> {
  if (item.input) return item.input;
  if (!item.inputKey) throw new Error(`item ${item.itemId} has no input`);
  return JSON.parse(await deps.blobs.getText(deps.buckets.output, item.inputKey)) as NormalizedInput;
}
