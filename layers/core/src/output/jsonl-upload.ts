// A JSON Lines file streamed to S3 while it is written: bounded memory, backpressure honoured,
// and a failed upload surfaces at the next write instead of hanging it or crashing the process.
import { PassThrough } from 'node:stream';
import type { BlobStore } from '../ports';

export interface JsonLinesUpload {
  write(record: unknown): Promise<void>;
  /** Ends the file and waits until it is stored. */
  finish(): Promise<void>;
  /** Abandons the upload: nothing partial is stored. */
  abort(error: Error): Promise<void>;
}

export function jsonLinesUpload(blobs: BlobStore, bucket: string, key: string): JsonLinesUpload {
  const stream = new PassThrough();
  let failure: unknown;
  const upload = blobs.putStream(bucket, key, stream, 'application/x-ndjson');
  // Observed at once, so an early rejection is never unhandled; reported by write() and finish().
  const settled = upload.then(
    () => undefined,
    (e: unknown) => {
      failure = e;
      stream.destroy();
    },
  );
  const failed = () => {
    if (failure !== undefined) throw failure;
  };
  return {
    async write(record) {
      failed();
      if (!stream.write(`${JSON.stringify(record)}\n`)) {
        await Promise.race([new Promise((r) => stream.once('drain', r)), settled]);
        failed();
      }
    },
    async finish() {
      stream.end();
      await settled;
      failed();
    },
    async abort(error) {
      stream.destroy(error);
      await settled;
    },
  };
}
