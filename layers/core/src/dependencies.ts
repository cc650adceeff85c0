// Builds what the stages need from the environment, once per container (or per local run: the
// cache key is the environment itself, so the embedded runtime can start a second run in-process).
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { createAwsClients } from './adapters/aws-clients';
import { DynamoStateStore } from './adapters/dynamo-state-store';
import { S3BlobStore } from './adapters/s3-blob-store';
import { queueUrlsFromEnv, SqsQueueSender } from './adapters/sqs-queue-sender';
import type { ModelEndpoint, RunConfig } from './config';
import { OpenAIGateway } from './models/gateway';
import { jsonLogger, type BlobStore, type LogLevel, type Logger, type ModelGateway, type QueueName, type QueueSender } from './ports';
import { ENV, stageSpec } from './resources';
import type { StateStore } from './state/records';
import { emfMetrics, noMetrics, type MetricSink } from './metrics';
import { createToolRegistry, defaultToolServices } from './tools/catalog';
import type { ToolRegistry } from './tools/registry';
import { runCodeTool } from './tools/run-code';
import { ROLES, type Role } from './types';

export interface Dependencies {
  blobs: BlobStore;
  metrics: MetricSink;
  queues: QueueSender;
  state: StateStore;
  log: Logger;
  buckets: { input: string; output: string };
  /** The model gateway for a run's model config (cached per distinct config). */
  models(config: RunConfig): ModelGateway;
  /** The judge's tools for a run config (its declared tools, settings and network rules). */
  tools(config: RunConfig): ToolRegistry;
  /** The run config the stack (or the local runtime) gives runs without a config file. */
  defaultConfig: unknown;
  maxReceiveCount(stage: QueueName): number;
}

/** Environment variable naming the offline lab's URL, set only by the embedded runtime. */
export const LAB_URL_ENV = 'ANYPREFER_LAB_URL';

let cached: { key: string; deps: Dependencies } | undefined;

export async function getDependencies(env: NodeJS.ProcessEnv = process.env): Promise<Dependencies> {
  const key = JSON.stringify(Object.entries(env).filter(([k]) => k.startsWith('ANYPREFER_')).sort());
  if (cached?.key !== key) cached = { key, deps: buildDependencies(env) };
  return cached.deps;
}

export function buildDependencies(env: NodeJS.ProcessEnv): Dependencies {
  const required = (name: string): string => {
    const value = env[name];
    if (!value) throw new Error(`environment variable ${name} is not set`);
    return value;
  };
  const clients = createAwsClients({ endpointUrl: env[ENV.endpointUrl] });
  const apiKey = secretReader(env, clients.region);
  const gateways = new Map<string, ModelGateway>();
  const registries = new Map<string, ToolRegistry>();
  const blobs = new S3BlobStore(clients.s3);
  const buckets = { input: required(ENV.inputBucket), output: required(ENV.outputBucket) };
  const toolServices = defaultToolServices({ blobs, buckets, secret: apiKey });
  return {
    blobs,
    // Metrics are EMF log lines: in Lambda they become CloudWatch metrics, locally they are off.
    metrics: env[ENV.metrics] === 'off' ? noMetrics : emfMetrics(),
    queues: new SqsQueueSender(clients.sqs, queueUrlsFromEnv(env)),
    state: new DynamoStateStore(clients.dynamo, required(ENV.table)),
    log: jsonLogger((env[ENV.logLevel] as LogLevel | undefined) ?? 'info'),
    buckets,
    models(config) {
      const endpoints = Object.fromEntries(ROLES.map((r) => [r, resolveEndpoint(config.models[r], r, env)])) as Record<Role, ModelEndpoint>;
      const k = JSON.stringify(endpoints);
      let gateway = gateways.get(k);
      if (!gateway) gateways.set(k, (gateway = new OpenAIGateway({ endpoints, apiKey })));
      return gateway;
    },
    tools: (config) => {
      const k = JSON.stringify(config.tools);
      let registry = registries.get(k);
      if (!registry) registries.set(k, (registry = createToolRegistry(config.tools, [runCodeTool], toolServices)));
      return registry;
    },
    defaultConfig: env[ENV.defaultConfig] ? JSON.parse(env[ENV.defaultConfig]!) : {},
    maxReceiveCount: (stage) => Number(env[`${ENV.maxReceiveCount}_${stage.toUpperCase()}`] ?? stageSpec(stage).maxReceiveCount),
  };
}

/** `lab-*` models with no base URL are the offline lab, which only the embedded runtime starts. */
function resolveEndpoint(endpoint: ModelEndpoint, role: Role, env: NodeJS.ProcessEnv): ModelEndpoint {
  if (endpoint.baseURL || !endpoint.model.startsWith('lab-')) return endpoint;
  const lab = env[LAB_URL_ENV];
  if (!lab) {
    throw new Error(
      `the ${role} model "${endpoint.model}" is the offline model lab, which exists only in the embedded runtime; ` +
        'configure a real model (models.<role>.model and baseURL) for this deployment',
    );
  }
  return { ...endpoint, baseURL: lab };
}

/** API keys: a field of the stack's Secrets Manager secret (cached 5 minutes), else an environment variable. */
function secretReader(env: NodeJS.ProcessEnv, region: string): (name: string) => Promise<string | undefined> {
  const arn = env[ENV.secretArn];
  if (!arn) return async (name) => env[name];
  const client = new SecretsManagerClient({ region });
  let cache: { at: number; values: Record<string, string> } | undefined;
  return async (name) => {
    if (!cache || Date.now() - cache.at > 300_000) {
      const out = await client.send(new GetSecretValueCommand({ SecretId: arn }));
      cache = { at: Date.now(), values: JSON.parse(out.SecretString ?? '{}') as Record<string, string> };
    }
    return cache.values[name];
  };
}
