// BlobStore on S3 (or any S3-compatible endpoint: s3rver, moto).
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { Readable } from 'node:stream';
import {
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  S3Client,
  paginateListObjectsV2,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { BlobStore } from '../ports';

/** Part size of streamed uploads: S3's minimum (5 MiB), so memory stays small and a 6 MB file is multipart. */
const UPLOAD_PART_BYTES = 5 * 1024 * 1024;
/** Parts uploaded concurrently per stream: bounds memory to about queueSize × partSize. */
const UPLOAD_QUEUE_SIZE = 4;

export class S3BlobStore implements BlobStore {
  constructor(private readonly s3: S3Client) {}

  async put(bucket: string, key: string, body: string | Uint8Array, contentType?: string): Promise<void> {
    await this.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body, ContentType: contentType }));
  }

  async putStream(bucket: string, key: string, body: Readable, contentType?: string): Promise<void> {
    const upload = new Upload({
      client: this.s3,
      params: { Bucket: bucket, Key: key, Body: body, ContentType: contentType },
      partSize: UPLOAD_PART_BYTES,
      queueSize: UPLOAD_QUEUE_SIZE,
      leavePartsOnError: false,
    });
    await upload.done();
  }

  async getText(bucket: string, key: string): Promise<string> {
    const res = await this.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    if (!res.Body) return '';
    return res.Body.transformToString('utf-8');
  }

  async getTextIfExists(bucket: string, key: string): Promise<string | undefined> {
    try {
      return await this.getText(bucket, key);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async getStream(bucket: string, key: string, range?: { start: number; end: number }): Promise<Readable> {
    if (range) {
      if (!Number.isInteger(range.start) || !Number.isInteger(range.end) || range.start < 0) {
        throw new Error(`invalid byte range [${range.start}, ${range.end}) for s3://${bucket}/${key}`);
      }
      // An empty range has no HTTP form (S3 would answer an unsatisfiable range with the whole object).
      if (range.end <= range.start) return Readable.from([]);
    }
    const res = await this.s3.send(
      new GetObjectCommand({
        Bucket: bucket,
        Key: key,
        ...(range ? { Range: `bytes=${range.start}-${range.end - 1}` } : {}),
      }),
    );
    const body = res.Body;
    if (!body) return Readable.from([]);
    // In Node the SDK's body is an http.IncomingMessage (a Readable) with the stream mixin.
    if (body instanceof Readable) return body;
    return Readable.fromWeb(body.transformToWebStream() as Parameters<typeof Readable.fromWeb>[0]);
  }

  async head(
    bucket: string,
    key: string,
  ): Promise<{ size: number; etag?: string; versionId?: string; metadata?: Record<string, string> } | undefined> {
    try {
      const res = await this.s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
      return {
        size: res.ContentLength ?? 0,
        // Unquoted, the form S3 event notifications carry.
        ...(res.ETag ? { etag: unquoteEtag(res.ETag) } : {}),
        ...(res.VersionId && res.VersionId !== 'null' ? { versionId: res.VersionId } : {}),
        ...(res.Metadata ? { metadata: res.Metadata } : {}),
      };
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async presign(bucket: string, key: string, expiresSeconds: number): Promise<string> {
    return getSignedUrl(this.s3, new GetObjectCommand({ Bucket: bucket, Key: key }), { expiresIn: expiresSeconds });
  }

  async list(bucket: string, prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const page of paginateListObjectsV2({ client: this.s3 }, { Bucket: bucket, Prefix: prefix })) {
      for (const obj of page.Contents ?? []) if (obj.Key !== undefined) keys.push(obj.Key);
    }
    return keys;
  }
}

export const unquoteEtag = (etag: string): string => etag.replace(/^"(.*)"$/, '$1');

/** NoSuchKey on GET, a bare 404 (`NotFound`) on HEAD; a missing bucket is not "not found". */
export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  if (!e || typeof e !== 'object' || e.name === 'NoSuchBucket') return false;
  return e.name === 'NoSuchKey' || e.name === 'NotFound' || e.$metadata?.httpStatusCode === 404;
}
