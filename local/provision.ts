// Creates what the CDK stack creates (two buckets, the table, a queue and a dead-letter queue per
// stage), from the one definition in resources.ts, on any AWS-compatible endpoint. Idempotent:
// existing resources are kept, and a queue's attributes are brought to what resources.ts says.
import { CreateBucketCommand, HeadBucketCommand, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import {
  CreateTableCommand,
  DescribeTableCommand,
  DescribeTimeToLiveCommand,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateQueueCommand,
  GetQueueAttributesCommand,
  GetQueueUrlCommand,
  SetQueueAttributesCommand,
  type QueueAttributeName,
} from '@aws-sdk/client-sqs';
import type { AwsClients } from '../layers/core/src/adapters/aws-clients';
import type { QueueName } from '../layers/core/src/ports';
import {
  DLQ_RETENTION_DAYS,
  ENV,
  STAGES,
  TABLE,
  queueUrlEnv,
  visibilityTimeoutSeconds,
  type StageQueueSpec,
} from '../layers/core/src/resources';

export interface ResourceNames {
  inputBucket: string;
  outputBucket: string;
  table: string;
  /** Queue names are `<queuePrefix><stage>` and `<queuePrefix><stage>-dlq`. */
  queuePrefix: string;
}

export interface ProvisionedQueue {
  url: string;
  arn: string;
  dlqUrl: string;
  dlqArn: string;
}

export interface ProvisionedResources {
  inputBucket: string;
  outputBucket: string;
  table: string;
  queues: Record<QueueName, ProvisionedQueue>;
}

export interface ProvisionOptions {
  /** Overrides every stage's visibility timeout (the stack's is 6 × the function timeout). */
  visibilityTimeoutSeconds?: number;
}

const DAY_SECONDS = 86_400;
/** Bound on waiting for a new table to become ACTIVE. */
const TABLE_ACTIVE_TIMEOUT_MS = 30_000;

export function defaultResourceNames(prefix = 'anyprefer'): ResourceNames {
  return {
    inputBucket: `${prefix}-input`,
    outputBucket: `${prefix}-output`,
    table: `${prefix}-state`,
    queuePrefix: `${prefix}-`,
  };
}

export const queueName = (names: ResourceNames, stage: QueueName): string => `${names.queuePrefix}${stage}`;
export const dlqName = (names: ResourceNames, stage: QueueName): string => `${names.queuePrefix}${stage}-dlq`;

export async function provision(
  clients: AwsClients,
  names: ResourceNames,
  opts: ProvisionOptions = {},
): Promise<ProvisionedResources> {
  await Promise.all([ensureBucket(clients, names.inputBucket), ensureBucket(clients, names.outputBucket)]);
  await ensureTable(clients, names.table);
  const queues = {} as Record<QueueName, ProvisionedQueue>;
  for (const spec of STAGES) {
    queues[spec.name] = await ensureStageQueues(clients, names, spec, opts);
  }
  return { inputBucket: names.inputBucket, outputBucket: names.outputBucket, table: names.table, queues };
}

/**
 * The environment the functions get from the stack, for running the stages in-process.
 * The stack sets `ANYPREFER_MAX_RECEIVE_COUNT` per function (each stage's own value); one process
 * hosting every stage gets `ANYPREFER_MAX_RECEIVE_COUNT_<STAGE>` instead.
 */
export function pipelineEnv(resources: ProvisionedResources, endpointUrl?: string): Record<string, string> {
  const env: Record<string, string> = {
    [ENV.table]: resources.table,
    [ENV.inputBucket]: resources.inputBucket,
    [ENV.outputBucket]: resources.outputBucket,
  };
  for (const spec of STAGES) {
    env[queueUrlEnv(spec.name)] = resources.queues[spec.name].url;
    env[`${ENV.maxReceiveCount}_${spec.name.toUpperCase()}`] = String(spec.maxReceiveCount);
  }
  if (endpointUrl) env[ENV.endpointUrl] = endpointUrl;
  return env;
}

// ---------- S3 ----------

async function ensureBucket(clients: AwsClients, bucket: string): Promise<void> {
  try {
    await clients.s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return;
  } catch (err) {
    if (httpStatus(err) !== 404 && errorName(err) !== 'NotFound' && errorName(err) !== 'NoSuchBucket') throw err;
  }
  try {
    await clients.s3.send(
      new CreateBucketCommand({
        Bucket: bucket,
        // us-east-1 is the one region that rejects an explicit location constraint.
        ...(clients.region === 'us-east-1'
          ? {}
          : { CreateBucketConfiguration: { LocationConstraint: clients.region as BucketLocationConstraint } }),
      }),
    );
  } catch (err) {
    if (errorName(err) !== 'BucketAlreadyOwnedByYou') throw err;
  }
}

// ---------- DynamoDB ----------

async function ensureTable(clients: AwsClients, table: string): Promise<void> {
  // The document client sends plain DynamoDB commands unchanged (it only translates its own).
  const ddb = clients.dynamo as unknown as DynamoDBClient;
  let exists = true;
  try {
    await ddb.send(new DescribeTableCommand({ TableName: table }));
  } catch (err) {
    if (errorName(err) !== 'ResourceNotFoundException') throw err;
    exists = false;
  }
  if (!exists) {
    try {
      await ddb.send(
        new CreateTableCommand({
          TableName: table,
          BillingMode: 'PAY_PER_REQUEST',
          AttributeDefinitions: [
            { AttributeName: TABLE.partitionKey, AttributeType: 'S' },
            { AttributeName: TABLE.sortKey, AttributeType: 'S' },
            { AttributeName: TABLE.runsIndex.partitionKey, AttributeType: 'S' },
            { AttributeName: TABLE.runsIndex.sortKey, AttributeType: 'S' },
          ],
          KeySchema: [
            { AttributeName: TABLE.partitionKey, KeyType: 'HASH' },
            { AttributeName: TABLE.sortKey, KeyType: 'RANGE' },
          ],
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
        }),
      );
    } catch (err) {
      // Another provisioner won the race.
      if (errorName(err) !== 'ResourceInUseException') throw err;
    }
  }
  await waitForTableActive(ddb, table);
  await ensureTtl(ddb, table);
}

async function waitForTableActive(ddb: DynamoDBClient, table: string): Promise<void> {
  const deadline = Date.now() + TABLE_ACTIVE_TIMEOUT_MS;
  for (let delay = 20; ; delay = Math.min(delay * 2, 500)) {
    const { Table } = await ddb.send(new DescribeTableCommand({ TableName: table }));
    const indexesActive = (Table?.GlobalSecondaryIndexes ?? []).every((i) => i.IndexStatus === 'ACTIVE');
    if (Table?.TableStatus === 'ACTIVE' && indexesActive) return;
    if (Date.now() > deadline) throw new Error(`table ${table} did not become ACTIVE within ${TABLE_ACTIVE_TIMEOUT_MS} ms`);
    await sleep(delay);
  }
}

async function ensureTtl(ddb: DynamoDBClient, table: string): Promise<void> {
  try {
    const { TimeToLiveDescription: ttl } = await ddb.send(new DescribeTimeToLiveCommand({ TableName: table }));
    if (
      (ttl?.TimeToLiveStatus === 'ENABLED' || ttl?.TimeToLiveStatus === 'ENABLING') &&
      ttl.AttributeName === TABLE.ttlAttribute
    ) {
      return;
    }
    await ddb.send(
      new UpdateTimeToLiveCommand({
        TableName: table,
        TimeToLiveSpecification: { AttributeName: TABLE.ttlAttribute, Enabled: true },
      }),
    );
  } catch (err) {
    // dynalite has no TTL API (UnknownOperationException); items then simply never expire locally.
    if (!isUnsupportedOperation(err)) throw err;
  }
}

// ---------- SQS ----------

async function ensureStageQueues(
  clients: AwsClients,
  names: ResourceNames,
  spec: StageQueueSpec,
  opts: ProvisionOptions,
): Promise<ProvisionedQueue> {
  const dlq = await ensureQueue(clients, dlqName(names, spec.name), {
    MessageRetentionPeriod: String(DLQ_RETENTION_DAYS * DAY_SECONDS),
  });
  const source = await ensureQueue(clients, queueName(names, spec.name), {
    VisibilityTimeout: String(opts.visibilityTimeoutSeconds ?? visibilityTimeoutSeconds(spec)),
    MessageRetentionPeriod: String(spec.retentionDays * DAY_SECONDS),
    RedrivePolicy: JSON.stringify({ deadLetterTargetArn: dlq.arn, maxReceiveCount: spec.maxReceiveCount }),
  });
  return { url: source.url, arn: source.arn, dlqUrl: dlq.url, dlqArn: dlq.arn };
}

/**
 * Creates a standard queue, or brings an existing one's attributes to `attributes`
 * (CreateQueue on an existing name with different attributes fails with QueueAlreadyExists).
 */
export async function ensureQueue(
  clients: AwsClients,
  name: string,
  attributes: Partial<Record<QueueAttributeName, string>>,
): Promise<{ url: string; arn: string }> {
  let url: string | undefined;
  try {
    url = (await clients.sqs.send(new CreateQueueCommand({ QueueName: name, Attributes: attributes }))).QueueUrl;
  } catch (err) {
    const name_ = errorName(err);
    if (name_ !== 'QueueAlreadyExists' && name_ !== 'QueueNameExists') throw err;
    url = (await clients.sqs.send(new GetQueueUrlCommand({ QueueName: name }))).QueueUrl;
    if (url) await clients.sqs.send(new SetQueueAttributesCommand({ QueueUrl: url, Attributes: attributes }));
  }
  if (!url) throw new Error(`no URL for queue ${name}`);
  const { Attributes } = await clients.sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['QueueArn'] }),
  );
  const arn = Attributes?.QueueArn;
  if (!arn) throw new Error(`no ARN for queue ${name}`);
  return { url, arn };
}

// ---------- helpers ----------

function errorName(err: unknown): string | undefined {
  const e = err as { name?: string; Code?: string } | undefined;
  return e?.name ?? e?.Code;
}

function httpStatus(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function isUnsupportedOperation(err: unknown): boolean {
  const name = errorName(err) ?? '';
  const message = (err as { message?: string } | undefined)?.message ?? '';
  return (
    name === 'UnknownOperationException' ||
    name === 'UnrecognizedClientException' ||
    name === 'NotImplemented' ||
    /not (yet )?(implemented|supported)|unknown operation/i.test(message)
  );
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
