// The synthesized stack, property by property (no whole-template snapshot): one synth with the
// default context (assets bundled, so the bundles can be checked too) and one with custom context.
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Match } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../layers/core/src/config';
import type { QueueName } from '../../layers/core/src/ports';
import {
  DLQ_RETENTION_DAYS,
  ENV,
  INPUT_PREFIX,
  KNOWLEDGE_PREFIX,
  STAGES,
  TABLE,
  TRANSIENT_TTL_DAYS,
  VISIBILITY_TIMEOUT_FACTOR,
  WORK_PREFIX,
  queueUrlEnv,
} from '../../layers/core/src/resources';
import { CORE_LAYER_DIR, CORE_LAYER_ENTRY } from '../../lib/core-layer';
import { logicalId, refersTo, roleStatements, synth, type Statement, type Synthesized } from './support';

const DAY = 86_400;
const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const ITEM_STAGES: QueueName[] = ['generate', 'judge', 'feedback'];
const MODEL_STAGES: QueueName[] = ['generate', 'judge', 'feedback'];

let d: Synthesized; // default context, bundled
let c: Synthesized; // custom context, not bundled
const TOOL_ARN = 'arn:aws:lambda:eu-west-1:123456789012:function:anyprefer-tool-search';
const CUSTOM_CONFIG = {
  candidatesPerPrompt: 6,
  concurrency: { feedback: 3 },
  models: {
    target: { model: 'Qwen/Qwen2.5-7B-Instruct', baseURL: 'http://vllm.internal:8000/v1', apiKeyName: 'VLLM_KEY' },
    judge: { model: 'gpt-4o-mini' },
    reward: { model: 'gpt-4o-mini' },
    optimizer: { model: 'gpt-4o-mini' },
  },
};

beforeAll(() => {
  d = synth({}, { bundle: true });
  c = synth(
    {
      'anyprefer:config': JSON.stringify(CUSTOM_CONFIG), // as `-c key=JSON` passes it: a string
      'anyprefer:maxConcurrency': { generate: 12, judge: '7' },
      'anyprefer:alarmEmail': 'ops@example.com',
      'anyprefer:destroyOnRemoval': 'true',
      'anyprefer:lambdaToolArns': [TOOL_ARN],
    },
    { bundle: false },
  );
});
afterAll(() => {
  d?.cleanup();
  c?.cleanup();
});

const resource = (s: Synthesized, id: string) => s.json.Resources[id];
const props = (s: Synthesized, id: string) => resource(s, id).Properties;
const resourcesOfType = (s: Synthesized, type: string) =>
  Object.entries<any>(s.json.Resources).filter(([, r]) => r.Type === type);
const ids = (s: Synthesized, name: QueueName) => {
  const stage = s.stack.stages[name];
  return {
    queue: logicalId(s.stack, stage.queue),
    dlq: logicalId(s.stack, stage.deadLetterQueue),
    fn: logicalId(s.stack, stage.function),
    role: logicalId(s.stack, stage.role),
    logs: logicalId(s.stack, stage.logGroup),
  };
};
const statements = (s: Synthesized, name: QueueName): Statement[] => roleStatements(s.json, ids(s, name).role);
const allows = (st: Statement[], action: string, resourceId: string, keyPattern?: string) =>
  st.some(
    (x) =>
      x.Effect === 'Allow' &&
      x.Action.includes(action) &&
      x.Resource.some((r) => refersTo(r, resourceId) && (keyPattern === undefined || JSON.stringify(r).includes(`/${keyPattern}`))),
  );

