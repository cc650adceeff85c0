// The wiring every handler shares: SQS batch with partial batch responses, dependencies built
// once per container (see dependencies.ts).
import { BatchProcessor, EventType, processPartialResponse } from '@aws-lambda-powertools/batch';
import type { Context, SQSBatchResponse, SQSEvent, SQSRecord } from 'aws-lambda';
import { getDependencies, type Dependencies } from './dependencies';

export interface StageRecord {
  body: string;
  messageId: string;
  /** SQS ApproximateReceiveCount: 1 on first delivery. */
  receiveCount: number;
}

export type RecordHandler = (record: StageRecord, deps: Dependencies) => Promise<void>;

export function sqsBatchHandler(recordHandler: RecordHandler): (event: SQSEvent, context: Context) => Promise<SQSBatchResponse> {
  const processor = new BatchProcessor(EventType.SQS);
  const onRecord = async (record: SQSRecord): Promise<void> =>
    recordHandler(
      { body: record.body, messageId: record.messageId, receiveCount: Number(record.attributes.ApproximateReceiveCount ?? 1) },
      await getDependencies(),
    );
  return (event, context) => processPartialResponse(event, onRecord, processor, { context });
}
