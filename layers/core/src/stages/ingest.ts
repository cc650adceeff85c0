// Ingest: an S3 "object created" notification for a prompt file becomes a run. The file is
// streamed line by line (never loaded whole); valid lines become items fanned out to generate
// in batches, invalid lines are recorded with their number and reason, and the run goes on.
import { ConfigError, parseRunConfig, type RunConfig } from '../config';
import type { Dependencies } from '../dependencies';
import { normalizeLine } from '../input/formats';
import { jsonLinesUpload } from '../output/jsonl-upload';
import { createToolRegistry } from '../tools/catalog';
import { readLines } from '../input/lines';
import { DATASET_PREFIX, INPUT_PREFIX, TRANSIENT_TTL_DAYS } from '../resources';
import { sha256Hex } from '../random';
import type { ItemRecord, RunRecord } from '../state/records';
import type { InvalidLine, ItemMessage, NormalizedInput } from '../types';
import { workKey } from './item';
import { checkRunComplete } from './progress';
import { writeFailedRun } from './finalize';

/** S3 object metadata key a submitter can set to choose the run id (`x-amz-meta-anyprefer-run-id`). */
export const RUN_ID_METADATA = 'anyprefer-run-id';
const ITEM_BATCH = 25;
/** Inputs larger than this (serialized) are kept in S3 instead of on the item record. */
const INLINE_INPUT_LIMIT = 64 * 1024;

export interface ObjectRef {
  bucket: string;
  key: string;
  versionId?: string;
  etag?: string;
  sequencer?: string;
}

interface S3EventRecord {
  eventName?: string;
  s3?: { bucket?: { name?: string }; object?: { key?: string; versionId?: string; eTag?: string; sequencer?: string } };
}

/** The objects an ingest message asks for: S3 notifications (any number of records) or the test event. */
export function objectsFromMessage(body: string): ObjectRef[] {
  const event = JSON.parse(body) as { Event?: string; Records?: S3EventRecord[] };
  if (event.Event === 's3:TestEvent') return [];
  if (!Array.isArray(event.Records)) throw new Error(`not an S3 event notification: ${body.slice(0, 200)}`);
  return event.Records.filter((r) => r.eventName?.startsWith('ObjectCreated:') && r.s3?.bucket?.name && r.s3.object?.key).map((r) => ({
    bucket: r.s3!.bucket!.name!,
    // S3 event keys are URL-encoded with spaces as '+'.
    key: decodeURIComponent(r.s3!.object!.key!.replace(/\+/g, ' ')),
    versionId: r.s3!.object!.versionId,
    etag: r.s3!.object!.eTag,
    sequencer: r.s3!.object!.sequencer,
  }));
}

export function isPromptFile(key: string): boolean {
  return key.startsWith(INPUT_PREFIX) && /\.(jsonl|ndjson|json)$/i.test(key) && !key.endsWith('.config.json');
}

/** `prompts/maths/gsm8k.jsonl` → `prompts/maths/gsm8k.config.json` */
export const configKeyFor = (key: string): string => key.replace(/\.(jsonl|ndjson|json)$/i, '') + '.config.json';

export async function runIngest(deps: Dependencies, body: string): Promise<void> {
  for (const object of objectsFromMessage(body)) {
    if (!isPromptFile(object.key)) {
      deps.log.info('ignored object: not a prompt file', { bucket: object.bucket, key: object.key });
      continue;
    }
    await ingestObject(deps, object);
  }
}

export async function ingestObject(deps: Dependencies, object: ObjectRef): Promise<string | undefined> {
  const head = await deps.blobs.head(object.bucket, object.key);
  if (!head) {
    deps.log.warn('prompt file no longer exists', { ...object });
    return undefined;
  }
  const runId = runIdFor(object, head.metadata?.[RUN_ID_METADATA]);
  const createdAt = new Date().toISOString();
  const base = {
    runId,
    source: { bucket: object.bucket, key: object.key, versionId: object.versionId ?? head.versionId, etag: head.etag },
    createdAt,
    ingested: false,
    outputPrefix: `${DATASET_PREFIX}${runId}/`,
  };

  let config: RunConfig;
  try {
    config = await loadConfig(deps, object);
  } catch (e) {
    if (!(e instanceof ConfigError || e instanceof SyntaxError)) throw e;
    const run: RunRecord = { ...base, status: 'failed', config: parseRunConfig({}), error: e.message, finishedAt: createdAt };
    if (await deps.state.createRun(run)) await writeFailedRun(deps, run);
    deps.log.error('run failed: bad config', { runId, error: e.message });
    return runId;
  }

  const created = await deps.state.createRun({ ...base, status: 'ingesting', config });
  const run = created ? undefined : await deps.state.getRun(runId);
  if (run && (run.source.bucket !== object.bucket || run.source.key !== object.key)) {
    // A chosen run id reused for another file: never mix two files in one run.
    deps.log.error('run id already belongs to another file; ignored', { runId, key: object.key, runKey: run.source.key });
    return runId;
  }
  if (run && (run.ingested || run.status === 'failed')) {
    deps.log.info('duplicate event for an ingested run', { runId });
    return runId;
  }
  deps.log.info('ingesting', { runId, key: object.key, bytes: head.size });
  const counts = await ingestLines(deps, runId, config, object);
  await deps.state.updateRun(runId, { ingested: true, status: 'active', ...counts }, ['ingesting']);
  deps.log.info('ingested', { runId, ...counts });
  await checkRunComplete(deps, runId);
  return runId;
}

