// The embedded runtime's AWS: servers behind one endpoint, provisioning from resources.ts, the
// S3/SQS adapters, Lambda's SQS semantics (poller) and the S3 → SQS bridge. One server set for
// the file.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED = 'true';

import { createHash, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { HeadBucketCommand } from '@aws-sdk/client-s3';
import { DescribeTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { PutCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  type Message,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, destroyAwsClients, type AwsClients } from '../../layers/core/src/adapters/aws-clients';
import { S3BlobStore } from '../../layers/core/src/adapters/s3-blob-store';
import { SqsQueueSender, SqsSendError, queueUrlsFromEnv } from '../../layers/core/src/adapters/sqs-queue-sender';
import type { QueueName } from '../../layers/core/src/ports';
import { DLQ_RETENTION_DAYS, ENV, STAGES, TABLE, queueUrlEnv } from '../../layers/core/src/resources';
import { bridgeS3Events, decodeS3EventKey, encodeS3EventKey } from '../../local/bridge';
import { startPoller, type Poller, type PollerSource } from '../../local/poller';
import {
  defaultResourceNames,
  ensureQueue,
  pipelineEnv,
  provision,
  type ProvisionedResources,
} from '../../local/provision';
import { routeRequest } from '../../local/proxy';
import { startLocalAws, type LocalAws } from '../../local/servers';

const names = defaultResourceNames('anyprefer-it');
let aws: LocalAws;
let clients: AwsClients;
let resources: ProvisionedResources;
const pollers: Poller[] = [];

beforeAll(async () => {
  aws = await startLocalAws();
  clients = createAwsClients({ endpointUrl: aws.endpointUrl });
  resources = await provision(clients, names, { visibilityTimeoutSeconds: 30 });
});

afterAll(async () => {
  await Promise.all(pollers.map((p) => p.stop()));
  if (clients) destroyAwsClients(clients);
  await aws?.stop();
});

// ---------- helpers ----------

async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Receives (and deletes) until `count` messages arrived or the time is up. */
async function drain(queueUrl: string, count: number, timeoutMs: number): Promise<Message[]> {
  const got: Message[] = [];
  const deadline = Date.now() + timeoutMs;
  while (got.length < count && Date.now() < deadline) {
    const res = await clients.sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: Math.min(10, count - got.length),
        WaitTimeSeconds: 1,
        AttributeNames: ['All'],
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    const msgs = res.Messages ?? [];
    if (msgs.length) {
      got.push(...msgs);
      await clients.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: queueUrl,
          Entries: msgs.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
    }
  }
  return got;
}

const stageUrls = (): Record<QueueName, string> =>
  Object.fromEntries(STAGES.map((s) => [s.name, resources.queues[s.name].url])) as Record<QueueName, string>;

/** One long poll (1 s) that must come back empty. */
async function expectEmpty(queueUrl: string): Promise<void> {
  const res = await clients.sqs.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 1 }));
  expect((res.Messages ?? []).map((m) => m.Body)).toEqual([]);
}

let queueCounter = 0;
/** A fresh queue (and dead-letter queue) for one poller test. */
async function testQueue(maxReceiveCount = 5): Promise<{ url: string; arn: string; dlqUrl: string }> {
  const n = ++queueCounter;
  const dlq = await ensureQueue(clients, `it-poller-${n}-dlq`, {});
  const q = await ensureQueue(clients, `it-poller-${n}`, {
    VisibilityTimeout: '30',
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount }),
  });
  return { url: q.url, arn: q.arn, dlqUrl: dlq.url };
}

async function sendBodies(queueUrl: string, bodies: string[]): Promise<void> {
  for (let i = 0; i < bodies.length; i += 10) {
    await clients.sqs.send(
      new SendMessageBatchCommand({
        QueueUrl: queueUrl,
        Entries: bodies.slice(i, i + 10).map((b, j) => ({ Id: String(i + j), MessageBody: b })),
      }),
    );
  }
}

function poll(q: { url: string; arn: string }, source: Partial<PollerSource> & Pick<PollerSource, 'handler'>, opts: { chaos?: { duplicate?: boolean; reorder?: boolean; seed?: number } } = {}): Poller {
  const p = startPoller({
    sqs: clients.sqs,
    sources: [{ name: 'test', queueUrl: q.url, queueArn: q.arn, batchSize: 5, maxConcurrency: 1, ...source }],
    onError: () => {},
    ...opts,
  });
  pollers.push(p);
  return p;
}

