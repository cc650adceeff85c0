// Where a deployed pipeline's resources are: the stack's CloudFormation outputs (lib/anyprefer-stack.ts
// writes them), or the same names in a JSON file for AWS-compatible servers without CloudFormation.
import { readFile } from 'node:fs/promises';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { createAwsClients, STAGES, type QueueName } from '@anyprefer/core';
import { LOCAL_CREDENTIALS, type AwsClients } from '../../layers/core/src/adapters/aws-clients';
import { CommandError } from './errors';

export interface StackQueue {
  url: string;
  dlqUrl: string;
  /** Optional: no command needs it. */
  dlqArn?: string;
}

/** The stack outputs, typed. */
export interface StackResources {
  inputBucket: string;
  outputBucket: string;
  table: string;
  queues: Record<QueueName, StackQueue>;
  secretArn?: string;
  dashboardName?: string;
  alarmTopicArn?: string;
}

export interface ResolveStackOptions {
  /** CloudFormation stack name (or id). One of `stack` and `resourcesFile`. */
  stack?: string;
  /** A JSON file with the stack's output names and values, instead of reading CloudFormation. */
  resourcesFile?: string;
  region?: string;
  /** Every client (CloudFormation included) goes to this AWS-compatible endpoint. */
  endpointUrl?: string;
  /** Test hook: the CloudFormation client to read the outputs with. */
  cloudFormation?: CloudFormationClient;
}

export interface ResolvedStack {
  clients: AwsClients;
  outputs: StackResources;
  /** `stack NAME` or `FILE`, for messages. */
  source: string;
  /** Closes the clients' connection pools. */
  close(): void;
}

/** `ingest` → `Ingest`: the stage part of the output ids. */
const pascal = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

/** Output ids every command needs, in the order the stack defines them. */
export function requiredOutputNames(): string[] {
  return [
    'InputBucketName',
    'OutputBucketName',
    'TableName',
    ...STAGES.flatMap((s) => [`${pascal(s.name)}QueueUrl`, `${pascal(s.name)}DeadLetterQueueUrl`]),
  ];
}

/** Typed resources from output ids → values; every missing output is named in the error. */
export function resourcesFromOutputs(outputs: Record<string, string>, source: string): StackResources {
  const missing = requiredOutputNames().filter((name) => !outputs[name]);
  if (missing.length > 0) {
    throw new CommandError(`${source} has no output${missing.length > 1 ? 's' : ''} ${missing.join(', ')}`);
  }
  const get = (name: string): string => outputs[name]!;
  const queues = {} as Record<QueueName, StackQueue>;
  for (const spec of STAGES) {
    const p = pascal(spec.name);
    const dlqArn = outputs[`${p}DeadLetterQueueArn`];
    queues[spec.name] = { url: get(`${p}QueueUrl`), dlqUrl: get(`${p}DeadLetterQueueUrl`), ...(dlqArn ? { dlqArn } : {}) };
  }
  return {
    inputBucket: get('InputBucketName'),
    outputBucket: get('OutputBucketName'),
    table: get('TableName'),
    queues,
    ...(outputs.SecretArn ? { secretArn: outputs.SecretArn } : {}),
    ...(outputs.DashboardName ? { dashboardName: outputs.DashboardName } : {}),
    ...(outputs.AlarmTopicArn ? { alarmTopicArn: outputs.AlarmTopicArn } : {}),
  };
}

/** The region: the flag, else the SDK's own resolution (AWS_REGION, the profile), else us-east-1. */
export async function resolveRegion(explicit?: string): Promise<string> {
  if (explicit) return explicit;
  if (process.env.AWS_REGION) return process.env.AWS_REGION;
  const probe = new CloudFormationClient({});
  try {
    return (await probe.config.region()) || 'us-east-1';
  } catch {
    return 'us-east-1'; // "Region is missing": nothing configured
  } finally {
    probe.destroy();
  }
}

export function cloudFormationClient(region: string, endpointUrl?: string): CloudFormationClient {
  if (!endpointUrl) return new CloudFormationClient({ region });
  // The same credentials rule as createAwsClients: the environment's, else local placeholders.
  const credentials = process.env.AWS_ACCESS_KEY_ID ? undefined : LOCAL_CREDENTIALS;
  return new CloudFormationClient({ region, endpoint: endpointUrl, ...(credentials ? { credentials } : {}) });
}

