// The stack's settings, read from CDK context (cdk.json, or `-c key=value` on the command line).
// Every key has a default (CONTEXT_DEFAULTS, also written out in cdk.json and docs/operations.md);
// every value is validated at synth time so a typo fails `cdk synth` with the key and field named.
import type { Node } from 'constructs';
import { parseRunConfig, type RunConfig } from '../layers/core/src/config';
import type { QueueName } from '../layers/core/src/ports';
import { STAGES } from '../layers/core/src/resources';

/** The context keys the app reads. */
export const CONTEXT = {
  /** CloudFormation stack name (bin/app.ts). */
  stackName: 'anyprefer:stackName',
  /** Run config (JSON object) for runs without a `prompts/NAME.config.json` sibling. */
  config: 'anyprefer:config',
  /** Lambda maxConcurrency of each stage's SQS event source, e.g. {"generate": 8}. */
  maxConcurrency: 'anyprefer:maxConcurrency',
  /** Email address subscribed to the alarm topic. */
  alarmEmail: 'anyprefer:alarmEmail',
  /** Dev stacks: buckets, table, secret and log groups are deleted with the stack. */
  destroyOnRemoval: 'anyprefer:destroyOnRemoval',
  /** ARNs of Lambda functions the judge may invoke as tools. */
  lambdaToolArns: 'anyprefer:lambdaToolArns',
  /** Run the cdk-nag AwsSolutions checks during synth (bin/app.ts). */
  nag: 'anyprefer:nag',
} as const;

export const CONTEXT_DEFAULTS = {
  stackName: 'Anyprefer',
  config: {} as Record<string, unknown>,
  maxConcurrency: {} as Partial<Record<QueueName, number>>,
  alarmEmail: undefined as string | undefined,
  destroyOnRemoval: false,
  lambdaToolArns: [] as string[],
  nag: true,
};

/** Lambda's bounds for an SQS event source's maximum concurrency. */
export const MIN_MAX_CONCURRENCY = 2;
export const MAX_MAX_CONCURRENCY = 1000;

/**
 * Lambda allows 4 KB of environment variables per function. The default config shares that with
 * the table, bucket and queue names, so it gets a budget; long prompts belong in a config file.
 */
export const DEFAULT_CONFIG_MAX_BYTES = 2048;

export interface AnypreferSettings {
  stackName: string;
  /** The run config exactly as given (validated): what the functions get as ANYPREFER_DEFAULT_CONFIG. */
  config: Record<string, unknown>;
  /** The same config with every default filled in. */
  runConfig: RunConfig;
  /** Per stage, always within [MIN_MAX_CONCURRENCY, MAX_MAX_CONCURRENCY]. */
  maxConcurrency: Record<QueueName, number>;
  alarmEmail?: string;
  destroyOnRemoval: boolean;
  lambdaToolArns: string[];
  nag: boolean;
}

export class ContextError extends Error {
  override name = 'ContextError';
}

/** Reads and validates every `anyprefer:*` context value of a construct's tree. */
export function readSettings(node: Node): AnypreferSettings {
  const raw: Partial<Record<keyof typeof CONTEXT, unknown>> = {};
  for (const [field, key] of Object.entries(CONTEXT) as [keyof typeof CONTEXT, string][]) raw[field] = node.tryGetContext(key);
  return parseSettings(raw);
}

/** Validates raw context values (JSON values from cdk.json, or strings from `-c key=value`). */
export function parseSettings(raw: Partial<Record<keyof typeof CONTEXT, unknown>>): AnypreferSettings {
  const config = parseConfig(raw.config);
  const runConfig = runConfigOf(config);
  return {
    stackName: parseStackName(raw.stackName),
    config,
    runConfig,
    maxConcurrency: parseMaxConcurrency(raw.maxConcurrency, runConfig),
    alarmEmail: parseEmail(raw.alarmEmail),
    destroyOnRemoval: parseBoolean(CONTEXT.destroyOnRemoval, raw.destroyOnRemoval, CONTEXT_DEFAULTS.destroyOnRemoval),
    lambdaToolArns: parseArns(raw.lambdaToolArns),
    nag: parseBoolean(CONTEXT.nag, raw.nag, CONTEXT_DEFAULTS.nag),
  };
}

const isUnset = (value: unknown): boolean => value === undefined || value === null || value === '';

/** `-c key={"a":1}` arrives as a string; cdk.json values arrive parsed. */
function jsonValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch (e) {
    throw new ContextError(`context ${key} is not valid JSON: ${(e as Error).message}`);
  }
}