// ---------- tests ----------

describe('servers and provisioning', () => {
  it('routes by target, then by signing scope, else to S3', () => {
    expect(routeRequest({ 'x-amz-target': 'DynamoDB_20120810.PutItem' })).toBe('dynamodb');
    expect(routeRequest({ 'x-amz-target': 'AmazonSQS.ReceiveMessage' })).toBe('sqs');
    expect(
      routeRequest({ authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=x' }),
    ).toBe('sqs');
    expect(routeRequest({ authorization: 'AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/s3/aws4_request' })).toBe('s3');
    expect(routeRequest({})).toBe('s3');
  });

  it('provisions what the stack creates, idempotently', async () => {
    const again = await provision(clients, names, { visibilityTimeoutSeconds: 30 });
    expect(again).toEqual(resources);
    // Existing queues are brought to the requested attributes (CreateQueue alone would refuse).
    await provision(clients, names, { visibilityTimeoutSeconds: 45 });
    const changed = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: resources.queues.judge.url, AttributeNames: ['VisibilityTimeout'] }));
    expect(changed.Attributes?.VisibilityTimeout).toBe('45');
    expect(await provision(clients, names, { visibilityTimeoutSeconds: 30 })).toEqual(resources);

    await clients.s3.send(new HeadBucketCommand({ Bucket: names.inputBucket }));
    await clients.s3.send(new HeadBucketCommand({ Bucket: names.outputBucket }));

    const { Table } = await (clients.dynamo as unknown as DynamoDBClient).send(new DescribeTableCommand({ TableName: names.table }));
    expect(Table?.KeySchema).toEqual([
      { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
      { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
    ]);
    expect(Table?.GlobalSecondaryIndexes?.[0]?.IndexName).toBe(TABLE.runsIndex.name);
    expect(Table?.GlobalSecondaryIndexes?.[0]?.Projection?.ProjectionType).toBe('ALL');

    // The GSI answers queries (and the document client drops undefined attributes).
    await clients.dynamo.send(
      new PutCommand({ TableName: names.table, Item: { pk: 'RUN#a', sk: 'META', gsi1pk: 'RUNS', gsi1sk: '2025', skip: undefined } }),
    );
    const q = await clients.dynamo.send(
      new QueryCommand({
        TableName: names.table,
        IndexName: TABLE.runsIndex.name,
        KeyConditionExpression: 'gsi1pk = :p',
        ExpressionAttributeValues: { ':p': 'RUNS' },
      }),
    );
    expect(q.Items?.map((i) => i.pk)).toEqual(['RUN#a']);

    for (const spec of STAGES) {
      const queue = resources.queues[spec.name];
      expect(queue.url.startsWith(aws.endpointUrl)).toBe(true);
      const { Attributes: a } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.url, AttributeNames: ['All'] }));
      expect(a?.VisibilityTimeout).toBe('30');
      expect(a?.MessageRetentionPeriod).toBe(String(spec.retentionDays * 86400));
      expect(JSON.parse(a?.RedrivePolicy ?? '{}')).toEqual({ deadLetterTargetArn: queue.dlqArn, maxReceiveCount: spec.maxReceiveCount });
      const { Attributes: d } = await clients.sqs.send(new GetQueueAttributesCommand({ QueueUrl: queue.dlqUrl, AttributeNames: ['All'] }));
      expect(d?.MessageRetentionPeriod).toBe(String(DLQ_RETENTION_DAYS * 86400));
    }

    const env = pipelineEnv(resources, aws.endpointUrl);
    expect(env[ENV.table]).toBe(names.table);
    expect(env[ENV.endpointUrl]).toBe(aws.endpointUrl);
    expect(env[`${ENV.maxReceiveCount}_JUDGE`]).toBe('5');
    expect(queueUrlsFromEnv(env).judge).toBe(resources.queues.judge.url);
    expect(() => queueUrlsFromEnv({ ...env, [queueUrlEnv('feedback')]: undefined })).toThrow(queueUrlEnv('feedback'));
  });
});