describe('stage queues', () => {
  it.each(STAGES.map((s) => [s.name, s] as const))('%s: redrive to its own DLQ after maxReceiveCount deliveries', (name, spec) => {
    const { queue, dlq } = ids(d, name);
    expect(props(d, queue).RedrivePolicy).toEqual({
      deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] },
      maxReceiveCount: spec.maxReceiveCount,
    });
    expect(props(d, dlq).RedrivePolicy).toBeUndefined();
  });

  it.each(STAGES.map((s) => [s.name, s] as const))('%s: the DLQ keeps messages longer than the queue', (name, spec) => {
    const { queue, dlq } = ids(d, name);
    expect(props(d, queue).MessageRetentionPeriod).toBe(spec.retentionDays * DAY);
    expect(props(d, dlq).MessageRetentionPeriod).toBe(DLQ_RETENTION_DAYS * DAY);
    expect(props(d, dlq).MessageRetentionPeriod).toBeGreaterThan(props(d, queue).MessageRetentionPeriod);
  });

  it.each(STAGES.map((s) => [s.name, s] as const))('%s: visibility timeout is 6 × the function timeout', (name, spec) => {
    const { queue, fn } = ids(d, name);
    expect(VISIBILITY_TIMEOUT_FACTOR).toBeGreaterThanOrEqual(6); // AWS guidance for Lambda event sources
    expect(props(d, fn).Timeout).toBe(spec.functionTimeoutSeconds);
    expect(props(d, queue).VisibilityTimeout).toBe(VISIBILITY_TIMEOUT_FACTOR * props(d, fn).Timeout);
  });

  it('every queue (5 stages + 5 DLQs) is SQS-SSE encrypted and denies non-TLS access', () => {
    const queues = resourcesOfType(d, 'AWS::SQS::Queue');
    expect(queues).toHaveLength(STAGES.length * 2);
    const policies = resourcesOfType(d, 'AWS::SQS::QueuePolicy').map(([, p]) => p.Properties);
    for (const [id, q] of queues) {
      expect(q.Properties.SqsManagedSseEnabled, id).toBe(true);
      const own = policies.filter((p) => p.Queues.some((r: any) => r.Ref === id));
      const denies = own.flatMap((p) => p.PolicyDocument.Statement).filter((s: any) => s.Effect === 'Deny');
      expect(denies, id).toContainEqual(
        expect.objectContaining({ Action: 'sqs:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } }, Principal: { AWS: '*' } }),
      );
    }
  });
});

describe('event source mappings', () => {
  const defaults = parseRunConfig({}).concurrency;
  const mapping = (s: Synthesized, name: QueueName) => {
    const { queue, fn } = ids(s, name);
    const found = resourcesOfType(s, 'AWS::Lambda::EventSourceMapping').filter(
      ([, m]) => refersTo(m.Properties.EventSourceArn, queue) && m.Properties.FunctionName.Ref === fn,
    );
    expect(found).toHaveLength(1);
    return found[0]![1].Properties;
  };

  it.each(STAGES.map((s) => [s.name, s] as const))('%s: partial batch responses, batch size and default max concurrency', (name, spec) => {
    const m = mapping(d, name);
    expect(m.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    expect(m.BatchSize).toBe(spec.batchSize);
    expect(m.ScalingConfig).toEqual({ MaximumConcurrency: Math.max(2, defaults[name]) });
    if (spec.batchSize > 1) expect(m.MaximumBatchingWindowInSeconds).toBe(1);
    else expect(m.MaximumBatchingWindowInSeconds).toBeUndefined();
  });

  it('max concurrency follows context: anyprefer:maxConcurrency, else the run config, never below 2', () => {
    const got = Object.fromEntries(STAGES.map((s) => [s.name, mapping(c, s.name).ScalingConfig.MaximumConcurrency]));
    expect(got).toEqual({ ingest: 2, generate: 12, judge: 7, feedback: 3, finalize: 2 });
  });
});

describe('buckets', () => {
  it('all block public access, are encrypted and have TLS-only bucket policies', () => {
    const buckets = resourcesOfType(d, 'AWS::S3::Bucket');
    expect(buckets).toHaveLength(3); // input, output, access logs
    const policies = resourcesOfType(d, 'AWS::S3::BucketPolicy').map(([, p]) => p.Properties);
    for (const [id, b] of buckets) {
      expect(b.Properties.PublicAccessBlockConfiguration, id).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(b.Properties.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm, id).toMatch(
        /^(AES256|aws:kms)$/,
      );
      const policy = policies.find((p) => p.Bucket.Ref === id);
      expect(policy, id).toBeDefined();
      expect(policy.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
      expect(b.DeletionPolicy, id).toBe('Retain');
    }
  });

  it('the input bucket is versioned and logs access; work/ expires in the output bucket', () => {
    const input = props(d, logicalId(d.stack, d.stack.inputBucket));
    const output = props(d, logicalId(d.stack, d.stack.outputBucket));
    const logs = logicalId(d.stack, d.stack.accessLogsBucket);
    expect(input.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(input.LoggingConfiguration.DestinationBucketName).toEqual({ Ref: logs });
    expect(output.LoggingConfiguration.DestinationBucketName).toEqual({ Ref: logs });
    expect(output.LifecycleConfiguration.Rules).toContainEqual(
      expect.objectContaining({ Prefix: WORK_PREFIX, ExpirationInDays: TRANSIENT_TTL_DAYS, Status: 'Enabled' }),
    );
  });

  it('new prompt files notify the ingest queue (not a function), filtered on prompts/', () => {
    const notifications = resourcesOfType(d, 'Custom::S3BucketNotifications');
    expect(notifications).toHaveLength(1);
    const p = notifications[0]![1].Properties;
    expect(p.BucketName).toEqual({ Ref: logicalId(d.stack, d.stack.inputBucket) });
    expect(p.NotificationConfiguration).toEqual({
      QueueConfigurations: [
        {
          Events: ['s3:ObjectCreated:*'],
          Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: INPUT_PREFIX }] } },
          QueueArn: { 'Fn::GetAtt': [ids(d, 'ingest').queue, 'Arn'] },
        },
      ],
    });
    // ...and the ingest queue lets exactly this bucket send.
    d.template.hasResourceProperties('AWS::SQS::QueuePolicy', {
      Queues: [{ Ref: ids(d, 'ingest').queue }],
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({
            Effect: 'Allow',
            Principal: { Service: 's3.amazonaws.com' },
            Action: Match.arrayWith(['sqs:SendMessage']),
            Condition: { ArnLike: { 'aws:SourceArn': { 'Fn::GetAtt': [logicalId(d.stack, d.stack.inputBucket), 'Arn'] } } },
          }),
        ]),
      },
    });
  });

  it('dev stacks (anyprefer:destroyOnRemoval) delete buckets with their objects', () => {
    for (const [id, b] of resourcesOfType(c, 'AWS::S3::Bucket')) expect(b.DeletionPolicy, id).toBe('Delete');
    expect(resourcesOfType(c, 'Custom::S3AutoDeleteObjects')).toHaveLength(3);
    expect(resourcesOfType(d, 'Custom::S3AutoDeleteObjects')).toHaveLength(0);
  });
});

