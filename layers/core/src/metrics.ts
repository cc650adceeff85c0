// Pipeline metrics as CloudWatch Embedded Metric Format log lines: Lambda's log stream turns
// them into metrics in the `Anyprefer` namespace with no API call (the stack's dashboard reads them).
import type { Role, TokenUsage, UsageByRole } from './types';
import { ROLES } from './types';

export const METRICS_NAMESPACE = 'Anyprefer';

export type MetricName = 'PairsAccepted' | 'ItemsRejected' | 'ItemsDeadLettered' | 'ModelCalls' | 'ModelErrors' | 'Tokens';

export interface MetricSink {
  add(name: MetricName, value: number, dimensions?: { Role: Role }): void;
}

export const noMetrics: MetricSink = { add: () => {} };

export function emfMetrics(write: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): MetricSink {
  return {
    add(name, value, dimensions) {
      write(
        JSON.stringify({
          _aws: {
            Timestamp: Date.now(),
            CloudWatchMetrics: [{ Namespace: METRICS_NAMESPACE, Dimensions: [dimensions ? Object.keys(dimensions) : []], Metrics: [{ Name: name, Unit: 'Count' }] }],
          },
          ...dimensions,
          [name]: value,
        }),
      );
    },
  };
}

/** Records the model usage a stage added (the difference between two usage maps). */
export function recordUsageDelta(metrics: MetricSink, before: UsageByRole, after: UsageByRole): void {
  for (const role of ROLES) {
    const a: TokenUsage = after[role] ?? { calls: 0, promptTokens: 0, completionTokens: 0 };
    const b: TokenUsage = before[role] ?? { calls: 0, promptTokens: 0, completionTokens: 0 };
    if (a.calls > b.calls) metrics.add('ModelCalls', a.calls - b.calls, { Role: role });
    const tokens = a.promptTokens + a.completionTokens - (b.promptTokens + b.completionTokens);
    if (tokens > 0) metrics.add('Tokens', tokens, { Role: role });
  }
}
