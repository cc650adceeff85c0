// One pipeline stage: its SQS queue, the queue's dead-letter queue, the Lambda function that
// consumes it and the event source between them, with safe defaults (in the manner of the AWS
// Solutions Constructs' aws-sqs-lambda): DLQ always on, both queues encrypted and TLS-only,
// visibility timeout derived from the function timeout, partial batch responses, bounded
// concurrency. Every number comes from the stage's spec in layers/core/src/resources.ts.
import { join } from 'node:path';
import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Tracing, type ILayerVersion } from 'aws-cdk-lib/aws-lambda';
import { SqsEventSource } from 'aws-cdk-lib/aws-lambda-event-sources';
import { LogLevel, NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup, RetentionDays } from 'aws-cdk-lib/aws-logs';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';
import { DLQ_RETENTION_DAYS, ENV, VISIBILITY_TIMEOUT_FACTOR, visibilityTimeoutSeconds, type StageQueueSpec } from '../layers/core/src/resources';
import { CORE_PACKAGE, ESBUILD_TARGET, LAMBDA_RUNTIME, REPO_ROOT, RUNTIME_PROVIDED_MODULES } from './core-layer';
import { MAX_MAX_CONCURRENCY, MIN_MAX_CONCURRENCY } from './context';
import { acknowledge } from './nag-suppressions';

/** Handlers live in functions/<stage>.ts and export `handler`. */
export const FUNCTIONS_DIR = join(REPO_ROOT, 'functions');

/** The variable naming the stage's own delivery limit, e.g. ANYPREFER_MAX_RECEIVE_COUNT_JUDGE. */
export const maxReceiveCountEnv = (spec: StageQueueSpec): string => `${ENV.maxReceiveCount}_${spec.name.toUpperCase()}`;

export interface StageFunctionProps {
  /** The stage: name, timeout, memory, batch size, receive count, retention. */
  spec: StageQueueSpec;
  /** Lambda maxConcurrency of the SQS event source: the stage's only concurrency limiter. */
  maxConcurrency: number;
  /** Layers for the function; the core layer, so that `@anyprefer/core` resolves at run time. */
  layers: ILayerVersion[];
  /** Environment shared by the stages (table, buckets, queue URLs...); more can be added later. */
  environment?: Record<string, string>;
  /** Handler file; default functions/<stage>.ts. */
  entry?: string;
  /** Default: 1 second for stages that take several records per batch, none for one-record stages. */
  maxBatchingWindow?: Duration;
  /** Default: one month. */
  logRetention?: RetentionDays;
  /** Of the log group. Default: RETAIN. */
  removalPolicy?: RemovalPolicy;
}

export class StageFunction extends Construct {
  readonly spec: StageQueueSpec;
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;
  readonly function: NodejsFunction;
  readonly logGroup: LogGroup;
  readonly role: Role;
  readonly eventSource: SqsEventSource;

  constructor(scope: Construct, id: string, props: StageFunctionProps) {
    super(scope, id);
    const { spec } = props;
    validate(props);
    this.spec = spec;

    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      retentionPeriod: Duration.days(DLQ_RETENTION_DAYS),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
    });
    this.queue = new Queue(this, 'Queue', {
      retentionPeriod: Duration.days(spec.retentionDays),
      // A message a function holds must not reappear while the function (and its retries) may still run.
      visibilityTimeout: Duration.seconds(visibilityTimeoutSeconds(spec)),
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: spec.maxReceiveCount },
    });

    this.logGroup = new LogGroup(this, 'Logs', {
      retention: props.logRetention ?? RetentionDays.ONE_MONTH,
      removalPolicy: props.removalPolicy ?? RemovalPolicy.RETAIN,
    });

    // An own role instead of AWSLambdaBasicExecutionRole (logs:* on every log group): the function
    // may write to its own log group and nothing else until the stack grants more.
    this.role = new Role(this, 'Role', {
      assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
      description: `anyprefer ${spec.name} stage function`,
    });
    this.logGroup.grantWrite(this.role);

    this.function = new NodejsFunction(this, 'Function', {
      description: `anyprefer ${spec.name} stage`,
      entry: props.entry ?? join(FUNCTIONS_DIR, `${spec.name}.ts`),
      handler: 'handler',
      runtime: LAMBDA_RUNTIME,
      architecture: Architecture.ARM_64,
      memorySize: spec.memoryMb,
      timeout: Duration.seconds(spec.functionTimeoutSeconds),
      tracing: Tracing.ACTIVE,
      logGroup: this.logGroup,
      role: this.role,
      layers: props.layers,
      environment: { ...props.environment, [maxReceiveCountEnv(spec)]: String(spec.maxReceiveCount) },
      depsLockFilePath: join(REPO_ROOT, 'package-lock.json'),
      projectRoot: REPO_ROOT,
      bundling: {
        format: OutputFormat.ESM,
        target: ESBUILD_TARGET,
        mainFields: ['module', 'main'],
        // The core comes from the layer and the AWS SDK from the runtime: the bundle is the handler alone.
        externalModules: [...RUNTIME_PROVIDED_MODULES, CORE_PACKAGE],
        forceDockerBundling: false,
        minify: false,
        sourceMap: false,
        logLevel: LogLevel.ERROR,
      },
    });

    this.eventSource = new SqsEventSource(this.queue, {
      batchSize: spec.batchSize,
      maxBatchingWindow: props.maxBatchingWindow ?? (spec.batchSize > 1 ? Duration.seconds(1) : undefined),
      // The handlers return the records that failed; the others are deleted, not redelivered.
      reportBatchItemFailures: true,
      maxConcurrency: props.maxConcurrency,
    });
    this.function.addEventSource(this.eventSource);

    acknowledge(
      this.function,
      'AwsSolutions-L1',
      `Pinned to ${LAMBDA_RUNTIME.name} on purpose: the core layer is bundled for the same target (${ESBUILD_TARGET}) and ` +
        'tested on it. Moving to a newer runtime is a deliberate change of LAMBDA_RUNTIME and ESBUILD_TARGET in lib/core-layer.ts together.',
    );
    acknowledge(
      this.role,
      'AwsSolutions-IAM5[Resource::*]',
      'Active tracing adds xray:PutTraceSegments and xray:PutTelemetryRecords, which support no resource-level ' +
        'permissions (Resource must be "*"); no other statement of this role uses "*" (test/infra/stack.test.ts checks).',
    );
  }
}

function validate(props: StageFunctionProps): void {
  const { spec, maxConcurrency } = props;
  if (!Number.isInteger(maxConcurrency) || maxConcurrency < MIN_MAX_CONCURRENCY || maxConcurrency > MAX_MAX_CONCURRENCY) {
    throw new Error(`stage ${spec.name}: maxConcurrency must be an integer from ${MIN_MAX_CONCURRENCY} to ${MAX_MAX_CONCURRENCY}, got ${maxConcurrency}`);
  }
  if (DLQ_RETENTION_DAYS <= spec.retentionDays) {
    throw new Error(`stage ${spec.name}: the dead-letter queue must keep messages longer (${DLQ_RETENTION_DAYS} d) than the queue (${spec.retentionDays} d)`);
  }
  if (VISIBILITY_TIMEOUT_FACTOR < 1 || visibilityTimeoutSeconds(spec) > 12 * 3600) {
    throw new Error(`stage ${spec.name}: visibility timeout ${visibilityTimeoutSeconds(spec)} s is outside SQS's 0-12 h`);
  }
  if (spec.maxReceiveCount < 1) throw new Error(`stage ${spec.name}: maxReceiveCount must be at least 1`);
}
