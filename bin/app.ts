#!/usr/bin/env node
// The CDK app: `npx cdk synth` / `npx cdk deploy` (cdk.json runs this file with tsx).
// Settings come from CDK context (lib/context.ts, docs/operations.md); the cdk-nag AwsSolutions
// checks run on every synth unless `-c anyprefer:nag=false`, so an unacknowledged finding stops a deploy.
import { App } from 'aws-cdk-lib';
import { configureApp } from '../lib/app';
import { ContextError } from '../lib/context';

const app = new App();
try {
  configureApp(app);
} catch (e) {
  if (!(e instanceof ContextError)) throw e;
  console.error(`anyprefer: ${e.message}`);
  process.exit(1);
}
