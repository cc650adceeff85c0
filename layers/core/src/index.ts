// The public surface of @anyprefer/core: what handlers, the CLI, the stack and the local runtime use.
export * from './types';
export * from './ports';
export * from './config';
export * from './resources';
export * from './prompts';
export * from './random';
export type * from './state/records';
export { getDependencies, buildDependencies, LAB_URL_ENV, type Dependencies } from './dependencies';
export { sqsBatchHandler, type StageRecord, type RecordHandler } from './lambda';
export { runItemStage, PermanentItemError } from './stages/item';
export { runIngest, ingestObject, isPromptFile, configKeyFor, runIdFor, objectsFromMessage, RUN_ID_METADATA } from './stages/ingest';
export { runFinalize, OUTPUT_FILES } from './stages/finalize';
export { checkRunComplete } from './stages/progress';
export type { DatasetSummary } from './output/records';
export { createAwsClients } from './adapters/aws-clients';
export { S3BlobStore } from './adapters/s3-blob-store';
export { SqsQueueSender } from './adapters/sqs-queue-sender';
export { DynamoStateStore } from './adapters/dynamo-state-store';
