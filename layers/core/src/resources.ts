// The one definition of the pipeline's AWS resources. The CDK stack (lib/) and the embedded
// runtime (local/) both build from it, so their buckets, queues and table cannot drift apart.
import type { QueueName } from './ports';

export interface StageQueueSpec {
  /** Logical stage name; also the handler file in functions/. */
  name: QueueName;
  /** Lambda timeout; the queue's visibility timeout is six times this (AWS guidance). */
  functionTimeoutSeconds: number;
  memoryMb: number;
  /** Records per Lambda invocation. */
  batchSize: number;
  /** Deliveries before a message moves to the stage's dead-letter queue. */
  maxReceiveCount: number;
  /** How long the source queue keeps a message; its dead-letter queue keeps it longer. */
  retentionDays: number;
}

export const VISIBILITY_TIMEOUT_FACTOR = 6;
/** Dead-letter queues keep messages for the SQS maximum, longer than any source queue. */
export const DLQ_RETENTION_DAYS = 14;

export const STAGES: readonly StageQueueSpec[] = [
  { name: 'ingest', functionTimeoutSeconds: 900, memoryMb: 1024, batchSize: 1, maxReceiveCount: 3, retentionDays: 4 },
  { name: 'generate', functionTimeoutSeconds: 300, memoryMb: 512, batchSize: 5, maxReceiveCount: 5, retentionDays: 4 },
  { name: 'judge', functionTimeoutSeconds: 300, memoryMb: 512, batchSize: 5, maxReceiveCount: 5, retentionDays: 4 },
  { name: 'feedback', functionTimeoutSeconds: 120, memoryMb: 256, batchSize: 5, maxReceiveCount: 5, retentionDays: 4 },
  { name: 'finalize', functionTimeoutSeconds: 900, memoryMb: 1024, batchSize: 1, maxReceiveCount: 3, retentionDays: 4 },
];

export function stageSpec(name: QueueName): StageQueueSpec {
  const spec = STAGES.find((s) => s.name === name);
  if (!spec) throw new Error(`unknown stage ${name}`);
  return spec;
}

export const visibilityTimeoutSeconds = (spec: StageQueueSpec): number =>
  spec.functionTimeoutSeconds * VISIBILITY_TIMEOUT_FACTOR;

/** Key layout of the input and output buckets. */
export const INPUT_PREFIX = 'prompts/';
export const KNOWLEDGE_PREFIX = 'knowledge/';
export const DATASET_PREFIX = 'datasets/';
/** Transient per-run payloads (candidates, evidence, results) in the output bucket. */
export const WORK_PREFIX = 'work/';

/** The DynamoDB table: one table, string keys `pk`/`sk`, TTL on `expiresAt`. */
export const TABLE = {
  partitionKey: 'pk',
  sortKey: 'sk',
  ttlAttribute: 'expiresAt',
  /** Lists runs newest first for `anyprefer status`. */
  runsIndex: { name: 'runs', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
} as const;

/** Days transient records (items, counters, prompt versions) live after their run is created. */
export const TRANSIENT_TTL_DAYS = 30;

/** Environment variables the stack sets on every function and the local runtime sets in-process. */
export const ENV = {
  table: 'ANYPREFER_TABLE',
  inputBucket: 'ANYPREFER_INPUT_BUCKET',
  outputBucket: 'ANYPREFER_OUTPUT_BUCKET',
  queueUrlPrefix: 'ANYPREFER_QUEUE_URL_', // + stage name upper-cased, e.g. ANYPREFER_QUEUE_URL_JUDGE
  secretArn: 'ANYPREFER_SECRET_ARN',
  defaultConfig: 'ANYPREFER_DEFAULT_CONFIG', // JSON run config from CDK context
  endpointUrl: 'ANYPREFER_ENDPOINT_URL', // local only: every AWS client goes here
  maxReceiveCount: 'ANYPREFER_MAX_RECEIVE_COUNT', // + _STAGE, e.g. ANYPREFER_MAX_RECEIVE_COUNT_JUDGE
  logLevel: 'ANYPREFER_LOG_LEVEL', // info (default), warn, error, silent
  metrics: 'ANYPREFER_METRICS', // `off` disables the EMF metric lines (the local runtime)
} as const;

export const queueUrlEnv = (name: QueueName): string => `${ENV.queueUrlPrefix}${name.toUpperCase()}`;
