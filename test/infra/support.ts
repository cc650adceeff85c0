// Shared by the infrastructure tests: an App with cdk.json's context (feature flags and
// anyprefer:* defaults) plus overrides, synthesized into a scratch directory inside the repo
// (.tmp/, git-ignored) so that bundled code can be imported with the repo's node_modules.
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { AnypreferStack } from '../../lib/anyprefer-stack';
import { configureApp } from '../../lib/app';
import { REPO_ROOT } from '../../lib/core-layer';

export const cdkJsonContext = (): Record<string, unknown> =>
  (JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')) as { context: Record<string, unknown> }).context;

export interface Synthesized {
  app: App;
  stack: AnypreferStack;
  template: Template;
  json: Record<string, any>;
  outdir: string;
  cleanup(): void;
}

/**
 * `bundle: false` skips asset bundling (as `cdk synth --exclusively` does for other stacks):
 * much faster, for tests that only read the template.
 */
export function synth(context: Record<string, unknown> = {}, opts: { bundle?: boolean; nag?: boolean } = {}): Synthesized {
  const scratch = join(REPO_ROOT, '.tmp');
  mkdirSync(scratch, { recursive: true });
  const outdir = mkdtempSync(join(scratch, 'cdk-test-'));
  const app = new App({
    outdir,
    context: {
      ...cdkJsonContext(),
      'anyprefer:nag': opts.nag ?? false,
      ...(opts.bundle === false ? { 'aws:cdk:bundling-stacks': [] } : {}),
      ...context,
    },
  });
  const stack = configureApp(app);
  const template = Template.fromStack(stack);
  return { app, stack, template, json: template.toJSON(), outdir, cleanup: () => rmSync(outdir, { recursive: true, force: true }) };
}

/** The CloudFormation logical id of an L2 construct's main resource. */
export function logicalId(stack: AnypreferStack, construct: { node: { defaultChild?: unknown } }): string {
  return stack.getLogicalId(construct.node.defaultChild as never);
}

export type Statement = { Effect: string; Action: string[]; Resource: unknown[]; Condition?: unknown; Principal?: unknown };

/** Every statement of the IAM policies attached to a role, with Action and Resource as arrays. */
export function roleStatements(json: Record<string, any>, roleLogicalId: string): Statement[] {
  const statements: Statement[] = [];
  for (const res of Object.values<any>(json.Resources)) {
    if (res.Type !== 'AWS::IAM::Policy') continue;
    if (!res.Properties.Roles.some((r: any) => r.Ref === roleLogicalId)) continue;
    for (const s of res.Properties.PolicyDocument.Statement) {
      statements.push({ ...s, Action: [s.Action].flat(), Resource: [s.Resource].flat() });
    }
  }
  return statements;
}

/** Does a (possibly Fn::Join / Fn::GetAtt) resource refer to the given logical id? */
export const refersTo = (resource: unknown, id: string): boolean => JSON.stringify(resource).includes(`"${id}"`);