describe('table', () => {
  it('pk/sk strings, on demand, PITR, TTL, the runs GSI, encrypted, retained', () => {
    const tables = resourcesOfType(d, 'AWS::DynamoDB::Table');
    expect(tables).toHaveLength(1);
    const [, t] = tables[0]!;
    expect(t.DeletionPolicy).toBe('Retain');
    expect(t.Properties).toMatchObject({
      KeySchema: [
        { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
        { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
      ],
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
      SSESpecification: { SSEEnabled: true },
      GlobalSecondaryIndexes: [
        {
          IndexName: TABLE.runsIndex.name,
          KeySchema: [
            { AttributeName: TABLE.runsIndex.partitionKey, KeyType: 'HASH' },
            { AttributeName: TABLE.runsIndex.sortKey, KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    });
    expect(t.Properties.AttributeDefinitions).toEqual(
      expect.arrayContaining([TABLE.partitionKey, TABLE.sortKey, TABLE.runsIndex.partitionKey, TABLE.runsIndex.sortKey].map((n) => ({ AttributeName: n, AttributeType: 'S' }))),
    );
  });
});

describe('functions and the core layer', () => {
  const layerId = () => logicalId(d.stack, d.stack.coreLayer.layer);

  it('one layer, for nodejs22.x', () => {
    const layers = resourcesOfType(d, 'AWS::Lambda::LayerVersion');
    expect(layers).toHaveLength(1);
    expect(layers[0]![1].Properties.CompatibleRuntimes).toEqual(['nodejs22.x']);
  });

  it.each(STAGES.map((s) => [s.name, s] as const))('%s: nodejs22.x on arm64 with the core layer, spec memory/timeout, tracing, own log group', (name, spec) => {
    const { fn, logs, role } = ids(d, name);
    const p = props(d, fn);
    expect(p).toMatchObject({
      Runtime: 'nodejs22.x',
      Architectures: ['arm64'],
      Handler: 'index.handler',
      Layers: [{ Ref: layerId() }],
      MemorySize: spec.memoryMb,
      Timeout: spec.functionTimeoutSeconds,
      TracingConfig: { Mode: 'Active' },
      LoggingConfig: { LogGroup: { Ref: logs } },
      Role: { 'Fn::GetAtt': [role, 'Arn'] },
    });
    expect(p.ReservedConcurrentExecutions).toBeUndefined();
    expect(props(d, logs).RetentionInDays).toBe(30);
  });

  it.each(STAGES.map((s) => [s.name, s] as const))('%s: environment from ENV, every queue URL, its own receive limit', (name, spec) => {
    const vars = props(d, ids(d, name).fn).Environment.Variables;
    expect(vars[ENV.table]).toEqual({ Ref: logicalId(d.stack, d.stack.table) });
    expect(vars[ENV.inputBucket]).toEqual({ Ref: logicalId(d.stack, d.stack.inputBucket) });
    expect(vars[ENV.outputBucket]).toEqual({ Ref: logicalId(d.stack, d.stack.outputBucket) });
    expect(vars[ENV.defaultConfig]).toBe('{}');
    for (const other of STAGES) expect(vars[queueUrlEnv(other.name)]).toEqual({ Ref: ids(d, other.name).queue });
    expect(vars[`${ENV.maxReceiveCount}_${name.toUpperCase()}`]).toBe(String(spec.maxReceiveCount));
  });

  it('the default config from context reaches every function as JSON', () => {
    for (const s of STAGES) {
      const vars = props(c, ids(c, s.name).fn).Environment.Variables;
      expect(JSON.parse(vars[ENV.defaultConfig])).toEqual(CUSTOM_CONFIG);
    }
  });

  it('the handler bundles leave the core out; the layer holds it, bundled with its dependencies', () => {
    const assetDir = (code: any) => join(d.outdir, `asset.${String(code.S3Key).replace(/\.zip$/, '')}`);
    for (const s of STAGES) {
      const file = join(assetDir(props(d, ids(d, s.name).fn).Code), 'index.mjs');
      const text = readFileSync(file, 'utf8');
      expect(statSync(file).size, s.name).toBeLessThan(2048);
      expect(text).toMatch(/from "@anyprefer\/core"/);
      expect(text).not.toMatch(/runConfigSchema|zod|openai/i);
    }
    const layerDir = join(assetDir(props(d, layerId()).Content), CORE_LAYER_DIR);
    const pkg = JSON.parse(readFileSync(join(layerDir, 'package.json'), 'utf8'));
    expect(pkg).toMatchObject({ name: '@anyprefer/core', type: 'module', exports: { '.': `./${CORE_LAYER_ENTRY}` } });
    const core = readFileSync(join(layerDir, CORE_LAYER_ENTRY), 'utf8');
    expect(core.length).toBeGreaterThan(100_000); // zod, openai, powertools are inside
    expect(core).toContain('createRequire');
    expect(core).toMatch(/from\s*"@aws-sdk\/client-s3"/); // left to the Lambda runtime
    expect(core).not.toMatch(/from\s*"(zod|openai|@aws-lambda-powertools\/batch)"/);
  });

  it('in a Lambda-like layout (handler in the task dir, core in node_modules) every handler loads', () => {
    const task = join(d.outdir, 'lambda-sim');
    mkdirSync(join(task, 'node_modules'), { recursive: true });
    cpSync(join(d.outdir, `asset.${String(props(d, layerId()).Content.S3Key).replace(/\.zip$/, '')}`, 'nodejs', 'node_modules'), join(task, 'node_modules'), {
      recursive: true,
    });
    const script = STAGES.map((s) => {
      const dir = join(d.outdir, `asset.${String(props(d, ids(d, s.name).fn).Code.S3Key).replace(/\.zip$/, '')}`);
      cpSync(join(dir, 'index.mjs'), join(task, `${s.name}.mjs`));
      return `if (typeof (await import('./${s.name}.mjs')).handler !== 'function') throw new Error('${s.name}');`;
    });
    script.push(
      "const core = await import('@anyprefer/core');",
      "if (core.parseRunConfig({}).candidatesPerPrompt !== 4) throw new Error('core');",
      "console.log('ok');",
    );
    expect(existsSync(join(task, 'node_modules', '@anyprefer', 'core', 'index.mjs'))).toBe(true);
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script.join('\n')], {
      cwd: task,
      env: { ...process.env, AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' },
      encoding: 'utf8',
    });
    expect(out.trim()).toBe('ok');
  });
});

describe('secrets', () => {
  it('no API key or secret value is in the template', () => {
    for (const s of [d, c]) {
      const text = JSON.stringify(s.json);
      // (booleans, not the text: a failure must not print the template)
      expect(/(^|[^A-Za-z0-9])sk-[A-Za-z0-9_-]{8,}/.test(text), 'an sk-… key').toBe(false);
      expect(text.includes('"SecretString":'), 'a literal secret value').toBe(false);
      expect(text.includes('SecretStringValue'), 'a literal secret value').toBe(false);
    }
    const secrets = resourcesOfType(d, 'AWS::SecretsManager::Secret');
    expect(secrets).toHaveLength(1);
    expect(secrets[0]![1].Properties).toMatchObject({
      Name: 'anyprefer/model-keys',
      GenerateSecretString: { SecretStringTemplate: '{}', GenerateStringKey: 'placeholder' },
    });
    // Key names from the config may appear (they name fields of the secret), never keys.
    expect(JSON.stringify(c.json)).toContain('VLLM_KEY');
  });

  it('model-calling functions get the secret ARN as a reference, and read access; the others neither', () => {
    const secret = logicalId(d.stack, d.stack.secret);
    for (const s of STAGES) {
      const vars = props(d, ids(d, s.name).fn).Environment.Variables;
      const reads = allows(statements(d, s.name), 'secretsmanager:GetSecretValue', secret);
      if (MODEL_STAGES.includes(s.name)) {
        expect(vars[ENV.secretArn], s.name).toEqual({ Ref: secret });
        expect(reads, s.name).toBe(true);
      } else {
        expect(vars[ENV.secretArn], s.name).toBeUndefined();
        expect(reads, s.name).toBe(false);
      }
    }
  });
});

describe('least privilege', () => {
  const input = () => logicalId(d.stack, d.stack.inputBucket);
  const output = () => logicalId(d.stack, d.stack.outputBucket);

  it('no function writes or deletes in the input bucket; ingest reads prompts/, the judge knowledge/', () => {
    const readers: Partial<Record<QueueName, string>> = { ingest: `${INPUT_PREFIX}*`, judge: `${KNOWLEDGE_PREFIX}*` };
    for (const s of STAGES) {
      const st = statements(d, s.name);
      const onInput = st.filter((x) => x.Resource.some((r) => refersTo(r, input())));
      expect(onInput.flatMap((x) => x.Action).filter((a) => /Put|Delete|Abort|\*/.test(a)), s.name).toEqual([]);
      const gets = onInput
        .filter((x) => x.Action.includes('s3:GetObject'))
        .flatMap((x) => x.Resource.filter((r) => refersTo(r, input())).map((r) => JSON.stringify(r)));
      expect(gets, s.name).toEqual(readers[s.name] ? [expect.stringContaining(`"/${readers[s.name]}"`)] : []);
    }
  });

  it('datasets/ is written by finalize; ingest only writes a failed run’s manifest; nothing deletes', () => {
    for (const s of STAGES) {
      const st = statements(d, s.name);
      expect(allows(st, 's3:PutObject', output(), 'datasets/*"'), s.name).toBe(s.name === 'finalize');
      expect(st.flatMap((x) => x.Action).filter((a) => a.startsWith('s3:Delete')), s.name).toEqual([]);
    }
    expect(allows(statements(d, 'ingest'), 's3:PutObject', output(), 'datasets/*/manifest.json')).toBe(true);
    expect(allows(statements(d, 'feedback'), 's3:PutObject', output())).toBe(false);
  });

  it('queues: nothing sends to ingest, finalize sends nothing, item stages send along the pipeline', () => {
    const sends = (from: QueueName, to: QueueName) => allows(statements(d, from), 'sqs:SendMessage', ids(d, to).queue);
    for (const s of STAGES) expect(sends(s.name, 'ingest'), s.name).toBe(false);
    for (const to of STAGES) expect(sends('finalize', to.name), to.name).toBe(false);
    expect(sends('ingest', 'generate')).toBe(true);
    expect(sends('ingest', 'judge')).toBe(false);
    for (const from of [...ITEM_STAGES, 'ingest' as const]) expect(sends(from, 'finalize'), from).toBe(true);
    expect(sends('generate', 'judge')).toBe(true);
    expect(sends('judge', 'feedback')).toBe(true);
    expect(sends('feedback', 'generate')).toBe(true);
  });

  it('each function consumes only its own queue', () => {
    for (const s of STAGES) {
      for (const other of STAGES) {
        expect(allows(statements(d, s.name), 'sqs:ReceiveMessage', ids(d, other.name).queue), `${s.name} ← ${other.name}`).toBe(s.name === other.name);
      }
    }
  });

  it('no action wildcards on services; "*" resources only for X-Ray', () => {
    for (const s of STAGES) {
      for (const x of statements(d, s.name)) {
        expect(x.Action.filter((a) => a.endsWith(':*') || a === '*'), s.name).toEqual([]);
        if (x.Resource.includes('*')) expect(x.Action.every((a) => a.startsWith('xray:')), `${s.name}: ${x.Action}`).toBe(true);
      }
    }
  });

  it('the judge may invoke exactly the tool functions named in context, and nothing by default', () => {
    const invokes = (s: Synthesized, name: QueueName) => statements(s, name).filter((x) => x.Action.includes('lambda:InvokeFunction'));
    for (const st of STAGES) expect(invokes(d, st.name), st.name).toEqual([]);
    expect(invokes(c, 'judge').flatMap((x) => x.Resource)).toEqual([TOOL_ARN]);
    for (const st of STAGES.filter((x) => x.name !== 'judge')) expect(invokes(c, st.name), st.name).toEqual([]);
  });
});

describe('alarms, dashboard, outputs', () => {
  const alarms = (s: Synthesized) => resourcesOfType(s, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties);
  const topic = () => logicalId(d.stack, d.stack.alarmTopic);

  it.each(STAGES.map((s) => [s.name] as const))('%s: an alarm on its DLQ and one on function errors, both to the topic', (name) => {
    const { dlq, fn } = ids(d, name);
    const dlqAlarm = alarms(d).filter((a) => a.MetricName === 'ApproximateNumberOfMessagesVisible' && refersTo(a.Dimensions, dlq));
    expect(dlqAlarm).toHaveLength(1);
    expect(dlqAlarm[0]).toMatchObject({ Namespace: 'AWS/SQS', Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold', AlarmActions: [{ Ref: topic() }] });
    const errAlarm = alarms(d).filter((a) => a.MetricName === 'Errors' && refersTo(a.Dimensions, fn));
    expect(errAlarm).toHaveLength(1);
    expect(errAlarm[0]).toMatchObject({ Namespace: 'AWS/Lambda', Threshold: 1, Period: 300, Statistic: 'Sum', AlarmActions: [{ Ref: topic() }] });
  });

  it('the alarm email from context subscribes to the topic; none by default', () => {
    expect(resourcesOfType(d, 'AWS::SNS::Subscription')).toHaveLength(0);
    c.template.hasResourceProperties('AWS::SNS::Subscription', { Protocol: 'email', Endpoint: 'ops@example.com' });
  });

  it('the dashboard shows queues, functions and the Anyprefer custom metrics', () => {
    const dashboards = resourcesOfType(d, 'AWS::CloudWatch::Dashboard');
    expect(dashboards).toHaveLength(1);
    // The body is a Fn::Join of JSON text and references: its text parts are enough here.
    const parts: unknown[] = dashboards[0]![1].Properties.DashboardBody['Fn::Join'][1];
    const body = parts.filter((p): p is string => typeof p === 'string').join('');
    for (const metric of ['PairsAccepted', 'ItemsRejected', 'ItemsDeadLettered']) expect(body).toContain(`["Anyprefer","${metric}"`);
    for (const metric of ['ModelCalls', 'ModelErrors', 'Tokens']) {
      for (const role of ['target', 'judge', 'reward', 'optimizer']) expect(body).toContain(`["Anyprefer","${metric}","Role","${role}"`);
    }
    for (const metric of ['ApproximateNumberOfMessagesVisible', 'ApproximateNumberOfMessagesNotVisible', 'NumberOfMessagesReceived', 'Errors', 'Throttles', 'Duration']) {
      expect(body).toContain(`"${metric}"`);
    }
  });

  it('outputs every name the command line needs, without exports', () => {
    const outputs = d.json.Outputs as Record<string, { Value: unknown; Export?: unknown }>;
    const expected = [
      'InputBucketName',
      'OutputBucketName',
      'TableName',
      'SecretArn',
      'DashboardName',
      ...STAGES.flatMap((s) => [`${pascal(s.name)}QueueUrl`, `${pascal(s.name)}DeadLetterQueueUrl`]),
    ];
    for (const name of expected) {
      expect(outputs[name], name).toBeDefined();
      expect(outputs[name]!.Export, name).toBeUndefined();
    }
    expect(outputs.InputBucketName!.Value).toEqual({ Ref: logicalId(d.stack, d.stack.inputBucket) });
    expect(outputs.GenerateQueueUrl!.Value).toEqual({ Ref: ids(d, 'generate').queue });
    expect(outputs.JudgeDeadLetterQueueUrl!.Value).toEqual({ Ref: ids(d, 'judge').dlq });
  });
});
