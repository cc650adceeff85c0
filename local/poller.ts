// Lambda's SQS event source mapping, in-process, for the embedded runtime: receive a batch,
// build the exact SQSEvent Lambda builds, call the handler, delete what succeeded and return
// the rest to the queue. The queue's own RedrivePolicy moves a message to its dead-letter queue
// after maxReceiveCount receives, as in AWS.
//
// Differences from AWS, on purpose:
// - Failed records (in `batchItemFailures`, or the whole batch when the handler throws or times
//   out) get ChangeMessageVisibility(retryDelaySeconds), so they come back after about a second.
//   In AWS they are left alone and come back when the queue's visibility timeout expires
//   (6 × the function timeout: up to 90 minutes).
// - Each source runs `maxConcurrency` pollers from the start (Lambda scales its pollers up).
// - A batch holds at most 10 messages (one ReceiveMessage); Lambda can gather more with a
//   batching window.
// - A timed-out handler is not killed: its batch is failed and retried, but the call runs on.
//
// Chaos (for idempotency tests):
// - `duplicate`: the first receive of every message also sends a copy of it to its queue (marked
//   with the message attribute `anyprefer-chaos-copy` = original message id; copies are not
//   copied again), so every message is delivered at least twice.
// - `reorder`: each batch's records are shuffled (seeded) before the handler sees them, and
//   copies are sent with a random DelaySeconds of 0 or 1.
import { randomBytes, randomUUID } from 'node:crypto';
import {
  ChangeMessageVisibilityBatchCommand,
  DeleteMessageBatchCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context, SQSBatchResponse, SQSEvent, SQSMessageAttributes, SQSRecord, SQSRecordAttributes } from 'aws-lambda';
import { STAGES } from '../layers/core/src/resources';

export const CHAOS_COPY_ATTRIBUTE = 'anyprefer-chaos-copy';

export interface PollerSource {
  /** Stage name (also used for stats and the function name). */
  name: string;
  queueUrl: string;
  queueArn: string;
  handler: (event: SQSEvent, context: Context) => Promise<SQSBatchResponse | void>;
  /** Records per handler call; at most 10 here (one ReceiveMessage). */
  batchSize: number;
  /** Batches in flight at once for this source. */
  maxConcurrency: number;
  /** Function timeout for Context.getRemainingTimeInMillis and the timeout. Default: the stage's, else 60. */
  timeoutSeconds?: number;
  /** Default: the stage's memoryMb, else 128. */
  memoryMb?: number;
  /** Default `anyprefer-<name>`. */
  functionName?: string;
}

export interface PollerOptions {
  sqs: SQSClient;
  sources: PollerSource[];
  /** Visibility timeout given to failed records so they come back soon. Default 1. */
  retryDelaySeconds?: number;
  /** ReceiveMessage long-poll wait. Default 1. */
  waitTimeSeconds?: number;
  chaos?: { duplicate?: boolean; reorder?: boolean; seed?: number };
  /** Handler errors (thrown, rejected, timed out) and SQS errors. Default: console.error. */
  onError?: (err: unknown, source: PollerSource) => void;
}

export interface SourceStats {
  /** Handler calls. */
  batches: number;
  /** Records given to the handler. */
  records: number;
  /** Records failed (reported in batchItemFailures, or in a batch that threw). */
  failures: number;
  /** Chaos copies sent. */
  copies: number;
}

export interface Poller {
  /** Stops receiving (interrupting long polls within about a second) and waits for batches in flight. */
  stop(): Promise<void>;
  stats(): Record<string, SourceStats>;
  /** Batches being handled now, all sources. */
  inFlight(): number;
}

/** A receive still open this long after stop() is aborted (its messages return after the visibility timeout). */
const RECEIVE_ABORT_GRACE_MS = 1_100;
/** Pause after a receive that came back empty at once (a server that does not long-poll). */
const EMPTY_RECEIVE_PAUSE_MS = 200;
const ERROR_BACKOFF_MS = [200, 500, 1_000, 2_000, 5_000];
const SQS_MAX_RECEIVE = 10;

