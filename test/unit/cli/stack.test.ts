// Stack output resolution: CloudFormation outputs (mocked) or a resources file → typed resources,
// with errors that name what is missing.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand, type DescribeStacksCommandOutput } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { statusCommand } from '../../../bin/commands/status';
import {
  cloudFormationClient,
  outputsFromJson,
  requiredOutputNames,
  resolveStack,
  resourcesFromOutputs,
} from '../../../bin/commands/stack';
import { STAGES } from '../../../layers/core/src/resources';

const cfn = mockClient(CloudFormationClient);
const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

function stackOutputs(): Record<string, string> {
  const o: Record<string, string> = {
    InputBucketName: 'anyprefer-inputbucket-1',
    OutputBucketName: 'anyprefer-outputbucket-2',
    TableName: 'Anyprefer-Table-3',
    SecretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:anyprefer/model-keys-AbCdEf',
    DashboardName: 'Anyprefer-pipeline',
    AlarmTopicArn: 'arn:aws:sns:eu-west-1:123456789012:Anyprefer-AlarmTopic',
  };
  for (const s of STAGES) {
    o[`${pascal(s.name)}QueueUrl`] = `https://sqs.eu-west-1.amazonaws.com/123456789012/${s.name}`;
    o[`${pascal(s.name)}DeadLetterQueueUrl`] = `https://sqs.eu-west-1.amazonaws.com/123456789012/${s.name}-dlq`;
    o[`${pascal(s.name)}DeadLetterQueueArn`] = `arn:aws:sqs:eu-west-1:123456789012:${s.name}-dlq`;
  }
  return o;
}

function described(outputs: Record<string, string>, status = 'CREATE_COMPLETE'): DescribeStacksCommandOutput {
  return {
    $metadata: {},
    Stacks: [
      {
        StackName: 'Anyprefer',
        StackStatus: status as never,
        CreationTime: new Date(),
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  };
}

const without = (o: Record<string, string>, ...keys: string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

beforeEach(() => cfn.reset());

describe('resolveStack with --stack', () => {
  it('reads the outputs of the named stack into typed resources', async () => {
    cfn.on(DescribeStacksCommand, { StackName: 'Anyprefer' }).resolves(described(stackOutputs()));
    const stack = await resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' });
    try {
      expect(stack.source).toBe('stack "Anyprefer"');
      expect(stack.clients.region).toBe('eu-west-1');
      expect(stack.outputs).toMatchObject({
        inputBucket: 'anyprefer-inputbucket-1',
        outputBucket: 'anyprefer-outputbucket-2',
        table: 'Anyprefer-Table-3',
        dashboardName: 'Anyprefer-pipeline',
      });
      expect(Object.keys(stack.outputs.queues)).toEqual(STAGES.map((s) => s.name));
      expect(stack.outputs.queues.judge).toEqual({
        url: 'https://sqs.eu-west-1.amazonaws.com/123456789012/judge',
        dlqUrl: 'https://sqs.eu-west-1.amazonaws.com/123456789012/judge-dlq',
        dlqArn: 'arn:aws:sqs:eu-west-1:123456789012:judge-dlq',
      });
    } finally {
      stack.close();
    }
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(1);
  });

  it('names the missing output', async () => {
    cfn.on(DescribeStacksCommand).resolves(described(without(stackOutputs(), 'JudgeDeadLetterQueueUrl')));
    await expect(resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' })).rejects.toThrow(
      'stack "Anyprefer" has no output JudgeDeadLetterQueueUrl',
    );
  });

  it('names every missing output at once', async () => {
    cfn.on(DescribeStacksCommand).resolves(described(without(stackOutputs(), 'TableName', 'IngestQueueUrl')));
    await expect(resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' })).rejects.toThrow(
      'stack "Anyprefer" has no outputs TableName, IngestQueueUrl',
    );
  });

  it('does not need the optional outputs (secret, dashboard, topic, DLQ ARNs)', async () => {
    const optional = ['SecretArn', 'DashboardName', 'AlarmTopicArn', ...STAGES.map((s) => `${pascal(s.name)}DeadLetterQueueArn`)];
    cfn.on(DescribeStacksCommand).resolves(described(without(stackOutputs(), ...optional)));
    const stack = await resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' });
    stack.close();
    expect(stack.outputs.secretArn).toBeUndefined();
    expect(stack.outputs.queues.ingest.dlqArn).toBeUndefined();
  });

  it('says when the stack does not exist', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('Stack with id Nope does not exist'), { name: 'ValidationError' }));
    await expect(resolveStack({ stack: 'Nope', region: 'eu-west-1' })).rejects.toThrow(
      'stack "Nope" not found in eu-west-1; check --stack and --region',
    );
  });

  it('says when the stack has no outputs yet', async () => {
    cfn.on(DescribeStacksCommand).resolves(described({}, 'CREATE_IN_PROGRESS'));
    await expect(resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' })).rejects.toThrow(
      'stack "Anyprefer" is CREATE_IN_PROGRESS and has not got all its outputs yet',
    );
  });

  it('passes other CloudFormation errors through', async () => {
    cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('User is not authorized to perform: cloudformation:DescribeStacks'), { name: 'AccessDenied' }));
    await expect(resolveStack({ stack: 'Anyprefer', region: 'eu-west-1' })).rejects.toThrow('not authorized');
  });

  it('points the CloudFormation client at --endpoint-url', async () => {
    const client = cloudFormationClient('us-east-1', 'http://127.0.0.1:5000');
    const endpoint = await client.config.endpoint!();
    client.destroy();
    expect(endpoint).toMatchObject({ hostname: '127.0.0.1', port: 5000, protocol: 'http:' });
  });
});