/** Output id → value of a stack; clear errors for a missing stack. */
export async function readStackOutputs(cfn: CloudFormationClient, stack: string, where: string): Promise<Record<string, string>> {
  let described;
  try {
    described = await cfn.send(new DescribeStacksCommand({ StackName: stack }));
  } catch (err) {
    const e = err as { name?: string; message?: string };
    if (e?.name === 'ValidationError' && /does not exist/i.test(e.message ?? '')) {
      throw new CommandError(`stack "${stack}" not found in ${where}; check --stack and --region (the default stack name is "Anyprefer")`);
    }
    throw err;
  }
  const found = described.Stacks?.[0];
  if (!found) throw new CommandError(`stack "${stack}" not found in ${where}`);
  const outputs: Record<string, string> = {};
  for (const o of found.Outputs ?? []) if (o.OutputKey && o.OutputValue !== undefined) outputs[o.OutputKey] = o.OutputValue;
  const status = found.StackStatus ?? 'unknown';
  if (requiredOutputNames().some((n) => !outputs[n]) && !/_COMPLETE$/.test(status)) {
    // A stack still being created (or rolled back) has no outputs yet: say so rather than list them all.
    throw new CommandError(`stack "${stack}" is ${status} and has not got all its outputs yet`);
  }
  return outputs;
}

/**
 * Output names → values from a JSON file. Accepts a flat object (`{"InputBucketName": ...}`), the
 * output of `aws cloudformation describe-stacks` or its `Outputs` list, and `cdk deploy
 * --outputs-file` (one stack name → its outputs).
 */
export function outputsFromJson(json: unknown, file: string): Record<string, string> {
  const fromList = (list: unknown[]): Record<string, string> =>
    Object.fromEntries(
      list
        .filter((o): o is { OutputKey: string; OutputValue: string } =>
          typeof (o as { OutputKey?: unknown })?.OutputKey === 'string' && typeof (o as { OutputValue?: unknown })?.OutputValue === 'string',
        )
        .map((o) => [o.OutputKey, o.OutputValue]),
    );
  if (Array.isArray(json)) return fromList(json);
  if (!json || typeof json !== 'object') throw new CommandError(`${file}: expected a JSON object of stack output names and values`);
  const obj = json as Record<string, unknown>;
  if (Array.isArray(obj.Stacks)) {
    if (obj.Stacks.length !== 1) throw new CommandError(`${file}: expected exactly one stack, found ${obj.Stacks.length}`);
    return fromList(((obj.Stacks[0] as { Outputs?: unknown[] }).Outputs ?? []) as unknown[]);
  }
  if (Array.isArray(obj.Outputs)) return fromList(obj.Outputs);
  const values = Object.values(obj);
  if (!('InputBucketName' in obj) && values.length === 1 && values[0] && typeof values[0] === 'object' && !Array.isArray(values[0])) {
    return outputsFromJson(values[0], file); // cdk --outputs-file: { "<stack>": { ... } }
  }
  const outputs: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj)) {
    if (typeof v === 'string') outputs[k] = v;
    else throw new CommandError(`${file}: the value of ${k} must be a string`);
  }
  return outputs;
}

export async function readResourcesFile(file: string): Promise<Record<string, string>> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read --resources file ${file}: ${(err as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CommandError(`--resources file ${file} is not JSON: ${(err as Error).message}`);
  }
  return outputsFromJson(json, file);
}

export async function resolveStack(opts: ResolveStackOptions): Promise<ResolvedStack> {
  if (!opts.stack === !opts.resourcesFile) throw new CommandError('give a stack name or a resources file (exactly one)');
  const region = await resolveRegion(opts.region);
  const where = `${region}${opts.endpointUrl ? ` at ${opts.endpointUrl}` : ''}`;
  let outputs: Record<string, string>;
  let source: string;
  if (opts.stack) {
    source = `stack "${opts.stack}"`;
    const cfn = opts.cloudFormation ?? cloudFormationClient(region, opts.endpointUrl);
    try {
      outputs = await readStackOutputs(cfn, opts.stack, where);
    } finally {
      if (!opts.cloudFormation) cfn.destroy();
    }
  } else {
    source = opts.resourcesFile!;
    outputs = await readResourcesFile(opts.resourcesFile!);
  }
  const resources = resourcesFromOutputs(outputs, source);
  const clients = createAwsClients({ region, ...(opts.endpointUrl ? { endpointUrl: opts.endpointUrl } : {}) });
  return {
    clients,
    outputs: resources,
    source,
    close: () => {
      clients.s3.destroy();
      clients.sqs.destroy();
      clients.dynamo.destroy();
    },
  };
}
