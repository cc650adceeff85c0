// cdk-nag findings this stack accepts, each with the reason it is right here. cdk-nag 3 reads
// CDK's native acknowledgments (Validations.of(scope).acknowledge); an acknowledgment on a
// construct covers the resources under it. Each IAM5 finding is acknowledged on the one role it
// belongs to, and only for the key patterns that role was granted (see STAGE_ACCESS).
import { Stack, Validations, type CfnElement } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';
import type { AnypreferStack } from './anyprefer-stack';

/** Every acknowledgment goes through here, so none can be made without a real reason. */
export function acknowledge(scope: IConstruct, id: string, reason: string): void {
  if (reason.trim().length < 40) throw new Error(`acknowledging ${id} on ${scope.node.path}: give a real reason, not "${reason}"`);
  Validations.of(scope).acknowledge({ id, reason });
}

/** `<LogicalId.Arn>`, as cdk-nag prints a resource's ARN in IAM5 findings. */
export const arnRef = (element: IConstruct): string =>
  `<${Stack.of(element).getLogicalId(element.node.defaultChild as CfnElement)}.Arn>`;

/** The stack-wide findings; grants on key prefixes are acknowledged where they are made (allowRead/allowPut). */
export function addStackSuppressions(stack: AnypreferStack): void {
  acknowledge(
    stack.secret,
    'AwsSolutions-SMG4',
    'The secret holds API keys of third-party model providers (OpenAI-compatible endpoints). Secrets Manager ' +
      'cannot rotate them: a new key is issued in the provider console, then stored with put-secret-value; ' +
      'the functions pick it up within 5 minutes (docs/operations.md, "Rotating a key").',
  );

  const table = arnRef(stack.table);
  for (const stage of Object.values(stack.stages)) {
    acknowledge(
      stage.role,
      `AwsSolutions-IAM5[Resource::${table}/index/*]`,
      "Table.grantReadWriteData covers this table's own indexes (the `runs` GSI, queried for run listings); " +
        'the wildcard is limited to the index names of this one table.',
    );
  }

  // Created by CDK for inputBucket.addEventNotification: configures the S3 → SQS notification at deploy time.
  const notifications = stack.node.tryFindChild('BucketNotificationsHandler050a0587b7544547bf325f094a3db834');
  if (notifications) {
    acknowledge(
      notifications,
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
      'CDK-provided deploy-time custom resource (BucketNotificationsHandler) that sets the input bucket ' +
        'notification; aws-cdk-lib defines its role, which uses this managed policy only to write its own logs.',
    );
  }
}
