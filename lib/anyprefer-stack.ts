// The Anyprefer pipeline on AWS:
//   input bucket (prompts/) → S3 event notification → ingest queue → ingest
//   → generate → judge → (feedback → generate …) → finalize → datasets/ in the output bucket,
// each arrow an SQS queue consumed by a Lambda function (StageFunction), all state in one
// DynamoDB table, model API keys in one Secrets Manager secret. Names, numbers and key layout
// come from layers/core/src/resources.ts, the definition the functions themselves read.
import { Annotations, CfnOutput, Duration, RemovalPolicy, Stack, type StackProps } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { AttributeType, BillingMode, ProjectionType, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { BlockPublicAccess, Bucket, BucketEncryption, EventType, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { SqsDestination } from 'aws-cdk-lib/aws-s3-notifications';
import { Secret } from 'aws-cdk-lib/aws-secretsmanager';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import { Construct } from 'constructs';
import { METRICS_NAMESPACE, type MetricName } from '../layers/core/src/metrics';
import type { QueueName } from '../layers/core/src/ports';
import {
  DATASET_PREFIX,
  ENV,
  INPUT_PREFIX,
  KNOWLEDGE_PREFIX,
  STAGES,
  TABLE,
  TRANSIENT_TTL_DAYS,
  WORK_PREFIX,
  queueUrlEnv,
} from '../layers/core/src/resources';
import { ROLES } from '../layers/core/src/types';
import { readSettings, type AnypreferSettings } from './context';
import { CoreLayer } from './core-layer';
import { acknowledge, addStackSuppressions, arnRef } from './nag-suppressions';
import { StageFunction } from './stage-function';

/** What one stage's function may touch: the least each stage's code needs (see layers/core/src/stages). */
export interface StageAccess {
  /** Input-bucket key patterns the stage reads. */
  readsInput: string[];
  /** Output-bucket key patterns the stage reads. */
  readsOutput: string[];
  /** Output-bucket key patterns the stage writes (PutObject and multipart uploads; nothing deletes). */
  writesOutput: string[];
  /** Queues the stage sends to. */
  sendsTo: QueueName[];
  /** Calls models, so reads the API-key secret. */
  callsModels: boolean;
}

const WORK = `${WORK_PREFIX}*`;
const DATASETS = `${DATASET_PREFIX}*`;
/**
 * Item stages (generate, judge, feedback) commit a transition with an outbox and then send it. A
 * stage that meets an item whose outbox is still pending (a crash between commit and send, or a
 * late duplicate delivery) sends it itself, whichever stage it names; and any stage that makes an
 * item terminal may complete the run, which asks finalize. So each item stage may send to every
 * item stage and to finalize. Nothing sends to ingest: only S3 does.
 */
const ITEM_STAGE_SENDS: QueueName[] = ['generate', 'judge', 'feedback', 'finalize'];

export const STAGE_ACCESS: Record<QueueName, StageAccess> = {
  // Prompt files and their .config.json siblings. A bad config fails the run at once: ingest
  // writes that run's manifest.json under datasets/.
  ingest: { readsInput: [`${INPUT_PREFIX}*`], readsOutput: [], writesOutput: [WORK, `${DATASET_PREFIX}*/manifest.json`], sendsTo: ['generate', 'finalize'], callsModels: false },
  generate: { readsInput: [], readsOutput: [WORK], writesOutput: [WORK], sendsTo: ITEM_STAGE_SENDS, callsModels: true },
  // The judge's retrieval tool searches the user's corpus under knowledge/ in the input bucket.
  judge: { readsInput: [`${KNOWLEDGE_PREFIX}*`], readsOutput: [WORK], writesOutput: [WORK], sendsTo: ITEM_STAGE_SENDS, callsModels: true },
  feedback: { readsInput: [], readsOutput: [WORK], writesOutput: [], sendsTo: ITEM_STAGE_SENDS, callsModels: true },
  finalize: { readsInput: [], readsOutput: [WORK], writesOutput: [DATASETS], sendsTo: [], callsModels: false },
};

/**
 * S3 access narrower than Bucket.grantRead/grantPut (which add s3:GetObject*, s3:GetBucket*,
 * s3:List*, s3:Abort*): exactly the calls the core's S3BlobStore makes. s3:ListBucket lets a
 * missing key answer 404 rather than 403 (the core tells "absent" from "forbidden").
 */
function allowRead(stage: StageFunction, bucket: Bucket, keyPattern: string): void {
  stage.function.addToRolePolicy(new PolicyStatement({ actions: ['s3:GetObject'], resources: [bucket.arnForObjects(keyPattern)] }));
  stage.function.addToRolePolicy(new PolicyStatement({ actions: ['s3:ListBucket'], resources: [bucket.bucketArn] }));
  acknowledgeKeyPattern(stage, bucket, keyPattern, 'reads');
}

/** PutObject covers single and multipart uploads (create, upload part, complete); nothing deletes. */
function allowPut(stage: StageFunction, bucket: Bucket, keyPattern: string): void {
  stage.function.addToRolePolicy(
    new PolicyStatement({ actions: ['s3:PutObject', 's3:AbortMultipartUpload'], resources: [bucket.arnForObjects(keyPattern)] }),
  );
  acknowledgeKeyPattern(stage, bucket, keyPattern, 'writes');
}

function acknowledgeKeyPattern(stage: StageFunction, bucket: Bucket, keyPattern: string, verb: string): void {
  acknowledge(
    stage.role,
    `AwsSolutions-IAM5[Resource::${arnRef(bucket)}/${keyPattern}]`,
    `The ${stage.spec.name} stage ${verb} objects whose keys hold run and item ids known only at run time, so the ` +
      `grant is the key pattern ${keyPattern} of one bucket, with single actions (s3:GetObject, s3:PutObject), not a bucket-wide wildcard.`,
  );
}

const pascal = (s: string): string => s.charAt(0).toUpperCase() + s.slice(1);

export interface AnypreferStackProps extends StackProps {
  /** Default: read from CDK context (lib/context.ts). */
  settings?: AnypreferSettings;
}

export class AnypreferStack extends Stack {
  readonly settings: AnypreferSettings;
  readonly inputBucket: Bucket;
  readonly outputBucket: Bucket;
  readonly accessLogsBucket: Bucket;
  readonly table: Table;
  readonly secret: Secret;
  readonly coreLayer: CoreLayer;
  readonly stages: Record<QueueName, StageFunction>;
  readonly alarmTopic: Topic;
  readonly alarms: cloudwatch.Alarm[] = [];
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: AnypreferStackProps = {}) {
    super(scope, id, props);
    const settings = (this.settings = props.settings ?? readSettings(this.node));
    const destroy = settings.destroyOnRemoval;
    const removalPolicy = destroy ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN;

    // ---------- storage ----------
    const bucketDefaults = {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy,
      autoDeleteObjects: destroy,
    };
    this.accessLogsBucket = new Bucket(this, 'AccessLogsBucket', {
      ...bucketDefaults,
      lifecycleRules: [{ id: 'expire-access-logs', expiration: Duration.days(90) }],
    });
    this.inputBucket = new Bucket(this, 'InputBucket', {
      ...bucketDefaults,
      versioned: true,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'input/',
      lifecycleRules: [
        { id: 'expire-old-versions', noncurrentVersionExpiration: Duration.days(TRANSIENT_TTL_DAYS) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });
    this.outputBucket = new Bucket(this, 'OutputBucket', {
      ...bucketDefaults,
      serverAccessLogsBucket: this.accessLogsBucket,
      serverAccessLogsPrefix: 'output/',
      lifecycleRules: [
        // Candidates, attempts and inputs of a run: finalize has copied what it needs by then.
        { id: 'expire-work', prefix: WORK_PREFIX, expiration: Duration.days(TRANSIENT_TTL_DAYS) },
        { id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    this.table = new Table(this, 'Table', {
      partitionKey: { name: TABLE.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE.sortKey, type: AttributeType.STRING },
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TABLE.ttlAttribute,
      encryption: TableEncryption.AWS_MANAGED,
      deletionProtection: !destroy,
      removalPolicy,
    });
    this.table.addGlobalSecondaryIndex({
      indexName: TABLE.runsIndex.name,
      partitionKey: { name: TABLE.runsIndex.partitionKey, type: AttributeType.STRING },
      sortKey: { name: TABLE.runsIndex.sortKey, type: AttributeType.STRING },
      projectionType: ProjectionType.ALL,
    });

    // API keys of the model endpoints: {"OPENAI_API_KEY": "…", …}. Created with a random
    // placeholder so no key ever passes through CloudFormation; the operator sets the real JSON.
    this.secret = new Secret(this, 'ModelKeys', {
      secretName: `${this.stackName.toLowerCase()}/model-keys`,
      description: 'anyprefer model API keys: a JSON object {"<apiKeyName>": "<key>"}; set it with aws secretsmanager put-secret-value',
      generateSecretString: { secretStringTemplate: JSON.stringify({}), generateStringKey: 'placeholder', excludePunctuation: true },
      removalPolicy,
    });

    // ---------- stages ----------
    this.coreLayer = new CoreLayer(this, 'CoreLayer');
    const environment: Record<string, string> = {
      [ENV.table]: this.table.tableName,
      [ENV.inputBucket]: this.inputBucket.bucketName,
      [ENV.outputBucket]: this.outputBucket.bucketName,
      [ENV.defaultConfig]: JSON.stringify(settings.config),
    };
    const stages = {} as Record<QueueName, StageFunction>;
    for (const spec of STAGES) {
      stages[spec.name] = new StageFunction(this, pascal(spec.name), {
        spec,
        maxConcurrency: settings.maxConcurrency[spec.name],
        layers: [this.coreLayer.layer],
        environment,
        removalPolicy,
      });
    }
    this.stages = stages;

    for (const spec of STAGES) {
      const stage = stages[spec.name];
      const fn = stage.function;
      const access = STAGE_ACCESS[spec.name];
      // Every function knows every queue's URL (the core's sender wants all five); sending needs a grant.
      for (const other of STAGES) fn.addEnvironment(queueUrlEnv(other.name), stages[other.name].queue.queueUrl);
      this.table.grantReadWriteData(fn);
      for (const pattern of access.readsInput) allowRead(stage, this.inputBucket, pattern);
      for (const pattern of access.readsOutput) allowRead(stage, this.outputBucket, pattern);
      for (const pattern of access.writesOutput) allowPut(stage, this.outputBucket, pattern);
      for (const target of access.sendsTo) stages[target].queue.grantSendMessages(fn);
      if (access.callsModels) {
        fn.addEnvironment(ENV.secretArn, this.secret.secretArn);
        this.secret.grantRead(fn);
      }
    }
    if (settings.lambdaToolArns.length > 0) {
      stages.judge.function.addToRolePolicy(
        new PolicyStatement({ sid: 'InvokeToolFunctions', actions: ['lambda:InvokeFunction'], resources: settings.lambdaToolArns }),
      );
    }

    // New prompt files go to the ingest queue, not to the function: SQS buffers bursts, retries
    // and dead-letters, and the queue policy lets only this bucket send.
    this.inputBucket.addEventNotification(EventType.OBJECT_CREATED, new SqsDestination(stages.ingest.queue), { prefix: INPUT_PREFIX });

    // ---------- alarms and dashboard ----------
    this.alarmTopic = new Topic(this, 'AlarmTopic', { displayName: `${this.stackName} alarms`, enforceSSL: true });
    this.alarmTopic.addToResourcePolicy(
      new PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['sns:Publish'],
        resources: [this.alarmTopic.topicArn],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    if (settings.alarmEmail) this.alarmTopic.addSubscription(new EmailSubscription(settings.alarmEmail));
    const alarmAction = new SnsAction(this.alarmTopic);

    for (const spec of STAGES) {
      const stage = stages[spec.name];
      const name = pascal(spec.name);
      const dlqAlarm = new cloudwatch.Alarm(this, `${name}DeadLetterAlarm`, {
        alarmDescription: `anyprefer: messages in the ${spec.name} dead-letter queue. Inspect them, fix the cause, then run \`anyprefer redrive --stack ${this.stackName}\`.`,
        metric: stage.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ period: Duration.minutes(1), statistic: cloudwatch.Stats.MAXIMUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      const errorAlarm = new cloudwatch.Alarm(this, `${name}ErrorsAlarm`, {
        alarmDescription: `anyprefer: the ${spec.name} function failed (errors, timeouts or crashes) in the last 5 minutes. See its log group.`,
        metric: stage.function.metricErrors({ period: Duration.minutes(5), statistic: cloudwatch.Stats.SUM }),
        threshold: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        evaluationPeriods: 1,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
      for (const alarm of [dlqAlarm, errorAlarm]) {
        alarm.addAlarmAction(alarmAction);
        this.alarms.push(alarm);
      }
    }

    this.dashboard = this.buildDashboard();

    // ---------- outputs: every name the anyprefer command line reads ----------
    const output = (id: string, value: string, description: string) => new CfnOutput(this, id, { value, description });
    output('InputBucketName', this.inputBucket.bucketName, `Upload prompt files under ${INPUT_PREFIX} here`);
    output('OutputBucketName', this.outputBucket.bucketName, `Datasets appear under ${DATASET_PREFIX}<runId>/`);
    output('TableName', this.table.tableName, 'Run and item state');
    output('SecretArn', this.secret.secretArn, 'Model API keys (JSON object); set with aws secretsmanager put-secret-value');
    for (const spec of STAGES) {
      const name = pascal(spec.name);
      output(`${name}QueueUrl`, stages[spec.name].queue.queueUrl, `${spec.name} stage queue`);
      output(`${name}DeadLetterQueueUrl`, stages[spec.name].deadLetterQueue.queueUrl, `${spec.name} stage dead-letter queue`);
      output(`${name}DeadLetterQueueArn`, stages[spec.name].deadLetterQueue.queueArn, `${spec.name} dead-letter queue ARN (redrive source)`);
    }
    output('DashboardName', this.dashboard.dashboardName, 'CloudWatch dashboard of the pipeline');
    output('AlarmTopicArn', this.alarmTopic.topicArn, 'SNS topic the alarms notify; subscribe more endpoints to it');

    const lab = ROLES.filter((r) => !settings.runConfig.models[r].baseURL && settings.runConfig.models[r].model.startsWith('lab-'));
    if (lab.length > 0) {
      Annotations.of(this).addWarningV2(
        'anyprefer:labModels',
        `the default run config (context anyprefer:config) uses the offline model lab for ${lab.join(', ')}; it exists only in the ` +
          'embedded runtime, so runs without their own prompts/NAME.config.json will fail here. Set models.<role>.model (and baseURL).',
      );
    }

    addStackSuppressions(this);
  }

  private buildDashboard(): cloudwatch.Dashboard {
    const period = Duration.minutes(5);
    const custom = (metricName: MetricName, label: string, dimensionsMap?: Record<string, string>) =>
      new cloudwatch.Metric({ namespace: METRICS_NAMESPACE, metricName, dimensionsMap, statistic: cloudwatch.Stats.SUM, period, label });
    const byRole = (metricName: MetricName) => ROLES.map((role) => custom(metricName, role, { Role: role }));

    const dashboard = new cloudwatch.Dashboard(this, 'Dashboard', {
      dashboardName: `${this.stackName}-pipeline`,
      defaultInterval: Duration.hours(3),
    });
    dashboard.addWidgets(
      new cloudwatch.TextWidget({
        markdown:
          `# ${this.stackName}: preference-data pipeline\n` +
          `ingest → generate → judge → (feedback → generate) → finalize. Custom metrics: namespace \`${METRICS_NAMESPACE}\` ` +
          '(EMF lines in the function logs). Dead-letter queues should stay empty; redrive with `anyprefer redrive`.',
        width: 24,
        height: 2,
      }),
    );
    dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Items (sum / 5 min)',
        left: [custom('PairsAccepted', 'pairs accepted'), custom('ItemsRejected', 'rejected'), custom('ItemsDeadLettered', 'dead-lettered')],
        width: 6,
      }),
      new cloudwatch.GraphWidget({ title: 'Model calls by role', left: byRole('ModelCalls'), width: 6 }),
      new cloudwatch.GraphWidget({ title: 'Model errors by role', left: byRole('ModelErrors'), width: 6 }),
      new cloudwatch.GraphWidget({ title: 'Tokens by role', left: byRole('Tokens'), width: 6, stacked: true }),
    );
    for (const spec of STAGES) {
      const { queue, deadLetterQueue, function: fn } = this.stages[spec.name];
      const name = pascal(spec.name);
      dashboard.addWidgets(
        new cloudwatch.GraphWidget({
          title: `${name}: queue depth`,
          left: [
            queue.metricApproximateNumberOfMessagesVisible({ label: 'visible', period: Duration.minutes(1) }),
            queue.metricApproximateNumberOfMessagesNotVisible({ label: 'in flight', period: Duration.minutes(1) }),
            deadLetterQueue.metricApproximateNumberOfMessagesVisible({ label: 'dead-letter', period: Duration.minutes(1) }),
          ],
          width: 6,
        }),
        new cloudwatch.GraphWidget({ title: `${name}: messages received`, left: [queue.metricNumberOfMessagesReceived({ label: 'received', period })], width: 6 }),
        new cloudwatch.GraphWidget({
          title: `${name}: errors and throttles`,
          left: [fn.metricErrors({ label: 'errors', period }), fn.metricThrottles({ label: 'throttles', period })],
          width: 6,
        }),
        new cloudwatch.GraphWidget({
          title: `${name}: duration (timeout ${spec.functionTimeoutSeconds} s)`,
          left: [
            fn.metricDuration({ label: 'average', statistic: cloudwatch.Stats.AVERAGE, period }),
            fn.metricDuration({ label: 'p99', statistic: cloudwatch.Stats.p(99), period }),
            fn.metricDuration({ label: 'max', statistic: cloudwatch.Stats.MAXIMUM, period }),
          ],
          width: 6,
        }),
      );
    }
    return dashboard;
  }
}