export function startPoller(opts: PollerOptions): Poller {
  const retryDelaySeconds = opts.retryDelaySeconds ?? 1;
  const waitTimeSeconds = opts.waitTimeSeconds ?? 1;
  const chaos = opts.chaos ?? {};
  const random = mulberry32(chaos.seed ?? randomBytes(4).readUInt32LE(0));
  const onError =
    opts.onError ??
    ((err: unknown, source: PollerSource) =>
      console.error(JSON.stringify({ level: 'ERROR', message: 'poller', source: source.name, error: String(err) })));

  let stopping = false;
  /** Wakes pending pauses when the poller stops. */
  const sleepers = new Set<() => void>();
  const receives = new Set<AbortController>();
  let inFlight = 0;
  const stats: Record<string, SourceStats> = {};
  for (const s of opts.sources) stats[s.name] = { batches: 0, records: 0, failures: 0, copies: 0 };

  /** Sleeps, but returns at once when the poller stops. */
  const pause = (ms: number): Promise<void> =>
    new Promise((resolve) => {
      if (stopping) return resolve();
      const done = (): void => {
        clearTimeout(t);
        sleepers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      sleepers.add(done);
    });

  const receive = async (source: PollerSource): Promise<Message[]> => {
    const controller = new AbortController();
    receives.add(controller);
    try {
      const res = await opts.sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: source.queueUrl,
          MaxNumberOfMessages: Math.max(1, Math.min(source.batchSize, SQS_MAX_RECEIVE)),
          WaitTimeSeconds: waitTimeSeconds,
          AttributeNames: ['All'],
          MessageSystemAttributeNames: ['All'],
          MessageAttributeNames: ['All'],
        }),
        { abortSignal: controller.signal },
      );
      return res.Messages ?? [];
    } finally {
      receives.delete(controller);
    }
  };

  const sendCopy = async (source: PollerSource, m: Message): Promise<void> => {
    const attributes: Record<string, MessageAttributeValue> = {};
    for (const [name, v] of Object.entries(m.MessageAttributes ?? {})) {
      attributes[name] = {
        DataType: v.DataType,
        ...(v.StringValue !== undefined ? { StringValue: v.StringValue } : {}),
        ...(v.BinaryValue !== undefined ? { BinaryValue: v.BinaryValue } : {}),
      };
    }
    attributes[CHAOS_COPY_ATTRIBUTE] = { DataType: 'String', StringValue: m.MessageId ?? 'unknown' };
    await opts.sqs.send(
      new SendMessageCommand({
        QueueUrl: source.queueUrl,
        MessageBody: m.Body ?? '',
        MessageAttributes: attributes,
        DelaySeconds: chaos.reorder ? (random() < 0.5 ? 0 : 1) : 0,
      }),
    );
    stats[source.name]!.copies++;
  };

  const handleBatch = async (source: PollerSource, messages: Message[]): Promise<void> => {
    const st = stats[source.name]!;
    st.batches++;
    st.records += messages.length;

    if (chaos.duplicate) {
      for (const m of messages) {
        const first = m.Attributes?.ApproximateReceiveCount === '1';
        if (first && !m.MessageAttributes?.[CHAOS_COPY_ATTRIBUTE]) {
          await sendCopy(source, m).catch((err: unknown) => onError(err, source));
        }
      }
    }

    const records = messages.map((m) => toSqsRecord(m, source.queueArn));
    if (chaos.reorder) shuffle(records, random);
    const ids = new Set(records.map((r) => r.messageId));

    const timeoutMs = functionTimeoutSeconds(source) * 1000;
    const context = lambdaContext(source, timeoutMs);
    let failed: Set<string>;
    let timer: NodeJS.Timeout | undefined;
    try {
      // Also turns a synchronous throw into a rejection.
      const call = Promise.resolve().then(() => source.handler({ Records: records }, context));
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`Task timed out after ${(timeoutMs / 1000).toFixed(2)} seconds`)),
          timeoutMs,
        );
      });
      call.catch(() => {}); // a timed-out call may still reject later
      const response = await Promise.race([call, timeout]);
      failed = failedIds(response, ids);
    } catch (err) {
      onError(err, source);
      failed = ids;
    } finally {
      clearTimeout(timer);
    }

    st.failures += failed.size;
    const done = messages.filter((m) => !failed.has(m.MessageId ?? ''));
    const retry = messages.filter((m) => failed.has(m.MessageId ?? ''));
    await Promise.all([
      deleteMessages(source, done).catch((err: unknown) => onError(err, source)),
      changeVisibility(source, retry, retryDelaySeconds).catch((err: unknown) => onError(err, source)),
    ]);
  };

  const deleteMessages = async (source: PollerSource, messages: Message[]): Promise<void> => {
    for (const chunk of chunks(messages, SQS_MAX_RECEIVE)) {
      const res = await opts.sqs.send(
        new DeleteMessageBatchCommand({
          QueueUrl: source.queueUrl,
          Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle })),
        }),
      );
      if (res.Failed?.length) {
        onError(new Error(`DeleteMessageBatch failed for ${res.Failed.length} message(s): ${res.Failed.map((f) => f.Code).join(', ')}`), source);
      }
    }
  };

  const changeVisibility = async (source: PollerSource, messages: Message[], seconds: number): Promise<void> => {
    for (const chunk of chunks(messages, SQS_MAX_RECEIVE)) {
      const res = await opts.sqs.send(
        new ChangeMessageVisibilityBatchCommand({
          QueueUrl: source.queueUrl,
          Entries: chunk.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle, VisibilityTimeout: seconds })),
        }),
      );
      if (res.Failed?.length) {
        onError(
          new Error(`ChangeMessageVisibilityBatch failed for ${res.Failed.length} message(s): ${res.Failed.map((f) => f.Code).join(', ')}`),
          source,
        );
      }
    }
  };

  const worker = async (source: PollerSource): Promise<void> => {
    let errors = 0;
    while (!stopping) {
      let messages: Message[];
      const started = Date.now();
      try {
        messages = await receive(source);
        errors = 0;
      } catch (err) {
        if (stopping) break;
        onError(err, source);
        await pause(ERROR_BACKOFF_MS[Math.min(errors++, ERROR_BACKOFF_MS.length - 1)]!);
        continue;
      }
      if (messages.length === 0) {
        if (Date.now() - started < EMPTY_RECEIVE_PAUSE_MS) await pause(EMPTY_RECEIVE_PAUSE_MS);
        continue;
      }
      if (stopping) {
        // Received while stopping: hand the messages straight back rather than start a batch.
        await changeVisibility(source, messages, 0).catch((err: unknown) => onError(err, source));
        break;
      }
      inFlight++;
      try {
        await handleBatch(source, messages);
      } catch (err) {
        onError(err, source);
      } finally {
        inFlight--;
      }
    }
  };

  for (const source of opts.sources) {
    if (!Number.isInteger(source.maxConcurrency) || source.maxConcurrency < 1) {
      throw new Error(`poller source ${source.name}: maxConcurrency must be a positive integer`);
    }
  }
  const workers: Promise<void>[] = [];
  for (const source of opts.sources) {
    for (let i = 0; i < source.maxConcurrency; i++) workers.push(worker(source));
  }

  let stopPromise: Promise<void> | undefined;
  return {
    stop: () =>
      (stopPromise ??= (async () => {
        stopping = true;
        for (const wake of [...sleepers]) wake();
        const abortTimer = setTimeout(() => {
          for (const c of receives) c.abort();
        }, RECEIVE_ABORT_GRACE_MS);
        try {
          await Promise.all(workers);
        } finally {
          clearTimeout(abortTimer);
        }
      })()),
    stats: () => Object.fromEntries(Object.entries(stats).map(([k, v]) => [k, { ...v }])),
    inFlight: () => inFlight,
  };
}

