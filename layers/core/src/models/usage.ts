// Token-usage arithmetic shared by the gateway, structured calls and the stages.
import type { Role, TokenUsage, UsageByRole } from '../types';

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