async function ingestLines(deps: Dependencies, runId: string, config: RunConfig, object: ObjectRef) {
  const invalidOut = jsonLinesUpload(deps.blobs, deps.buckets.output, workKey(runId, 'invalid.jsonl'));
  const expiresAt = Math.floor(Date.now() / 1000) + TRANSIENT_TTL_DAYS * 86_400;
  let lines = 0;
  let invalid = 0;
  let batch: ItemRecord[] = [];

  const writeInvalid = async (entry: InvalidLine) => {
    invalid++;
    await invalidOut.write(entry);
  };
  const flush = async () => {
    if (batch.length === 0) return;
    await deps.state.putItems(batch);
    // Sent even for items that already existed (a retried ingest): duplicates are ignored downstream.
    const messages: ItemMessage[] = batch.map((i) => ({ runId, itemId: i.itemId, stage: 'generate', iteration: 1 }));
    await deps.queues.send('generate', messages);
    batch = [];
  };

  try {
    const body = await deps.blobs.getStream(object.bucket, object.key);
    for await (const raw of readLines(body)) {
      lines = raw.line;
      if ('error' in raw) {
        await writeInvalid({ line: raw.line, reason: raw.error, excerpt: raw.excerpt });
        continue;
      }
      const parsed = normalizeLine(raw.text, raw.line);
      if (!parsed.ok) {
        await writeInvalid(parsed.invalid);
        continue;
      }
      batch.push(await newItem(deps, runId, config, parsed.input, expiresAt));
      if (batch.length >= ITEM_BATCH) await flush();
    }
    await flush();
  } catch (error) {
    await invalidOut.abort(error as Error);
    throw error;
  }
  await invalidOut.finish();
  return { lines, items: lines - invalid, invalid };
}

async function newItem(deps: Dependencies, runId: string, config: RunConfig, input: NormalizedInput, expiresAt: number): Promise<ItemRecord> {
  const itemId = `L${String(input.line).padStart(8, '0')}`;
  const serialized = JSON.stringify(input);
  let inputKey: string | undefined;
  if (serialized.length > INLINE_INPUT_LIMIT) {
    inputKey = workKey(runId, 'inputs', `${itemId}.json`);
    await deps.blobs.put(deps.buckets.output, inputKey, serialized, 'application/json');
  }
  return {
    runId,
    itemId,
    line: input.line,
    state: 'generate',
    iteration: 1,
    rev: 0,
    ...(inputKey ? { inputKey } : { input }),
    prompts: { target: { version: 'initial', text: config.prompts.target }, judge: { version: 'initial', text: config.prompts.judge } },
    attempts: [],
    usage: {},
    updatedAt: new Date().toISOString(),
    expiresAt,
  };
}

async function loadConfig(deps: Dependencies, object: ObjectRef): Promise<RunConfig> {
  const text = await deps.blobs.getTextIfExists(object.bucket, configKeyFor(object.key));
  const config = parseRunConfig(text === undefined ? deps.defaultConfig : JSON.parse(text));
  try {
    // Fail the run now, not item by item: tool declarations that cannot coexist, or models that
    // cannot be reached from here (the offline lab outside the embedded runtime).
    createToolRegistry(config.tools);
    deps.models(config);
  } catch (e) {
    throw new ConfigError(`invalid run config: ${(e as Error).message}`);
  }
  return config;
}

/** Run ids a submitter may choose (object metadata `anyprefer-run-id`). */
export const RUN_ID_PATTERN = /^[a-z0-9][a-z0-9-]{2,62}$/;

const slugOf = (key: string): string =>
  key.split('/').pop()!.replace(/\.[^.]*$/, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 40).replace(/-+$/, '') || 'run';

/** A fresh run id for a submission: `<name>-<base36 time><2 random base36>`. */
export function newRunId(key: string, now: number = Date.now(), random: () => number = Math.random): string {
  // Two random characters keep two submissions of the same name in the same millisecond apart.
  const suffix = Math.floor(random() * 36 * 36).toString(36).padStart(2, '0');
  return `${slugOf(key)}-${now.toString(36)}${suffix}`;
}

/** One run per object version: duplicate notifications for the same version map to the same id. */
export function runIdFor(object: ObjectRef, requested?: string): string {
  if (requested && RUN_ID_PATTERN.test(requested)) return requested;
  const slug = slugOf(object.key);
  const identity = `${object.bucket}/${object.key}@${object.versionId ?? object.sequencer ?? object.etag ?? ''}`;
  return `${slug}-${sha256Hex(identity).slice(0, 8)}`;
}