describe('the commands report resolution errors', () => {
  it('exits 1 and names the missing output', async () => {
    cfn.on(DescribeStacksCommand).resolves(described(without(stackOutputs(), 'FinalizeQueueUrl')));
    const c = capture();
    expect(await statusCommand(['--stack', 'Anyprefer', '--region', 'eu-west-1'], c.io)).toBe(1);
    expect(c.err.join('\n')).toBe('anyprefer status: stack "Anyprefer" has no output FinalizeQueueUrl');
  });

  it('exits 2 without --stack or --resources, or with both', async () => {
    let c = capture();
    expect(await statusCommand([], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('missing --stack NAME (or --resources FILE)');
    c = capture();
    expect(await statusCommand(['--stack', 'A', '--resources', 'f.json'], c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('not both');
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
  });
});

describe('--resources FILE', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'anyprefer-cli-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads a flat object of output names without CloudFormation', async () => {
    const file = join(dir, 'flat.json');
    await writeFile(file, JSON.stringify(stackOutputs()));
    const stack = await resolveStack({ resourcesFile: file, region: 'eu-west-1', endpointUrl: 'http://127.0.0.1:5000' });
    stack.close();
    expect(stack.outputs.table).toBe('Anyprefer-Table-3');
    expect(stack.source).toBe(file);
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
  });

  it('names the missing output and the file', async () => {
    const file = join(dir, 'partial.json');
    await writeFile(file, JSON.stringify(without(stackOutputs(), 'OutputBucketName')));
    await expect(resolveStack({ resourcesFile: file })).rejects.toThrow(`${file} has no output OutputBucketName`);
  });

  it('reports a file that is missing or not JSON', async () => {
    await expect(resolveStack({ resourcesFile: join(dir, 'nope.json') })).rejects.toThrow('cannot read --resources file');
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{"InputBucketName": ');
    await expect(resolveStack({ resourcesFile: bad })).rejects.toThrow('is not JSON');
  });

  it('also takes describe-stacks output, its Outputs list and cdk --outputs-file', () => {
    const flat = stackOutputs();
    const list = Object.entries(flat).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue, Description: 'x' }));
    expect(outputsFromJson({ Stacks: [{ StackName: 'Anyprefer', Outputs: list }] }, 'f')).toEqual(flat);
    expect(outputsFromJson(list, 'f')).toEqual(flat);
    expect(outputsFromJson({ Outputs: list }, 'f')).toEqual(flat);
    expect(outputsFromJson({ Anyprefer: flat }, 'f')).toEqual(flat);
    expect(() => outputsFromJson({ ...flat, TableName: 3 }, 'f')).toThrow('the value of TableName must be a string');
    expect(() => outputsFromJson('x', 'f')).toThrow('expected a JSON object');
  });

  it('requires the outputs the stack defines for every stage', () => {
    expect(requiredOutputNames()).toEqual([
      'InputBucketName',
      'OutputBucketName',
      'TableName',
      ...STAGES.flatMap((s) => [`${pascal(s.name)}QueueUrl`, `${pascal(s.name)}DeadLetterQueueUrl`]),
    ]);
    expect(() => resourcesFromOutputs({}, 'x')).toThrow(/^x has no outputs InputBucketName, OutputBucketName, TableName, IngestQueueUrl/);
  });
});
