// QueueSender on SQS: JSON messages, sent in batches of up to 10, failed entries retried.
import { SendMessageBatchCommand, type SendMessageBatchRequestEntry, type SQSClient } from '@aws-sdk/client-sqs';
import type { QueueName, QueueSender } from '../ports';
import { STAGES, queueUrlEnv } from '../resources';

/** SQS's limit on one message body, and on the sum of a SendMessageBatch's bodies. */
export const SQS_MAX_MESSAGE_BYTES = 256 * 1024;
/** SendMessageBatch takes at most 10 entries. */
export const SQS_MAX_BATCH_ENTRIES = 10;

const MAX_ATTEMPTS = 3;
const BACKOFF_MS = [50, 200];
/** Batches of one send() call in flight at once. */
const PARALLEL_BATCHES = 4;

export interface SqsSendFailure {
  /** Index of the message in the array given to send(). */
  index: number;
  code: string;
  message?: string;
  senderFault: boolean;
}

export class SqsSendError extends Error {
  constructor(
    readonly queue: QueueName,
    readonly failures: SqsSendFailure[],
  ) {
    const codes = [...new Set(failures.map((f) => f.code))].join(', ');
    super(`failed to send ${failures.length} message(s) to queue ${queue} (up to ${MAX_ATTEMPTS} attempts each): ${codes}`);
    this.name = 'SqsSendError';
  }
}

export class SqsQueueSender implements QueueSender {
  constructor(
    private readonly sqs: SQSClient,
    private readonly urls: Record<QueueName, string>,
  ) {}

  async send(queue: QueueName, messages: readonly unknown[]): Promise<void> {
    const url = this.urls[queue];
    if (!url) throw new Error(`no queue URL for queue ${queue}`);
    if (messages.length === 0) return;

    const bodies = messages.map((m, i) => {
      const body = JSON.stringify(m);
      if (body === undefined) throw new Error(`message ${i} for queue ${queue} is not JSON-serializable`);
      const bytes = Buffer.byteLength(body, 'utf8');
      if (bytes > SQS_MAX_MESSAGE_BYTES) {
        throw new Error(
          `message ${i} for queue ${queue} is ${bytes} bytes, over the SQS limit of ${SQS_MAX_MESSAGE_BYTES} bytes (256 KiB); store the payload in S3 and send its key`,
        );
      }
      return { index: i, body, bytes };
    });

    // Group into batches of at most 10 entries and 256 KiB of bodies in total.
    const batches: (typeof bodies)[] = [];
    let current: typeof bodies = [];
    let currentBytes = 0;
    for (const b of bodies) {
      if (current.length === SQS_MAX_BATCH_ENTRIES || currentBytes + b.bytes > SQS_MAX_MESSAGE_BYTES) {
        batches.push(current);
        current = [];
        currentBytes = 0;
      }
      current.push(b);
      currentBytes += b.bytes;
    }
    if (current.length) batches.push(current);

    const failures: SqsSendFailure[] = [];
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < batches.length) {
        const batch = batches[next++]!;
        failures.push(...(await this.sendBatch(url, batch)));
      }
    };
    await Promise.all(Array.from({ length: Math.min(PARALLEL_BATCHES, batches.length) }, worker));
    if (failures.length) throw new SqsSendError(queue, failures.sort((a, b) => a.index - b.index));
  }

  /** Sends one batch; retries the entries that failed without sender fault. Returns what still failed. */
  private async sendBatch(url: string, batch: { index: number; body: string }[]): Promise<SqsSendFailure[]> {
    const permanent: SqsSendFailure[] = [];
    let transient: SqsSendFailure[] = [];
    let pending = batch;
    for (let attempt = 1; attempt <= MAX_ATTEMPTS && pending.length; attempt++) {
      if (attempt > 1) await sleep(BACKOFF_MS[attempt - 2] ?? 200);
      const entries: SendMessageBatchRequestEntry[] = pending.map((p) => ({ Id: String(p.index), MessageBody: p.body }));
      const res = await this.sqs.send(new SendMessageBatchCommand({ QueueUrl: url, Entries: entries }));
      const byId = new Map(pending.map((p) => [String(p.index), p]));
      const retry: typeof pending = [];
      transient = [];
      for (const f of res.Failed ?? []) {
        const entry = f.Id !== undefined ? byId.get(f.Id) : undefined;
        if (!entry) continue;
        const failure: SqsSendFailure = {
          index: entry.index,
          code: f.Code ?? 'Unknown',
          ...(f.Message ? { message: f.Message } : {}),
          senderFault: f.SenderFault ?? false,
        };
        // A sender fault (a bad request) fails the same way again; anything else may be transient.
        if (failure.senderFault) permanent.push(failure);
        else {
          transient.push(failure);
          retry.push(entry);
        }
      }
      pending = retry;
    }
    return [...permanent, ...transient];
  }
}

/** The queue URLs the stack (or the local runtime) puts in the environment, one per stage. */
export function queueUrlsFromEnv(env: NodeJS.ProcessEnv = process.env): Record<QueueName, string> {
  const urls = {} as Record<QueueName, string>;
  for (const stage of STAGES) {
    const name = queueUrlEnv(stage.name);
    const url = env[name];
    if (!url) throw new Error(`environment variable ${name} is not set (the URL of the ${stage.name} queue)`);
    urls[stage.name] = url;
  }
  return urls;
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
