// The budget guard: once a run has used its token or cost budget it takes no new work; what is in
// flight finishes, and the items that could not start are rejected with the reason.
import type { RunConfig } from './config';
import type { RunRecord } from './state/records';
import type { UsageByRole } from './types';

/** Estimated USD for the usage at the configured per-role prices (roles without a price cost 0). */
export function estimateCostUsd(usage: UsageByRole | undefined, prices: RunConfig['budget']['prices']): number {
  let cost = 0;
  for (const [role, u] of Object.entries(usage ?? {})) {
    const p = prices[role as keyof typeof prices];
    if (p && u) cost += (u.promptTokens * p.inputPerMTok + u.completionTokens * p.outputPerMTok) / 1_000_000;
  }
  return cost;
}

/** Why the run must stop taking new work, or undefined while it is within budget. */
export function budgetStop(config: RunConfig, run: RunRecord): string | undefined {
  const { maxTokens, maxCostUsd, prices } = config.budget;
  const tokens = run.usedTokens ?? 0;
  if (maxTokens !== undefined && tokens >= maxTokens) return `token budget reached: ${tokens} ≥ ${maxTokens} tokens`;
  if (maxCostUsd !== undefined) {
    const cost = estimateCostUsd(run.usage, prices);
    if (cost >= maxCostUsd) return `cost budget reached: $${cost.toFixed(4)} ≥ $${maxCostUsd}`;
  }
  return undefined;
}