describe('S3BlobStore', () => {
  it('puts, gets, ranges, lists and heads objects', async () => {
    const blobs = new S3BlobStore(clients.s3);
    const bucket = names.outputBucket;
    await blobs.put(bucket, 'work/a/one.txt', 'héllo wörld', 'text/plain');
    await blobs.put(bucket, 'work/a/two.bin', new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]));
    await blobs.put(bucket, 'work/b/three.txt', 'x');

    expect(await blobs.getText(bucket, 'work/a/one.txt')).toBe('héllo wörld');
    expect(await blobs.getTextIfExists(bucket, 'work/a/missing.txt')).toBeUndefined();
    await expect(blobs.getText(bucket, 'work/a/missing.txt')).rejects.toThrow();
    expect(await blobs.head(bucket, 'work/a/missing.txt')).toBeUndefined();
    const head = await blobs.head(bucket, 'work/a/two.bin');
    expect(head?.size).toBe(10);
    expect(head?.etag).toBe(createHash('md5').update(new Uint8Array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])).digest('hex'));

    const range = await readAll(await blobs.getStream(bucket, 'work/a/two.bin', { start: 2, end: 5 }));
    expect([...range]).toEqual([2, 3, 4]);
    expect((await readAll(await blobs.getStream(bucket, 'work/a/two.bin', { start: 3, end: 3 }))).length).toBe(0);
    expect((await readAll(await blobs.getStream(bucket, 'work/a/two.bin'))).length).toBe(10);

    expect((await blobs.list(bucket, 'work/a/')).sort()).toEqual(['work/a/one.txt', 'work/a/two.bin']);
    expect(await blobs.list(bucket, 'nothing/')).toEqual([]);
  });

  it('round-trips a 6 MB stream byte-exact (multipart)', async () => {
    const blobs = new S3BlobStore(clients.s3);
    const data = randomBytes(6 * 1024 * 1024 + 123);
    async function* chunks() {
      for (let i = 0; i < data.length; i += 64 * 1024) yield data.subarray(i, i + 64 * 1024);
    }
    await blobs.putStream(names.outputBucket, 'work/big.bin', Readable.from(chunks()), 'application/octet-stream');
    expect((await blobs.head(names.outputBucket, 'work/big.bin'))?.size).toBe(data.length);
    const back = await readAll(await blobs.getStream(names.outputBucket, 'work/big.bin'));
    expect(back.equals(data)).toBe(true);
    const tail = await readAll(await blobs.getStream(names.outputBucket, 'work/big.bin', { start: data.length - 1000, end: data.length }));
    expect(tail.equals(data.subarray(data.length - 1000))).toBe(true);
  });
});

describe('SqsQueueSender', () => {
  it('delivers 25 JSON messages in batches', async () => {
    const sender = new SqsQueueSender(clients.sqs, stageUrls());
    const messages = Array.from({ length: 25 }, (_, i) => ({ runId: 'r', itemId: `i${i}`, n: i }));
    await sender.send('generate', messages);
    const got = await drain(resources.queues.generate.url, 25, 10_000);
    expect(got.map((m) => JSON.parse(m.Body ?? '{}').n as number).sort((a, b) => a - b)).toEqual(messages.map((m) => m.n));
  });

  it('rejects a message over 256 KiB before sending anything', async () => {
    const sender = new SqsQueueSender(clients.sqs, stageUrls());
    await expect(sender.send('judge', [{ ok: true }, { big: 'x'.repeat(256 * 1024) }])).rejects.toThrow(/message 1 .*256 KiB/);
    await expectEmpty(resources.queues.judge.url);
  });
  it('retries entries SQS failed, and reports the codes of those that keep failing', async () => {
    const calls: string[][] = [];
    let round = 0;
    const stub = {
      send: async (cmd: SendMessageBatchCommand) => {
        const ids = (cmd.input.Entries ?? []).map((e) => e.Id ?? '');
        calls.push(ids);
        round++;
        return {
          Successful: [],
          Failed: ids
            .filter((id) => id === '7' || (id === '3' && round === 1))
            .map((id) => (id === '7' ? { Id: id, Code: 'InvalidMessageContents', SenderFault: true } : { Id: id, Code: 'InternalError', SenderFault: false })),
        };
      },
    } as unknown as SQSClient;
    const sender = new SqsQueueSender(stub, stageUrls());
    const err = await sender.send('feedback', Array.from({ length: 8 }, (_, i) => ({ i }))).catch((e: unknown) => e);
    expect(calls).toEqual([['0', '1', '2', '3', '4', '5', '6', '7'], ['3']]);
    expect(err).toBeInstanceOf(SqsSendError);
    expect((err as SqsSendError).failures).toEqual([{ index: 7, code: 'InvalidMessageContents', senderFault: true }]);
    expect(String(err)).toMatch(/InvalidMessageContents/);
  });
});