/** Lambda's rules for a partial batch response: an unknown or empty identifier fails the whole batch. */
function failedIds(response: SQSBatchResponse | void | null | undefined, ids: Set<string>): Set<string> {
  const failures = response?.batchItemFailures;
  if (!failures || failures.length === 0) return new Set();
  const failed = new Set<string>();
  for (const f of failures) {
    const id = f?.itemIdentifier;
    if (typeof id !== 'string' || !ids.has(id)) return ids;
    failed.add(id);
  }
  return failed;
}

/** An SQS message as Lambda hands it to the function. */
export function toSqsRecord(m: Message, queueArn: string): SQSRecord {
  const a = m.Attributes ?? {};
  const attributes: SQSRecordAttributes = {
    ApproximateReceiveCount: a.ApproximateReceiveCount ?? '1',
    SentTimestamp: a.SentTimestamp ?? String(Date.now()),
    SenderId: a.SenderId ?? 'AIDAANYPREFERLOCAL',
    ApproximateFirstReceiveTimestamp: a.ApproximateFirstReceiveTimestamp ?? String(Date.now()),
  };
  for (const key of ['AWSTraceHeader', 'SequenceNumber', 'MessageGroupId', 'MessageDeduplicationId', 'DeadLetterQueueSourceArn'] as const) {
    const v = (a as Record<string, string | undefined>)[key];
    if (v !== undefined) attributes[key] = v;
  }
  const messageAttributes: SQSMessageAttributes = {};
  for (const [name, v] of Object.entries(m.MessageAttributes ?? {})) {
    messageAttributes[name] = {
      ...(v.StringValue !== undefined ? { stringValue: v.StringValue } : {}),
      ...(v.BinaryValue !== undefined ? { binaryValue: Buffer.from(v.BinaryValue).toString('base64') } : {}),
      stringListValues: v.StringListValues ?? [],
      binaryListValues: (v.BinaryListValues ?? []).map((b) => Buffer.from(b).toString('base64')),
      dataType: v.DataType ?? 'String',
    };
  }
  return {
    messageId: m.MessageId ?? '',
    receiptHandle: m.ReceiptHandle ?? '',
    body: m.Body ?? '',
    attributes,
    messageAttributes,
    md5OfBody: m.MD5OfBody ?? '',
    ...(m.MD5OfMessageAttributes ? { md5OfMessageAttributes: m.MD5OfMessageAttributes } : {}),
    eventSource: 'aws:sqs',
    eventSourceARN: queueArn,
    awsRegion: arnPart(queueArn, 3) || 'us-east-1',
  };
}

