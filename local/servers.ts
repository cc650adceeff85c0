// The embedded runtime's AWS: s3rver (S3, on disk), dynalite (DynamoDB, in memory) and
// local-aws-sqs (SQS, in memory), behind one loopback proxy endpoint (see proxy.ts).
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import http, { type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EventEmitter } from 'node:events';
import { createRequestHandler } from 'local-aws-sqs';
import { startProxy, type LocalProxy } from './proxy';

const require = createRequire(import.meta.url);

const HOST = '127.0.0.1';

/** The part of s3rver's API this runtime uses (the package ships no types). */
export interface S3rverInstance extends EventEmitter {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
  httpServer?: Server;
}
type S3rverCtor = new (options: Record<string, unknown>) => S3rverInstance;
type DynaliteFactory = (options: Record<string, unknown>) => Server;

export interface LocalAws {
  /** The single endpoint for S3, SQS and DynamoDB. */
  endpointUrl: string;
  /** The S3 server: subscribe to its `event` to emulate bucket notifications (bridge.ts). */
  s3rver: S3rverInstance;
  /** s3rver's data directory. */
  dir: string;
  region: string;
  /** Closes every server; removes the data directory unless it was given in `opts.dir`. */
  stop(): Promise<void>;
}

export interface LocalAwsOptions {
  /** s3rver's data directory; kept on stop. Default: a fresh temporary directory, removed on stop. */
  dir?: string;
  /** Region used in queue ARNs. Default `AWS_REGION`, then `us-east-1`. */
  region?: string;
  /** Log every S3 request (s3rver's logger). Default false. */
  verbose?: boolean;
}

