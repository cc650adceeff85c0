// S3 → SQS event notifications for the embedded runtime. s3rver has no notification
// configuration, but it emits an `event` for every object write; this bridge turns those for the
// input bucket into the exact message S3 sends to the ingest queue in AWS (one record per
// message, URL-encoded key), and sends the `s3:TestEvent` S3 sends when the notification is
// configured. The ingest stage decides what to ignore, as it does in AWS.
import { randomBytes } from 'node:crypto';
import { SendMessageCommand, type SQSClient } from '@aws-sdk/client-sqs';
import type { EventEmitter } from 'node:events';

/** The notification's configuration id (the stack's S3 → SQS notification). */
export const NOTIFICATION_CONFIGURATION_ID = 'anyprefer-ingest';

export interface BridgeOptions {
  sqs: SQSClient;
  inputBucket: string;
  ingestQueueUrl: string;
  /** Default `AWS_REGION`, then `us-east-1`. */
  region?: string;
  /** A send failed (the event is lost, as when a notification cannot be delivered). Default: console.error. */
  onError?: (err: unknown) => void;
}

/** What s3rver 3.x emits (its own rendering of an S3 event; eventVersion 2.0, raw key). */
interface S3rverEvent {
  Records?: {
    eventName?: string;
    eventTime?: string;
    requestParameters?: { sourceIPAddress?: string };
    s3?: {
      bucket?: { name?: string };
      object?: { key?: string; size?: number; eTag?: string; versionId?: string; sequencer?: string };
    };
  }[];
}

/** S3's notification record (event structure version 2.1). */
export interface S3NotificationRecord {
  eventVersion: '2.1';
  eventSource: 'aws:s3';
  awsRegion: string;
  eventTime: string;
  eventName: string;
  userIdentity: { principalId: string };
  requestParameters: { sourceIPAddress: string };
  responseElements: { 'x-amz-request-id': string; 'x-amz-id-2': string };
  s3: {
    s3SchemaVersion: '1.0';
    configurationId: string;
    bucket: { name: string; ownerIdentity: { principalId: string }; arn: string };
    object: { key: string; size: number; eTag?: string; versionId?: string; sequencer: string };
  };
}

export interface S3TestEvent {
  Service: 'Amazon S3';
  Event: 's3:TestEvent';
  Time: string;
  Bucket: string;
  RequestId: string;
  HostId: string;
}

/**
 * Forwards every object-created event of `inputBucket` to the ingest queue, after sending the
 * test event. Returns a stop function that detaches and waits for sends in flight.
 */
export function bridgeS3Events(s3rverInstance: EventEmitter, opts: BridgeOptions): () => Promise<void> {
  const region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const onError = opts.onError ?? ((err: unknown) => console.error('s3 event bridge: send failed', err));
  const pending = new Set<Promise<void>>();
  // Sends are chained so the queue sees events in the order s3rver emitted them.
  let chain: Promise<void> = Promise.resolve();

  const send = (body: unknown): void => {
    const p = (chain = chain
      .then(() => opts.sqs.send(new SendMessageCommand({ QueueUrl: opts.ingestQueueUrl, MessageBody: JSON.stringify(body) })))
      .then(
        () => {},
        (err: unknown) => onError(err),
      ));
    pending.add(p);
    void p.finally(() => pending.delete(p));
  };

  const listener = (event: S3rverEvent): void => {
    for (const record of event.Records ?? []) {
      const notification = toNotificationRecord(record, region);
      if (notification && notification.s3.bucket.name === opts.inputBucket) send({ Records: [notification] });
    }
  };

  send(s3TestEvent(opts.inputBucket));
  s3rverInstance.on('event', listener);
  let stopped = false;
  return async () => {
    if (!stopped) {
      stopped = true;
      s3rverInstance.off('event', listener);
    }
    await Promise.allSettled([...pending]);
  };
}

/** The message S3 sends to a queue when a notification configuration is put on a bucket. */
export function s3TestEvent(bucket: string): S3TestEvent {
  return {
    Service: 'Amazon S3',
    Event: 's3:TestEvent',
    Time: new Date().toISOString(),
    Bucket: bucket,
    RequestId: requestId(),
    HostId: hostId(),
  };
}

/**
 * An object key as S3 writes it into event notifications: URL-encoded as an HTML form would
 * (space → `+`, `+` → `%2B`, non-ASCII as UTF-8 `%XX`), with `/` left as is.
 * Decode with `decodeURIComponent(key.replace(/\+/g, ' '))`.
 */
export function encodeS3EventKey(key: string): string {
  return encodeURIComponent(key)
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`)
    .replace(/%2F/g, '/')
    .replace(/%20/g, '+');
}

export function decodeS3EventKey(key: string): string {
  return decodeURIComponent(key.replace(/\+/g, ' '));
}

/** s3rver's event names → S3's. s3rver reports CompleteMultipartUpload as `Post`. */
const EVENT_NAMES: Record<string, string> = {
  'ObjectCreated:Put': 'ObjectCreated:Put',
  'ObjectCreated:Copy': 'ObjectCreated:Copy',
  'ObjectCreated:Post': 'ObjectCreated:CompleteMultipartUpload',
};

let lastSequencer = 0n;

/** S3's sequencer: a hex string that grows with each event on a key (here: on every event). */
function nextSequencer(): string {
  const now = BigInt(Date.now()) << 20n;
  lastSequencer = now > lastSequencer ? now : lastSequencer + 1n;
  return lastSequencer.toString(16).toUpperCase().padStart(18, '0');
}

function toNotificationRecord(
  record: NonNullable<S3rverEvent['Records']>[number],
  region: string,
): S3NotificationRecord | undefined {
  const eventName = record.eventName ? EVENT_NAMES[record.eventName] : undefined;
  const bucket = record.s3?.bucket?.name;
  const object = record.s3?.object;
  if (!eventName || !bucket || !object?.key) return undefined;
  return {
    eventVersion: '2.1',
    eventSource: 'aws:s3',
    awsRegion: region,
    eventTime: record.eventTime ?? new Date().toISOString(),
    eventName,
    userIdentity: { principalId: 'AWS:AIDAANYPREFERLOCAL' },
    requestParameters: { sourceIPAddress: record.requestParameters?.sourceIPAddress ?? '127.0.0.1' },
    responseElements: { 'x-amz-request-id': requestId(), 'x-amz-id-2': hostId() },
    s3: {
      s3SchemaVersion: '1.0',
      configurationId: NOTIFICATION_CONFIGURATION_ID,
      bucket: { name: bucket, ownerIdentity: { principalId: 'ANYPREFERLOCAL' }, arn: `arn:aws:s3:::${bucket}` },
      object: {
        key: encodeS3EventKey(object.key),
        size: Number(object.size ?? 0),
        ...(object.eTag ? { eTag: object.eTag.replace(/^"(.*)"$/, '$1') } : {}),
        ...(object.versionId ? { versionId: object.versionId } : {}),
        sequencer: nextSequencer(),
      },
    },
  };
}

const requestId = (): string => randomBytes(8).toString('hex').toUpperCase();
const hostId = (): string => randomBytes(48).toString('base64');