function plainObject(key: string, value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ContextError(`context ${key} must be a JSON object, got ${JSON.stringify(value)}`);
  }
  return value as Record<string, unknown>;
}

function parseStackName(value: unknown): string {
  if (isUnset(value)) return CONTEXT_DEFAULTS.stackName;
  if (typeof value !== 'string' || !/^[A-Za-z][A-Za-z0-9-]{0,127}$/.test(value)) {
    throw new ContextError(
      `context ${CONTEXT.stackName} must be a CloudFormation stack name (a letter, then letters, digits and hyphens), got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

function parseConfig(value: unknown): Record<string, unknown> {
  if (isUnset(value)) return { ...CONTEXT_DEFAULTS.config };
  const config = plainObject(CONTEXT.config, jsonValue(CONTEXT.config, value));
  const bytes = Buffer.byteLength(JSON.stringify(config));
  if (bytes > DEFAULT_CONFIG_MAX_BYTES) {
    throw new ContextError(
      `context ${CONTEXT.config} is ${bytes} bytes of JSON; it becomes a Lambda environment variable, which allows ` +
        `${DEFAULT_CONFIG_MAX_BYTES} here. Put long prompts in a prompts/NAME.config.json file next to the prompt file instead.`,
    );
  }
  return config;
}

function runConfigOf(config: Record<string, unknown>): RunConfig {
  try {
    return parseRunConfig(config);
  } catch (e) {
    throw new ContextError(`context ${CONTEXT.config}: ${(e as Error).message}`);
  }
}

function parseMaxConcurrency(value: unknown, runConfig: RunConfig): Record<QueueName, number> {
  const given = isUnset(value) ? {} : plainObject(CONTEXT.maxConcurrency, jsonValue(CONTEXT.maxConcurrency, value));
  const stages = STAGES.map((s) => s.name);
  for (const key of Object.keys(given)) {
    if (!stages.includes(key as QueueName)) {
      throw new ContextError(`context ${CONTEXT.maxConcurrency}.${key}: unknown stage (expected one of ${stages.join(', ')})`);
    }
  }
  const result = {} as Record<QueueName, number>;
  for (const stage of stages) {
    const v = given[stage];
    if (v === undefined) {
      // The run config's in-flight limit, raised to Lambda's minimum for an SQS event source.
      result[stage] = Math.max(MIN_MAX_CONCURRENCY, runConfig.concurrency[stage]);
      continue;
    }
    const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < MIN_MAX_CONCURRENCY || n > MAX_MAX_CONCURRENCY) {
      throw new ContextError(
        `context ${CONTEXT.maxConcurrency}.${stage} must be an integer from ${MIN_MAX_CONCURRENCY} to ${MAX_MAX_CONCURRENCY} ` +
          `(Lambda's bounds for an SQS event source), got ${JSON.stringify(v)}`,
      );
    }
    result[stage] = n;
  }
  return result;
}

function parseEmail(value: unknown): string | undefined {
  if (isUnset(value)) return CONTEXT_DEFAULTS.alarmEmail;
  if (typeof value !== 'string' || !/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(value)) {
    throw new ContextError(`context ${CONTEXT.alarmEmail} must be an email address, got ${JSON.stringify(value)}`);
  }
  return value;
}

function parseBoolean(key: string, value: unknown, fallback: boolean): boolean {
  if (isUnset(value)) return fallback;
  if (value === true || value === 'true') return true;
  if (value === false || value === 'false') return false;
  throw new ContextError(`context ${key} must be true or false, got ${JSON.stringify(value)}`);
}

const LAMBDA_ARN = /^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]{1,64}(:[A-Za-z0-9_$-]{1,128})?$/;

function parseArns(value: unknown): string[] {
  if (isUnset(value)) return [...CONTEXT_DEFAULTS.lambdaToolArns];
  // A JSON array (cdk.json, or -c key='["arn:…"]'), or a comma-separated list on the command line.
  const list =
    typeof value === 'string' && !value.trim().startsWith('[')
      ? value.split(',').map((s) => s.trim()).filter(Boolean)
      : jsonValue(CONTEXT.lambdaToolArns, value);
  if (!Array.isArray(list)) throw new ContextError(`context ${CONTEXT.lambdaToolArns} must be a list of Lambda function ARNs`);
  list.forEach((arn, i) => {
    if (typeof arn !== 'string' || !LAMBDA_ARN.test(arn)) {
      throw new ContextError(`context ${CONTEXT.lambdaToolArns}[${i}] is not a Lambda function ARN: ${JSON.stringify(arn)}`);
    }
  });
  return [...new Set(list as string[])];
}
