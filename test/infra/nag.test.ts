// cdk-nag AwsSolutions on the stack: no unacknowledged error, every acknowledgment has a real
// reason and still matches a finding (none left over after the code that needed it changed).
// cdk-nag 3 is a policy-validation plugin: its findings are a report, not construct annotations,
// so the checks run through `validateScope` here and through CDK's validation on synth.
import { Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { synth, type Synthesized } from './support';

type Violation = { ruleName: string; severity: string; violatingResources: { constructPath: string }[] };

const DEV_CONTEXT = {
  'anyprefer:destroyOnRemoval': true,
  'anyprefer:alarmEmail': 'ops@example.com',
  'anyprefer:lambdaToolArns': ['arn:aws:lambda:us-east-1:123456789012:function:tool'],
};

let prod: Synthesized;
let dev: Synthesized;
beforeAll(() => {
  // The plugin is registered (as bin/app.ts does) so the synth itself would fail on an error.
  prod = synth({}, { bundle: false, nag: true });
  dev = synth(DEV_CONTEXT, { bundle: false, nag: true });
});
afterAll(() => {
  prod?.cleanup();
  dev?.cleanup();
});

const check = (s: Synthesized): Violation[] => new AwsSolutionsChecks(undefined, { verbose: true }).validateScope(s.stack).violations as Violation[];

/** Every acknowledgment in the tree: where, which rule, why. */
function acknowledgments(root: IConstruct): { path: string; id: string; reason: string }[] {
  const found: { path: string; id: string; reason: string }[] = [];
  for (const c of root.node.findAll()) {
    for (const m of c.node.metadata) {
      if (m.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(m.data as Record<string, string>)) {
        found.push({ path: c.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return found;
}

describe('cdk-nag AwsSolutions', () => {
  it.each([
    ['production defaults', () => prod],
    ['dev context (destroyOnRemoval, alarm email, tool ARNs)', () => dev],
  ])('%s: zero unacknowledged errors; warnings listed', (_name, get) => {
    const violations = check(get());
    const errors = violations.filter((v) => v.severity === 'error');
    const warnings = violations.filter((v) => v.severity !== 'error');
    for (const w of warnings) console.info(`cdk-nag warning ${w.ruleName}: ${w.violatingResources.map((r) => r.constructPath).join(', ')}`);
    expect(errors.map((e) => `${e.ruleName} @ ${e.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    expect(Array.isArray(warnings)).toBe(true);
  });

  it('the validation report of the synthesized assembly passed (CDK ran the plugin)', () => {
    for (const s of [prod, dev]) {
      const assembly = s.app.synth();
      expect(assembly.stacks.map((st) => st.stackName)).toEqual(['Anyprefer']);
    }
  });

  it('every acknowledgment names an AwsSolutions rule and gives a real reason', () => {
    const acks = acknowledgments(prod.app);
    expect(acks.length).toBeGreaterThan(0);
    for (const a of acks) {
      expect(a.id, a.path).toMatch(/^AwsSolutions-[A-Z]+\d+(\[.+\])?$/);
      expect(a.reason.length, `${a.id} @ ${a.path}`).toBeGreaterThanOrEqual(80);
    }
  });

  it('no acknowledgment is stale: each one still covers a real finding', () => {
    for (const s of [prod, dev]) {
      // The same checks with acknowledgments ignored: the raw findings.
      const raw = new AwsSolutionsChecks();
      (raw as unknown as { isAcknowledged: () => boolean }).isAcknowledged = () => false;
      const findings = (raw.validateScope(s.stack).violations as Violation[]).flatMap((v) =>
        v.violatingResources.map((r) => ({ id: v.ruleName, path: r.constructPath })),
      );
      for (const a of acknowledgments(s.app)) {
        const covered = findings.some((f) => f.id === a.id && (f.path === a.path || f.path.startsWith(`${a.path}/`)));
        expect(covered, `${a.id} @ ${a.path}`).toBe(true);
      }
    }
  });
});
