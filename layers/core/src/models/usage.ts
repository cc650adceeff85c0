// Token-usage arithmetic shared by the gateway, structured calls and the stages.
import { ROLES, type Role, type TokenUsage, type UsageByRole } from '../types';

export function emptyUsage(): TokenUsage {
  return { calls: 0, promptTokens: 0, completionTokens: 0 };
}

/** A new TokenUsage that is the sum of both; neither argument is changed. */
export function addUsage(a: TokenUsage, b: TokenUsage): TokenUsage {
  return {
    calls: a.calls + b.calls,
    promptTokens: a.promptTokens + b.promptTokens,
    completionTokens: a.completionTokens + b.completionTokens,
  };
}

/** A new map with `usage` added to `role`; the argument is not changed. */
export function addUsageByRole(map: UsageByRole, role: Role, usage: TokenUsage): UsageByRole {
  return { ...map, [role]: addUsage(map[role] ?? emptyUsage(), usage) };
}

/** Tokens added between two usage maps, in total and per role (what one stage spent). */
export function usageDelta(before: UsageByRole, after: UsageByRole): { tokens: number; byRole: UsageByRole } {
  const byRole: UsageByRole = {};
  let tokens = 0;
  for (const role of ROLES) {
    const a = after[role] ?? emptyUsage();
    const b = before[role] ?? emptyUsage();
    const d = { calls: a.calls - b.calls, promptTokens: a.promptTokens - b.promptTokens, completionTokens: a.completionTokens - b.completionTokens };
    if (d.calls || d.promptTokens || d.completionTokens) {
      byRole[role] = d;
      tokens += d.promptTokens + d.completionTokens;
    }
  }
  return { tokens, byRole };
}
