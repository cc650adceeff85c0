// The embedded runtime: the whole pipeline in one process, through the same handlers that run
// in Lambda. In-process AWS-compatible servers on loopback get the resources the stack creates
// (one definition in resources.ts), the S3 event is bridged to the ingest queue as S3 sends it,
// and a poller drives every queue with Lambda's SQS semantics. Models default to the offline lab.
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import {
  createAwsClients,
  ENV,
  DynamoStateStore,
  INPUT_PREFIX,
  LAB_URL_ENV,
  newRunId,
  RUN_ID_PATTERN,
  OUTPUT_FILES,
  parseRunConfig,
  RUN_ID_METADATA,
  S3BlobStore,
  STAGES,
  type DatasetSummary,
  type QueueName,
  type RunConfig,
  type TerminalCounts,
} from '@anyprefer/core';
import type { Context, SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { bridgeS3Events } from './bridge';
import { startLab, type LabOptions } from './lab/server';
import { startPoller, type PollerOptions } from './poller';
import { defaultResourceNames, pipelineEnv, provision } from './provision';
import { startLocalAws } from './servers';

export interface LocalRunOptions {
  /** Run config (already parsed JSON); defaults apply to what it leaves out. */
  config?: unknown;
  /** Directory the outputs are downloaded to; default `out/<runId>`. */
  outDir?: string;
  /** Called about every second while the run is in progress. */
  onProgress?: (progress: LocalProgress) => void;
  /** Options for the offline model lab (latency, faults) when a role uses it. */
  lab?: Omit<LabOptions, 'seed'>;
  /** Test hook: deliver every queue message twice and shuffle batches. */
  chaos?: PollerOptions['chaos'];
  /** Give up after this long (default 30 minutes). */
  timeoutMs?: number;
  /** Run id to use (default: derived from the file name and time). */
  runId?: string;
}

export interface LocalProgress {
  runId: string;
  elapsedMs: number;
  status: string;
  items?: number;
  invalid?: number;
  terminal: TerminalCounts;
}

export interface LocalRunResult {
  runId: string;
  outDir: string;
  manifest: DatasetSummary | { status: 'failed'; error: string };
  /** Lab statistics when the offline lab served any role. */
  labStats?: unknown;
  /** Batches, records, failures (and chaos copies) per stage. */
  pollerStats: Record<string, unknown>;
}

type Handler = (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;

const usesLab = (config: RunConfig) => Object.values(config.models).some((m) => m.model.startsWith('lab-') && !m.baseURL);
/** Locally a failed message should come back in seconds, not after 6 x the Lambda timeout. */
const LOCAL_VISIBILITY_TIMEOUT_SECONDS = 30;

export async function runLocal(file: string, opts: LocalRunOptions = {}): Promise<LocalRunResult> {
  const config = parseRunConfig(opts.config ?? {});
  const runId = opts.runId ?? newRunId(basename(file));
  if (!RUN_ID_PATTERN.test(runId)) throw new Error(`run id "${runId}" must match ${RUN_ID_PATTERN}`);
  const aws = await startLocalAws();
  const lab = usesLab(config) ? await startLab({ ...opts.lab, seed: config.seed }) : undefined;
  const clients = createAwsClients({ endpointUrl: aws.endpointUrl });
  const savedEnv = { ...process.env };
  const stops: (() => Promise<void> | void)[] = [];
  try {
    const resources = await provision(clients, defaultResourceNames(), { visibilityTimeoutSeconds: LOCAL_VISIBILITY_TIMEOUT_SECONDS });
    Object.assign(
      process.env,
      pipelineEnv(resources, aws.endpointUrl),
      // The CLI prints progress; the stages' info logs and CloudWatch metric lines are for Lambda.
      { [ENV.logLevel]: process.env[ENV.logLevel] ?? 'error', [ENV.metrics]: 'off' },
      lab ? { [LAB_URL_ENV]: lab.baseURL } : {},
    );

    const handlers = await loadHandlers();
    stops.push(bridgeS3Events(aws.s3rver, { sqs: clients.sqs, inputBucket: resources.inputBucket, ingestQueueUrl: resources.queues.ingest.url }));
    const poller = startPoller({
      sqs: clients.sqs,
      chaos: opts.chaos,
      sources: STAGES.map((spec) => ({
        name: spec.name,
        queueUrl: resources.queues[spec.name].url,
        queueArn: resources.queues[spec.name].arn,
        handler: handlers[spec.name],
        batchSize: spec.batchSize,
        maxConcurrency: config.concurrency[spec.name],
      })),
    });
    stops.push(() => poller.stop());

    // The config goes up first: ingest reads it when the prompt file's event arrives.
    const name = basename(file);
    const key = `${INPUT_PREFIX}${name}`;
    const blobs = new S3BlobStore(clients.s3);
    await blobs.put(resources.inputBucket, key.replace(/\.(jsonl|ndjson|json)$/i, '') + '.config.json', JSON.stringify(opts.config ?? {}));
    await clients.s3.send(
      new PutObjectCommand({ Bucket: resources.inputBucket, Key: key, Body: await readFile(file), Metadata: { [RUN_ID_METADATA]: runId } }),
    );

    const state = new DynamoStateStore(clients.dynamo, resources.table);
    const started = Date.now();
    const deadline = started + (opts.timeoutMs ?? 30 * 60_000);
    for (;;) {
      const run = await state.getRun(runId);
      const terminal = await state.terminalCounts(runId);
      opts.onProgress?.({ runId, elapsedMs: Date.now() - started, status: run?.status ?? 'waiting', items: run?.items, invalid: run?.invalid, terminal });
      if (run?.status === 'complete' || run?.status === 'failed') break;
      if (Date.now() > deadline) throw new Error(`run ${runId} did not finish within ${opts.timeoutMs ?? 1_800_000} ms (status ${run?.status ?? 'not started'})`);
      await new Promise((r) => setTimeout(r, 250));
    }

    const outDir = opts.outDir ?? join('out', runId);
    await mkdir(outDir, { recursive: true });
    const prefix = `datasets/${runId}/`;
    for (const k of await blobs.list(resources.outputBucket, prefix)) {
      await writeFile(join(outDir, k.slice(prefix.length)), await blobs.getText(resources.outputBucket, k));
    }
    const manifest = JSON.parse(await readFile(join(outDir, OUTPUT_FILES.manifest), 'utf8')) as LocalRunResult['manifest'];
    return { runId, outDir, manifest, labStats: lab?.stats(), pollerStats: poller.stats() };
  } finally {
    for (const stop of stops.reverse()) await stop();
    await lab?.stop();
    await aws.stop();
    for (const k of Object.keys(process.env)) if (!(k in savedEnv)) delete process.env[k];
    Object.assign(process.env, savedEnv);
  }
}

/** The very handlers Lambda runs, imported after the environment points at the local servers. */
async function loadHandlers(): Promise<Record<QueueName, Handler>> {
  const entries = await Promise.all(
    STAGES.map(async (s) => [s.name, ((await import(`../functions/${s.name}.ts`)) as { handler: Handler }).handler] as const),
  );
  return Object.fromEntries(entries) as Record<QueueName, Handler>;
}