describe('poller (Lambda SQS semantics)', () => {
  it('builds Lambda-shaped events and retries a record reported in batchItemFailures', async () => {
    const q = await testQueue();
    await sendBodies(q.url, ['a', 'fail-me', 'c']);
    const seen: { body: string; count: string }[] = [];
    let sample: { record: SQSRecord; context: Context } | undefined;
    const p = poll(q, {
      handler: async (event: SQSEvent, context: Context): Promise<SQSBatchResponse> => {
        sample ??= { record: event.Records[0]!, context };
        const failures = [];
        for (const r of event.Records) {
          seen.push({ body: r.body, count: r.attributes.ApproximateReceiveCount });
          if (r.body === 'fail-me' && r.attributes.ApproximateReceiveCount === '1') failures.push({ itemIdentifier: r.messageId });
        }
        return { batchItemFailures: failures };
      },
    });
    await waitFor(() => seen.some((s) => s.body === 'fail-me' && s.count === '2'), 10_000, 'the failed record again');
    await p.stop();
    expect(seen.filter((s) => s.body === 'a')).toEqual([{ body: 'a', count: '1' }]);
    expect(seen.filter((s) => s.body === 'fail-me').map((s) => s.count)).toEqual(['1', '2']);
    expect(p.stats().test).toMatchObject({ records: 4, failures: 1 });

    const { record, context } = sample!;
    expect(record.eventSource).toBe('aws:sqs');
    expect(record.eventSourceARN).toBe(q.arn);
    expect(record.awsRegion).toBe(clients.region);
    expect(record.md5OfBody).toBe(createHash('md5').update(record.body).digest('hex'));
    expect(Object.keys(record.attributes)).toEqual(['ApproximateReceiveCount', 'SentTimestamp', 'SenderId', 'ApproximateFirstReceiveTimestamp']);
    expect(record.messageAttributes).toEqual({});
    expect(context.functionName).toBe('anyprefer-test');
    expect(context.getRemainingTimeInMillis()).toBeGreaterThan(50_000);
    expect(context.awsRequestId).toMatch(/^[0-9a-f-]{36}$/);
    // Nothing left behind.
    await expectEmpty(q.url);
  });

  it('moves a record that always fails to the dead-letter queue after maxReceiveCount', async () => {
    const q = await testQueue(2);
    await sendBodies(q.url, ['poison']);
    const counts: string[] = [];
    const p = poll(q, {
      handler: async (event) => {
        for (const r of event.Records) counts.push(r.attributes.ApproximateReceiveCount);
        return { batchItemFailures: event.Records.map((r) => ({ itemIdentifier: r.messageId })) };
      },
    });
    const dead = await drain(q.dlqUrl, 1, 12_000);
    await p.stop();
    expect(dead.map((m) => m.Body)).toEqual(['poison']);
    expect(counts).toEqual(['1', '2']);
  });

  it('keeps at most maxConcurrency batches in flight', async () => {
    const q = await testQueue();
    await sendBodies(q.url, Array.from({ length: 12 }, (_, i) => `m${i}`));
    let current = 0;
    let max = 0;
    const done = new Set<string>();
    const p = poll(q, {
      batchSize: 1,
      maxConcurrency: 3,
      handler: async (event) => {
        current++;
        max = Math.max(max, current);
        expect(p.inFlight()).toBeLessThanOrEqual(3);
        await new Promise((r) => setTimeout(r, 150));
        for (const r of event.Records) done.add(r.body);
        current--;
      },
    });
    await waitFor(() => done.size === 12, 15_000, 'all 12 messages');
    await p.stop();
    expect(max).toBe(3);
    expect(p.inFlight()).toBe(0);
  });

  it('retries the whole batch when the handler throws', async () => {
    const q = await testQueue();
    await sendBodies(q.url, ['x', 'y', 'z']);
    let calls = 0;
    const ok: { body: string; count: string }[] = [];
    const p = poll(q, {
      handler: async (event) => {
        if (++calls === 1) throw new Error('boom');
        for (const r of event.Records) ok.push({ body: r.body, count: r.attributes.ApproximateReceiveCount });
      },
    });
    await waitFor(() => ok.length === 3, 10_000, 'the batch to succeed');
    await p.stop();
    expect(ok.map((o) => o.body).sort()).toEqual(['x', 'y', 'z']);
    expect(ok.every((o) => o.count === '2')).toBe(true);
    expect(p.stats().test?.failures).toBe(3);
  });

  it('chaos.duplicate delivers every message exactly twice (also reordered)', async () => {
    const q = await testQueue();
    const bodies = Array.from({ length: 6 }, (_, i) => JSON.stringify({ i }));
    await sendBodies(q.url, bodies);
    const seen = new Map<string, number>();
    const copies: string[] = [];
    const p = poll(
      q,
      {
        maxConcurrency: 2,
        handler: async (event) => {
          for (const r of event.Records) {
            seen.set(r.body, (seen.get(r.body) ?? 0) + 1);
            const copyOf = r.messageAttributes['anyprefer-chaos-copy'];
            if (copyOf) copies.push(copyOf.stringValue ?? '');
          }
        },
      },
      { chaos: { duplicate: true, reorder: true, seed: 7 } },
    );
    await waitFor(() => bodies.every((b) => seen.get(b) === 2), 10_000, 'two deliveries of each message');
    await new Promise((r) => setTimeout(r, 1_500)); // no third delivery
    await p.stop();
    expect(bodies.map((b) => seen.get(b))).toEqual(bodies.map(() => 2));
    expect(copies).toHaveLength(6);
    expect(p.stats().test?.copies).toBe(6);
  });

  it('stops within 1.5 s while long-polling', async () => {
    const q = await testQueue();
    const p = startPoller({
      sqs: clients.sqs,
      waitTimeSeconds: 5,
      onError: () => {},
      sources: [{ name: 'idle', queueUrl: q.url, queueArn: q.arn, batchSize: 5, maxConcurrency: 2, handler: async () => {} }],
    });
    await new Promise((r) => setTimeout(r, 300));
    const t0 = Date.now();
    await p.stop();
    expect(Date.now() - t0).toBeLessThanOrEqual(1_500);
  });
});

