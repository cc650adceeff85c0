// Ingest stage handler: an S3 event notification (or one chunk of a large file) becomes a run and its items.
import { runIngest, sqsBatchHandler } from '@anyprefer/core';

export const handler = sqsBatchHandler((record, deps) => runIngest(deps, record.body));
