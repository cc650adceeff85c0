// What every remote command shares: the connection flags, argument parsing with usage errors
// (exit 2), where output goes, and shell quoting for the follow-up commands they print.
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CommandError, UsageError } from './errors';
import { resolveStack, type ResolvedStack } from './stack';

export { CommandError, UsageError };

/** Where a command writes. Tests pass their own to capture the output. */
export interface CommandIo {
  out(text: string): void;
  err(text: string): void;
}

export const defaultIo: CommandIo = {
  out: (text) => process.stdout.write(`${text}\n`),
  err: (text) => process.stderr.write(`${text}\n`),
};

export const CONNECTION_OPTIONS = {
  stack: { type: 'string' },
  resources: { type: 'string' },
  region: { type: 'string' },
  'endpoint-url': { type: 'string' },
} as const satisfies NonNullable<ParseArgsConfig['options']>;

export const CONNECTION_USAGE = `  --stack NAME          the deployed stack; its outputs name the buckets, table and queues
  --resources FILE      instead of --stack: a JSON file of the same output names (for
                        AWS-compatible servers without CloudFormation); also accepts the output
                        of "aws cloudformation describe-stacks"
  --region REGION       default: your AWS configuration (AWS_REGION, profile), else us-east-1
  --endpoint-url URL    send every request to this AWS-compatible endpoint (LocalStack, moto)`;

export interface ConnectionValues {
  stack?: string;
  resources?: string;
  region?: string;
  'endpoint-url'?: string;
}

export function parseCommandArgs<O extends NonNullable<ParseArgsConfig['options']>>(args: string[], options: O) {
  try {
    return parseArgs({ args, allowPositionals: true, strict: true, options: { ...CONNECTION_OPTIONS, ...options } });
  } catch (err) {
    // node:util parseArgs throws TypeErrors with ERR_PARSE_ARGS_* codes for unknown options etc.
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
}

export function connect(values: ConnectionValues): Promise<ResolvedStack> {
  if (values.stack && values.resources) throw new UsageError('give --stack NAME or --resources FILE, not both');
  if (!values.stack && !values.resources) throw new UsageError('missing --stack NAME (or --resources FILE)');
  return resolveStack({
    stack: values.stack,
    resourcesFile: values.resources,
    region: values.region,
    endpointUrl: values['endpoint-url'],
  });
}

/** The connection flags again, for the follow-up commands a command prints. */
export function connectionFlags(values: ConnectionValues): string {
  const flags: string[] = [];
  if (values.stack) flags.push('--stack', shellQuote(values.stack));
  if (values.resources) flags.push('--resources', shellQuote(values.resources));
  if (values.region) flags.push('--region', shellQuote(values.region));
  if (values['endpoint-url']) flags.push('--endpoint-url', shellQuote(values['endpoint-url']));
  return flags.join(' ');
}

export function shellQuote(word: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

/** A positive number flag (or its default); a usage error names the flag otherwise. */
export function numberFlag(value: string | undefined, flag: string, fallback: number, opts: { integer?: boolean; min?: number } = {}): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  const min = opts.min ?? 0;
  if (!Number.isFinite(n) || n < min || (opts.integer && !Number.isInteger(n))) {
    throw new UsageError(`${flag} must be ${opts.integer ? 'an integer' : 'a number'} >= ${min}, got "${value}"`);
  }
  return n;
}

/**
 * Runs a command body with the shared error handling: `--help` prints the usage (exit 0), usage
 * errors print the message and the usage (exit 2), command and AWS errors one line (exit 1).
 */
export async function runCommand(name: string, usage: string, io: CommandIo, args: string[], body: () => Promise<number>): Promise<number> {
  if (args.includes('--help') || args.includes('-h')) {
    io.out(usage);
    return 0;
  }
  try {
    return await body();
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`anyprefer ${name}: ${err.message}\n\n${usage}`);
      return 2;
    }
    io.err(`anyprefer ${name}: ${describeError(err)}`);
    return 1;
  }
}

export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const e = err as Error & { $metadata?: { httpStatusCode?: number } };
  if (e instanceof CommandError) return e.message;
  const status = e.$metadata?.httpStatusCode;
  // AWS SDK errors: the service's error name is the useful part (AccessDenied, QueueDoesNotExist...).
  return status ? `${e.name}: ${e.message} (HTTP ${status})` : e.message;
}