describe('S3 → SQS bridge', () => {
  it('encodes keys the way S3 notifications do', () => {
    expect(encodeS3EventKey('prompts/my file ü+(1).jsonl')).toBe('prompts/my+file+%C3%BC%2B%281%29.jsonl');
    expect(decodeS3EventKey(encodeS3EventKey('a b/ü+%.x'))).toBe('a b/ü+%.x');
  });

  it('sends the test event, then an S3 notification per object created in the input bucket', async () => {
    const ingestUrl = resources.queues.ingest.url;
    const stop = bridgeS3Events(aws.s3rver, { sqs: clients.sqs, inputBucket: names.inputBucket, ingestQueueUrl: ingestUrl, onError: () => {} });
    const blobs = new S3BlobStore(clients.s3);
    const key = 'prompts/my file ü.jsonl';
    const content = '{"prompt":"1+1?"}\n';
    try {
      await blobs.put(names.inputBucket, key, content);
      await blobs.put(names.outputBucket, 'not/this.txt', 'ignored: other bucket');
      const got = await drain(ingestUrl, 2, 10_000);
      const bodies = got.map((m) => JSON.parse(m.Body ?? '{}') as Record<string, unknown>);
      const test = bodies.find((b) => b.Event === 's3:TestEvent');
      expect(test).toMatchObject({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: names.inputBucket });

      const note = bodies.find((b) => Array.isArray(b.Records)) as { Records: any[] } | undefined;
      expect(note?.Records).toHaveLength(1);
      const rec = note!.Records[0];
      expect(rec).toMatchObject({
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: clients.region,
        eventName: 'ObjectCreated:Put',
        s3: {
          s3SchemaVersion: '1.0',
          configurationId: 'anyprefer-ingest',
          bucket: { name: names.inputBucket, arn: `arn:aws:s3:::${names.inputBucket}` },
          object: { size: Buffer.byteLength(content), eTag: createHash('md5').update(content).digest('hex') },
        },
      });
      expect(rec.s3.object.key).toBe('prompts/my+file+%C3%BC.jsonl');
      expect(decodeURIComponent(String(rec.s3.object.key).replace(/\+/g, ' '))).toBe(key);
      expect(rec.s3.object.sequencer).toMatch(/^[0-9A-F]{16,}$/);
      await expectEmpty(ingestUrl); // nothing for the output bucket
    } finally {
      await stop();
    }
  });
});

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(Buffer.from(c as Uint8Array));
  return Buffer.concat(chunks);
}
