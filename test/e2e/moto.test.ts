// End to end on moto (an AWS-compatible server that is not ours), on loopback: the resources the
// stack defines, the S3 → SQS notification configured through the API (moto delivers the real
// event, test event included), the five Lambda handlers driven by the poller, models from the
// offline lab, and the remote command line (submit, status, pull, redrive) as a user runs it.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutBucketNotificationConfigurationCommand } from '@aws-sdk/client-s3';
import { CloudFormationClient, CreateStackCommand } from '@aws-sdk/client-cloudformation';
import {
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, destroyAwsClients, type AwsClients } from '../../layers/core/src/adapters/aws-clients';
import { DynamoStateStore } from '../../layers/core/src/adapters/dynamo-state-store';
import { parseRunConfig } from '../../layers/core/src/config';
import { LAB_URL_ENV } from '../../layers/core/src/dependencies';
import type { QueueName } from '../../layers/core/src/ports';
import { ENV, INPUT_PREFIX, STAGES } from '../../layers/core/src/resources';
import { pullCommand, redriveCommand, statusCommand, submitCommand, type CommandIo } from '../../bin/commands/index';
import type { PullResult } from '../../bin/commands/pull';
import type { RedriveReport } from '../../bin/commands/redrive';
import type { RunListReport, RunReport } from '../../bin/commands/status';
import { NOTIFICATION_CONFIGURATION_ID } from '../../local/bridge';
import { startLab, type Lab } from '../../local/lab/server';
import { startPoller, type Poller } from '../../local/poller';
import { defaultResourceNames, pipelineEnv, provision, type ProvisionedResources } from '../../local/provision';
import { MOTO_ENV, setEnv, startMoto, type Moto } from '../support/moto';

type Handler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

const pascal = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
const RUN_CONFIG = { candidatesPerPrompt: 3, seed: 3, budget: { prices: { target: { inputPerMTok: 1, outputPerMTok: 2 }, judge: { inputPerMTok: 5, outputPerMTok: 10 } } } };
const PROMPT_NAME = 'mixed ü ñ 数学.jsonl';
const INVALID_LINE = 4;
const STACK_NAME = 'AnypreferMoto';

let moto: Moto;
let restoreEnv: (() => void) | undefined;
let clients: AwsClients;
let dir: string;

beforeAll(async () => {
  // Env credentials first: createAwsClients then uses them, not its local placeholder key.
  restoreEnv = setEnv({ ...MOTO_ENV });
  moto = await startMoto();
  clients = createAwsClients({ endpointUrl: moto.url });
  dir = await mkdtemp(join(tmpdir(), 'anyprefer-moto-'));
}, 60_000);

