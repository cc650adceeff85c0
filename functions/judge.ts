// Judge stage handler: each SQS record is one item message; the logic is runItemStage in @anyprefer/core.
import { runItemStage, sqsBatchHandler } from '@anyprefer/core';

export const handler = sqsBatchHandler((record, deps) => runItemStage('judge', deps, record.body, record.receiveCount));