export async function startLocalAws(opts: LocalAwsOptions = {}): Promise<LocalAws> {
  const region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const ownDir = opts.dir === undefined;
  const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'anyprefer-s3-')));
  if (!ownDir) await mkdir(dir, { recursive: true });

  const closers: (() => Promise<void>)[] = [];
  const stop = async (): Promise<void> => {
    // Reverse order: the proxy first, so nothing new reaches the servers while they close.
    for (const close of closers.splice(0).reverse()) {
      await close().catch(() => {});
    }
    if (ownDir) await rm(dir, { recursive: true, force: true });
  };

  try {
    // S3
    const S3rver = require('s3rver') as S3rverCtor;
    registerS3rverAccessKey();
    const s3rver = new S3rver({
      address: HOST,
      port: 0,
      silent: !opts.verbose,
      directory: dir,
      // Path-style only: with vhost buckets s3rver would treat a non-IP Host header as a bucket.
      vhostBuckets: false,
    });
    const s3Address = await s3rver.run();
    closers.push(async () => {
      s3rver.httpServer?.closeAllConnections();
      await s3rver.close();
    });

    // DynamoDB (in memory: no `path`)
    const dynalite = require('dynalite') as DynaliteFactory;
    const dynamoServer = dynalite({ createTableMs: 10, deleteTableMs: 10, updateTableMs: 10 });
    const dynamoPort = await listen(dynamoServer);
    closers.push(() => closeServer(dynamoServer));

    // SQS: the request handler on our own server, so we keep the service object and can make its
    // queue URLs point at the proxy (below).
    const { service: sqsService, requestHandler } = createRequestHandler({
      port: 0,
      hostname: HOST,
      region,
      // Deleting and re-creating a queue at once is fine locally.
      emulateQueueCreationLifecycle: false,
    });
    patchLocalSqs(sqsService as unknown as { Queues: PatchableQueue[] });
    const sqsServer = http.createServer((req, res) => void requestHandler(req, res));
    const sqsPort = await listen(sqsServer);
    closers.push(() => closeServer(sqsServer));

    const proxy: LocalProxy = await startProxy({
      s3: `http://${HOST}:${s3Address.port}`,
      dynamodb: `http://${HOST}:${dynamoPort}`,
      sqs: `http://${HOST}:${sqsPort}`,
    });
    closers.push(() => proxy.close());
    // Queue URLs returned by CreateQueue/GetQueueUrl go through the proxy too.
    sqsService.PORT = proxy.port;
    sqsService.HOSTNAME = HOST;

    return { endpointUrl: proxy.url, s3rver, dir, region, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * s3rver rejects any access key id but its built-in `S3RVER` (InvalidAccessKeyId). When the
 * environment supplies credentials (AWS_ACCESS_KEY_ID, e.g. `test` for moto-style setups),
 * register that key id with s3rver's dummy account too, so the same credentials work everywhere.
 */
function registerS3rverAccessKey(): void {
  const keyId = process.env.AWS_ACCESS_KEY_ID;
  if (!keyId || keyId === 'S3RVER') return;
  try {
    const account = require('s3rver/lib/models/account') as {
      DUMMY_ACCOUNT?: { createKeyPair(id: string, secret: string): void };
    };
    account.DUMMY_ACCOUNT?.createKeyPair(keyId, process.env.AWS_SECRET_ACCESS_KEY ?? keyId);
  } catch {
    // A different s3rver layout: requests then need the S3RVER key.
  }
}

// ---------- local-aws-sqs fix ----------

/** The parts of local-aws-sqs 2.x's (untyped, internal) queue entries and queues the fix touches. */
interface SqsEntry {
  record?: { MessageId?: string; attributes?: Record<string, string> };
}
interface PatchableQueue {
  ReceiveMessageWaitTimeSeconds?: number;
  receive?: (params: { VisibilityTimeout?: unknown; WaitTimeSeconds?: unknown; MaxNumberOfMessages?: unknown }) => Promise<unknown[]>;
  newRecord?: (msg: Record<string, unknown>, delay?: number) => SqsEntry;
  changeVisibility?: (receiptHandle: string, visibilityTimeout: string) => boolean;
  delete?: (receiptHandle: string) => boolean;
}

/**
 * Two fixes to local-aws-sqs 2.0.2's queues, applied to each queue as the service creates it:
 *
 * 1. It counts ChangeMessageVisibility as a receive: it increments ApproximateReceiveCount, so a
 *    message returned early (as the poller does with failed records) shows up with count 3 on its
 *    second delivery and reaches the DLQ a delivery early. SQS does not count visibility changes;
 *    the wrapper restores the count. (The queue's redrive timer reads the count when it fires, so
 *    the restored value decides the move to the dead-letter queue.)
 * 2. Its long poll waits the whole WaitTimeSeconds unless the batch fills up; SQS returns as soon
 *    as any message is available. The wrapper polls with WaitTimeSeconds 0 (about 50 ms a round)
 *    until a message arrives or the wait is over.
 */
function patchLocalSqs(service: { Queues: PatchableQueue[] }): void {
  const queues = service.Queues;
  const push = queues.push;
  queues.push = function (this: PatchableQueue[], ...added: PatchableQueue[]): number {
    for (const q of added) patchQueue(q);
    return push.apply(this, added);
  };
  for (const q of queues) patchQueue(q);
}

function patchQueue(q: PatchableQueue): void {
  const { receive, newRecord, changeVisibility, delete: del } = q;
  if (typeof receive === 'function') {
    q.receive = async function (this: PatchableQueue, params) {
      const wait = Number(params?.WaitTimeSeconds ?? this.ReceiveMessageWaitTimeSeconds ?? 0);
      if (!(wait > 0)) return receive.call(this, params);
      const deadline = Date.now() + wait * 1000;
      for (;;) {
        const got = await receive.call(this, { ...params, WaitTimeSeconds: 0 });
        if (got.length > 0 || Date.now() >= deadline) return got;
      }
    };
  }
  if (typeof newRecord !== 'function' || typeof changeVisibility !== 'function' || typeof del !== 'function') return;
  // Entries by message id, dropped when the message is deleted (DLQ moves and retention expiry
  // leave an entry behind; rare and small).
  const entries = new Map<string, SqsEntry>();
  q.newRecord = (msg, delay) => {
    const entry = newRecord(msg, delay);
    const id = entry?.record?.MessageId;
    if (id) entries.set(id, entry);
    return entry;
  };
  q.changeVisibility = function (this: PatchableQueue, receiptHandle, visibilityTimeout) {
    const entry = entries.get(messageIdOfReceiptHandle(receiptHandle) ?? '');
    const before = entry?.record?.attributes?.ApproximateReceiveCount;
    const changed = changeVisibility.call(this, receiptHandle, visibilityTimeout);
    if (before !== undefined && entry?.record?.attributes) entry.record.attributes.ApproximateReceiveCount = before;
    return changed;
  };
  q.delete = function (this: PatchableQueue, receiptHandle) {
    const deleted = del.call(this, receiptHandle);
    const id = messageIdOfReceiptHandle(receiptHandle);
    if (id) entries.delete(id);
    return deleted;
  };
}

/** local-aws-sqs receipt handles are base64 of `<uuid>{"date":…,"MessageId":…,"QueueName":…}`. */
function messageIdOfReceiptHandle(receiptHandle: string): string | undefined {
  try {
    const text = Buffer.from(receiptHandle, 'base64').toString('utf8');
    const parsed = JSON.parse(text.slice(text.indexOf('{'))) as { MessageId?: unknown };
    return typeof parsed.MessageId === 'string' ? parsed.MessageId : undefined;
  } catch {
    return undefined;
  }
}

function listen(server: Server): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, HOST, () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    // Idle keep-alive sockets and long-polls would otherwise hold close() open.
    server.closeAllConnections();
  });
}