afterAll(async () => {
  if (clients) destroyAwsClients(clients);
  await moto?.stop();
  restoreEnv?.();
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Runs a command function with captured output. */
async function cli(command: (args: string[], io: CommandIo) => Promise<number>, args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await command(args, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

/** The stack's outputs for these resources, as `cdk deploy` would print them. */
function stackOutputs(r: ProvisionedResources): Record<string, string> {
  const outputs: Record<string, string> = {
    InputBucketName: r.inputBucket,
    OutputBucketName: r.outputBucket,
    TableName: r.table,
  };
  for (const s of STAGES) {
    const q = r.queues[s.name];
    outputs[`${pascal(s.name)}QueueUrl`] = q.url;
    outputs[`${pascal(s.name)}DeadLetterQueueUrl`] = q.dlqUrl;
    outputs[`${pascal(s.name)}DeadLetterQueueArn`] = q.dlqArn;
  }
  return outputs;
}

async function writeResourcesFile(r: ProvisionedResources, name: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, JSON.stringify(stackOutputs(r), null, 2));
  return file;
}

async function depth(sqs: SQSClient, url: string): Promise<number> {
  const { Attributes: a = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return Number(a.ApproximateNumberOfMessages ?? 0) + Number(a.ApproximateNumberOfMessagesNotVisible ?? 0);
}

const readJsonl = async (file: string) =>
  (await readFile(file, 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the pipeline on moto, through the command line', () => {
  let resources: ProvisionedResources;
  let lab: Lab;
  let poller: Poller;
  const pollerErrors: string[] = [];
  let restorePipelineEnv: (() => void) | undefined;

  beforeAll(async () => {
    resources = await provision(clients, defaultResourceNames('anyprefer-moto'), { visibilityTimeoutSeconds: 30 });
    // The stack's notification (lib/anyprefer-stack.ts): object created under prompts/ → ingest queue.
    await clients.s3.send(
      new PutBucketNotificationConfigurationCommand({
        Bucket: resources.inputBucket,
        NotificationConfiguration: {
          QueueConfigurations: [
            {
              Id: NOTIFICATION_CONFIGURATION_ID,
              QueueArn: resources.queues.ingest.arn,
              Events: ['s3:ObjectCreated:*'],
              Filter: { Key: { FilterRules: [{ Name: 'prefix', Value: INPUT_PREFIX }] } },
            },
          ],
        },
      }),
    );
    lab = await startLab({ seed: RUN_CONFIG.seed, log: () => {} });
    restorePipelineEnv = setEnv({
      ...pipelineEnv(resources, moto.url),
      [LAB_URL_ENV]: lab.baseURL,
      [ENV.logLevel]: 'error',
      [ENV.metrics]: 'off',
    });
    const concurrency = parseRunConfig(RUN_CONFIG).concurrency;
    const handlers = Object.fromEntries(
      await Promise.all(STAGES.map(async (s) => [s.name, ((await import(`../../functions/${s.name}.ts`)) as { handler: Handler }).handler] as const)),
    ) as Record<QueueName, Handler>;
    poller = startPoller({
      sqs: clients.sqs,
      onError: (err, source) => pollerErrors.push(`${source.name}: ${String(err)}`),
      sources: STAGES.map((s) => ({
        name: s.name,
        queueUrl: resources.queues[s.name].url,
        queueArn: resources.queues[s.name].arn,
        handler: handlers[s.name],
        batchSize: s.batchSize,
        maxConcurrency: concurrency[s.name],
      })),
    });
    // The same outputs in moto's CloudFormation, for the --stack path.
    const cfn = new CloudFormationClient({ endpoint: moto.url, region: MOTO_ENV.AWS_REGION });
    await cfn.send(
      new CreateStackCommand({
        StackName: STACK_NAME,
        TemplateBody: JSON.stringify({
          Resources: { Handle: { Type: 'AWS::CloudFormation::WaitConditionHandle' } },
          Outputs: Object.fromEntries(Object.entries(stackOutputs(resources)).map(([k, v]) => [k, { Value: v }])),
        }),
      }),
    );
    cfn.destroy();
  }, 60_000);

  afterAll(async () => {
    await poller?.stop();
    await lab?.stop();
    restorePipelineEnv?.();
  });

  it('submits, watches, pulls and checks a run whose file name has spaces and unicode', async () => {
    const resourcesFile = await writeResourcesFile(resources, 'outputs.json');
    const viaFile = ['--resources', resourcesFile, '--endpoint-url', moto.url];
    const viaStack = ['--stack', STACK_NAME, '--endpoint-url', moto.url];

    const sample = (await readFile('examples/gsm8k-sample.jsonl', 'utf8')).split('\n').filter(Boolean).slice(0, 8);
    sample.splice(INVALID_LINE - 1, 0, '{"question": "a line cut short');
    const promptFile = join(dir, PROMPT_NAME);
    await writeFile(promptFile, `${sample.join('\n')}\n`);
    const configFile = join(dir, 'run.config.json');
    await writeFile(configFile, JSON.stringify(RUN_CONFIG));

    const submitted = await cli(submitCommand, [promptFile, '--config', configFile, '--json', ...viaFile]);
    expect(submitted.stderr).toBe('');
    expect(submitted.code).toBe(0);
    const { runId, key } = JSON.parse(submitted.stdout) as { runId: string; key: string };
    expect(key).toBe(`${INPUT_PREFIX}${PROMPT_NAME}`);

    // Poll as a user would, bounded.
    let report: RunReport | undefined;
    const deadline = Date.now() + 90_000;
    for (;;) {
      const res = await cli(statusCommand, [runId, '--json', '--price-per-1k-tokens', '0.5', ...viaStack]);
      report = JSON.parse(res.stdout) as RunReport;
      if (report.run?.status === 'complete' || report.run?.status === 'failed') break;
      if (Date.now() > deadline) {
        throw new Error(`run ${runId} not finished after 90 s: ${res.stdout}\npoller errors: ${pollerErrors.join('\n')}`);
      }
      await new Promise((r) => setTimeout(r, 1_000));
    }
    expect(report.run?.error).toBeUndefined();
    expect(report.run?.status).toBe('complete');
    // moto URL-encodes the key in the event (spaces as '+', unicode and even '/' as %XX); ingest decoded it.
    expect(report.run?.source).toMatchObject({ bucket: resources.inputBucket, key });
    expect(report.run?.lines).toBe(9);
    expect(report.run?.invalid).toBe(1);
    expect(report.terminal?.total).toBe(8);
    expect(report.inProgress).toBe(0);
    expect(report.itemsByState).toMatchObject({ generate: 0, judge: 0, feedback: 0 });
    expect(report.usage?.total.calls).toBeGreaterThan(0);
    expect(report.usage?.estimate?.usd).toBeGreaterThan(0);
    // Cost so far at the run config's own per-role prices.
    const t = report.usage!.byRole.target!;
    const j = report.usage!.byRole.judge!;
    const expected = (t.promptTokens * 1 + t.completionTokens * 2 + j.promptTokens * 5 + j.completionTokens * 10) / 1e6;
    expect(report.usage?.costUsd).toBeCloseTo(expected, 4);
    // The test event and the object's event both reached ingest, and nothing failed.
    expect(poller.stats().ingest!.records).toBeGreaterThanOrEqual(2);
    expect(pollerErrors).toEqual([]);

    const listed = await cli(statusCommand, ['--json', ...viaFile]);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as RunListReport).runs.map((r) => r.runId)).toContain(runId);
    const human = await cli(statusCommand, [runId, ...viaStack]);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain(`run ${runId}: complete`);

    const watched = await cli(statusCommand, [runId, '--watch', '--json', '--interval', '0.1', '--timeout', '5', ...viaFile]);
    expect(watched.code).toBe(0);
    expect(watched.stdout.trim().split('\n')).toHaveLength(1); // complete: no second refresh

    const outDir = join(dir, 'pulled');
    const pulled = await cli(pullCommand, [runId, '--out', outDir, '--json', ...viaStack]);
    expect(pulled.stderr).toBe('');
    expect(pulled.code).toBe(0);
    const result = JSON.parse(pulled.stdout) as PullResult;
    expect(result.verified).toBe(true);
    expect(result.problems).toEqual([]);

    const manifest = JSON.parse(await readFile(join(outDir, 'manifest.json'), 'utf8'));
    expect(manifest.simulation).toBe(true);
    expect(manifest.source.key).toBe(key);
    const c = manifest.counts;
    expect(c.lines).toBe(9);
    expect(c.accepted + c.rejected + c.invalid + c.deadLettered).toBe(9);
    expect(c.invalid).toBe(1);
    expect(c.accepted).toBeGreaterThan(0);

    const invalid = await readJsonl(join(outDir, 'invalid.jsonl'));
    expect(invalid).toHaveLength(1);
    expect(invalid[0]).toMatchObject({ line: INVALID_LINE });
    expect(String(invalid[0]!.reason)).not.toBe('');

    const pairs = await readJsonl(join(outDir, 'pairs.trl.jsonl'));
    expect(pairs).toHaveLength(c.accepted);
    for (const row of pairs) {
      const prompt = row.prompt as { role: string; content: string }[];
      const chosen = row.chosen as { content: string }[];
      const rejected = row.rejected as { content: string }[];
      expect(prompt.length).toBeGreaterThan(0);
      expect(prompt.at(-1)!.content.trim()).not.toBe('');
      expect(chosen[0]!.content.trim()).not.toBe('');
      expect(rejected[0]!.content.trim()).not.toBe('');
      expect(chosen[0]!.content).not.toBe(rejected[0]!.content);
    }
    expect(await readJsonl(join(outDir, 'rejected.jsonl'))).toHaveLength(c.rejected + c.deadLettered);

    const dry = await cli(redriveCommand, ['--dry-run', '--json', ...viaFile]);
    expect(dry.code).toBe(0);
    const counts = JSON.parse(dry.stdout) as RedriveReport;
    expect(Object.keys(counts.stages).sort()).toEqual(STAGES.map((s) => s.name).sort());
    for (const s of Object.values(counts.stages)) expect(s).toMatchObject({ waiting: 0, inFlight: 0, moved: 0 });
  }, 120_000);
});

describe('redrive, and runs that are not finished, on moto', () => {
  // Resources of their own, with no poller consuming them.
  let r: ProvisionedResources;
  let file: string;
  beforeAll(async () => {
    r = await provision(clients, defaultResourceNames('anyprefer-moto-idle'), { visibilityTimeoutSeconds: 30 });
    file = await writeResourcesFile(r, 'idle-outputs.json');
  });

  it('moves dead-lettered messages back to their source queues, keeping bodies and attributes', async () => {
    const flags = ['--resources', file, '--endpoint-url', moto.url, '--json'];

    // A real dead-letter: finalize allows 3 receives; moto moves the message on the next one.
    const finalizeBody = JSON.stringify({ runId: 'lost-run-1' });
    await clients.sqs.send(new SendMessageCommand({ QueueUrl: r.queues.finalize.url, MessageBody: finalizeBody }));
    for (let i = 0; i < 4; i++) {
      await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: r.queues.finalize.url, VisibilityTimeout: 0, WaitTimeSeconds: 0 }));
    }
    expect(await depth(clients.sqs, r.queues.finalize.dlqUrl)).toBe(1);
    // And one put straight into the generate dead-letter queue, with a message attribute.
    const generateBody = JSON.stringify({ runId: 'lost-run-1', itemId: 'L00000001', stage: 'generate', iteration: 1 });
    await clients.sqs.send(
      new SendMessageCommand({
        QueueUrl: r.queues.generate.dlqUrl,
        MessageBody: generateBody,
        MessageAttributes: { origin: { DataType: 'String', StringValue: 'test' } },
      }),
    );

    const dry = await cli(redriveCommand, ['--dry-run', ...flags]);
    expect(dry.code).toBe(0);
    const before = JSON.parse(dry.stdout) as RedriveReport;
    expect(before.stages.finalize?.waiting).toBe(1);
    expect(before.stages.generate?.waiting).toBe(1);
    expect(before.moved).toBe(0);

    const moved = await cli(redriveCommand, flags);
    expect(moved.stderr).toBe('');
    expect(moved.code).toBe(0);
    const report = JSON.parse(moved.stdout) as RedriveReport;
    expect(report).toMatchObject({ moved: 2, failed: 0, limited: false });
    expect(report.stages.finalize?.moved).toBe(1);
    expect(report.stages.generate?.moved).toBe(1);

    for (const s of STAGES) expect(await depth(clients.sqs, r.queues[s.name].dlqUrl)).toBe(0);
    const back = await clients.sqs.send(
      new ReceiveMessageCommand({ QueueUrl: r.queues.generate.url, MaxNumberOfMessages: 10, MessageAttributeNames: ['All'], WaitTimeSeconds: 1 }),
    );
    expect(back.Messages?.map((m) => m.Body)).toEqual([generateBody]);
    expect(back.Messages?.[0]?.MessageAttributes?.origin?.StringValue).toBe('test');
    const final = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: r.queues.finalize.url, WaitTimeSeconds: 1 }));
    expect(final.Messages?.map((m) => m.Body)).toEqual([finalizeBody]);

    // --max bounds the move.
    for (let i = 0; i < 3; i++) {
      await clients.sqs.send(new SendMessageCommand({ QueueUrl: r.queues.judge.dlqUrl, MessageBody: `{"n":${i}}` }));
    }
    const limited = await cli(redriveCommand, ['--stage', 'judge', '--max', '2', ...flags]);
    expect(limited.code).toBe(0);
    expect(JSON.parse(limited.stdout)).toMatchObject({ moved: 2, limited: true });
    expect(await depth(clients.sqs, r.queues.judge.dlqUrl)).toBe(1);
    expect(await depth(clients.sqs, r.queues.judge.url)).toBe(2);
  }, 60_000);

  it('pull refuses a run that is not complete, and status --watch gives up at its timeout', async () => {
    const flags = ['--resources', file, '--endpoint-url', moto.url];
    const state = new DynamoStateStore(clients.dynamo, r.table);
    const runId = 'unfinished-run-1';
    await state.createRun({
      runId,
      status: 'active',
      source: { bucket: r.inputBucket, key: 'prompts/unfinished.jsonl' },
      config: parseRunConfig({}),
      createdAt: new Date().toISOString(),
      ingested: true,
      lines: 3,
      items: 3,
      invalid: 0,
      outputPrefix: `datasets/${runId}/`,
    });
    await state.recordTerminal(runId, 'L00000001', 'accepted');

    const outDir = join(dir, 'unfinished');
    const refused = await cli(pullCommand, [runId, '--out', outDir, ...flags]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`run ${runId} is not complete yet (active; 1 of 3 items done)`);
    expect(refused.stderr).toContain('--partial');
    const partial = await cli(pullCommand, [runId, '--out', outDir, '--partial', '--json', ...flags]);
    expect(partial.code).toBe(0);
    expect(JSON.parse(partial.stdout)).toMatchObject({ status: 'active', files: [], verified: false });

    const missing = await cli(pullCommand, ['no-such-run', ...flags]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('run no-such-run not found');

    const watched = await cli(statusCommand, [runId, '--watch', '--json', '--interval', '0.2', '--timeout', '1', ...flags]);
    expect(watched.code).toBe(1);
    expect(watched.stderr).toContain('stopped watching');
    const reports = watched.stdout.trim().split('\n').map((l) => JSON.parse(l) as RunReport);
    expect(reports.length).toBeGreaterThanOrEqual(2);
    expect(reports[0]).toMatchObject({ found: true, inProgress: 2, terminal: { accepted: 1, total: 1 } });
  }, 30_000);
});
