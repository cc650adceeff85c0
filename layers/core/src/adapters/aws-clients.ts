// The three AWS SDK clients every stage uses. In Lambda they take the default configuration
// (region and credentials from the runtime); with an endpoint URL (the embedded runtime's local
// proxy, or moto/LocalStack) all three go to that one endpoint.
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { SQSClient } from '@aws-sdk/client-sqs';
import { DynamoDBDocumentClient } from '@aws-sdk/lib-dynamodb';

export interface AwsClientOptions {
  /** One endpoint for S3, SQS and DynamoDB (local only). */
  endpointUrl?: string;
  /** Defaults to `AWS_REGION`, then `us-east-1`. */
  region?: string;
}

export interface AwsClients {
  s3: S3Client;
  sqs: SQSClient;
  /** Document client: plain JS values in and out, `undefined` attributes dropped. */
  dynamo: DynamoDBDocumentClient;
  region: string;
}

/**
 * Credentials for local endpoints when `AWS_ACCESS_KEY_ID` is not set. s3rver only accepts its
 * built-in access key id `S3RVER` (it does not verify SigV4 signatures, but it looks the key up);
 * dynalite, local-aws-sqs and moto accept anything.
 */
export const LOCAL_CREDENTIALS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } as const;

export function createAwsClients(opts: AwsClientOptions = {}): AwsClients {
  const region = opts.region ?? process.env.AWS_REGION ?? 'us-east-1';
  const endpoint = opts.endpointUrl;

  if (!endpoint) {
    const dynamoBase = new DynamoDBClient({ region });
    return {
      s3: new S3Client({ region }),
      sqs: new SQSClient({ region }),
      dynamo: DynamoDBDocumentClient.from(dynamoBase, { marshallOptions: { removeUndefinedValues: true } }),
      region,
    };
  }

  const credentials = process.env.AWS_ACCESS_KEY_ID ? undefined : LOCAL_CREDENTIALS;
  const common = { region, endpoint, ...(credentials ? { credentials } : {}) };
  const dynamoBase = new DynamoDBClient(common);
  return {
    s3: new S3Client({
      ...common,
      forcePathStyle: true,
      // s3rver stores streamed uploads corrupted when the SDK adds its default (aws-chunked,
      // trailing) checksums; only send/validate checksums where the API requires them.
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
    }),
    sqs: new SQSClient(common),
    dynamo: DynamoDBDocumentClient.from(dynamoBase, { marshallOptions: { removeUndefinedValues: true } }),
    region,
  };
}

/** Closes the clients' connection pools (tests, CLI shutdown). */
export function destroyAwsClients(clients: AwsClients): void {
  clients.s3.destroy();
  clients.sqs.destroy();
  clients.dynamo.destroy();
}