function functionTimeoutSeconds(source: PollerSource): number {
  return source.timeoutSeconds ?? STAGES.find((s) => s.name === source.name)?.functionTimeoutSeconds ?? 60;
}

function lambdaContext(source: PollerSource, timeoutMs: number): Context {
  const region = arnPart(source.queueArn, 3) || 'us-east-1';
  const functionName = source.functionName ?? `anyprefer-${source.name}`;
  const account = arnPart(source.queueArn, 4) || '123456789012';
  const memory = source.memoryMb ?? STAGES.find((s) => s.name === source.name)?.memoryMb ?? 128;
  const deadline = Date.now() + timeoutMs;
  const day = new Date().toISOString().slice(0, 10).replace(/-/g, '/');
  return {
    callbackWaitsForEmptyEventLoop: true,
    functionName,
    functionVersion: '$LATEST',
    invokedFunctionArn: `arn:aws:lambda:${region}:${account}:function:${functionName}`,
    memoryLimitInMB: String(memory),
    awsRequestId: randomUUID(),
    logGroupName: `/aws/lambda/${functionName}`,
    logStreamName: `${day}/[$LATEST]${randomBytes(16).toString('hex')}`,
    getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

function arnPart(arn: string, index: number): string {
  return arn.split(':')[index] ?? '';
}

function chunks<T>(items: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j]!, items[i]!];
  }
}

/** A small seeded PRNG (mulberry32). */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
