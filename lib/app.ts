// What bin/app.ts does to a CDK app, in a function the tests call too: read the settings from
// context, add the stack, and register the cdk-nag AwsSolutions checks.
import { Validations, type App } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { AnypreferStack } from './anyprefer-stack';
import { readSettings } from './context';

export const STACK_DESCRIPTION = 'anyprefer: preference-data synthesis pipeline (S3 → SQS → Lambda stages → S3 datasets)';

export function configureApp(app: App): AnypreferStack {
  const settings = readSettings(app.node);
  const { CDK_DEFAULT_ACCOUNT: account, CDK_DEFAULT_REGION: region } = process.env;
  const stack = new AnypreferStack(app, settings.stackName, {
    settings,
    description: STACK_DESCRIPTION,
    // Environment-agnostic unless the CLI knows the account and region (it does when credentials are configured).
    env: account && region ? { account, region } : undefined,
  });
  // cdk-nag 3 is a policy-validation plugin: an unacknowledged error fails the synth, so it stops a deploy.
  if (settings.nag) Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
  return stack;
}
