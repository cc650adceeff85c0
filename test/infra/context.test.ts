// CDK context → settings: defaults, both value shapes (cdk.json JSON, `-c key=value` strings),
// and errors that name the key and field, so a typo fails the synth instead of deploying.
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../layers/core/src/config';
import { CONTEXT, CONTEXT_DEFAULTS, ContextError, DEFAULT_CONFIG_MAX_BYTES, parseSettings } from '../../lib/context';
import { cdkJsonContext } from './support';

describe('context defaults', () => {
  it('nothing set: the documented defaults', () => {
    const s = parseSettings({});
    expect(s).toMatchObject({
      stackName: 'Anyprefer',
      config: {},
      destroyOnRemoval: false,
      lambdaToolArns: [],
      nag: true,
      maxConcurrency: { ingest: 2, generate: 4, judge: 4, feedback: 2, finalize: 2 },
    });
    expect(s.alarmEmail).toBeUndefined();
    expect(s.runConfig).toEqual(parseRunConfig({}));
  });

  it('cdk.json spells out the same defaults', () => {
    const ctx = cdkJsonContext();
    const fromJson = parseSettings(Object.fromEntries(Object.entries(CONTEXT).map(([field, key]) => [field, ctx[key]])));
    expect(fromJson).toEqual(parseSettings({}));
    expect(ctx['cli-telemetry']).toBe(false);
    expect(ctx[CONTEXT.stackName]).toBe(CONTEXT_DEFAULTS.stackName);
  });
});

describe('anyprefer:config', () => {
  it('accepts an object or a JSON string and keeps it as given', () => {
    const config = { rewardThreshold: 8, models: { judge: { model: 'gpt-4o', apiKeyName: 'OPENAI_API_KEY' } } };
    expect(parseSettings({ config }).config).toEqual(config);
    expect(parseSettings({ config: JSON.stringify(config) }).config).toEqual(config);
    expect(parseSettings({ config }).runConfig.rewardThreshold).toBe(8);
  });

  it('a typo or a bad value fails with the field named', () => {
    expect(() => parseSettings({ config: { candidatesPerPromt: 4 } })).toThrow(/anyprefer:config.*candidatesPerPromt/);
    expect(() => parseSettings({ config: { rewardThreshold: 42 } })).toThrow(/anyprefer:config.*rewardThreshold/);
    expect(() => parseSettings({ config: { models: { judge: { model: 'x', baseURL: 'not a url' } } } })).toThrow(/models\.judge\.baseURL/);
    expect(() => parseSettings({ config: '{"rewardThreshold": ' })).toThrow(/anyprefer:config is not valid JSON/);
    expect(() => parseSettings({ config: [1, 2] })).toThrow(ContextError);
  });

  it('must fit in a Lambda environment variable', () => {
    const config = { prompts: { judge: 'x'.repeat(DEFAULT_CONFIG_MAX_BYTES) } };
    expect(() => parseSettings({ config })).toThrow(/prompts\/NAME\.config\.json/);
  });
});

describe('anyprefer:maxConcurrency', () => {
  it('per stage, else the run config concurrency, never below 2', () => {
    const s = parseSettings({ config: { concurrency: { ingest: 1, judge: 9 } }, maxConcurrency: '{"generate": 20, "finalize": "3"}' });
    expect(s.maxConcurrency).toEqual({ ingest: 2, generate: 20, judge: 9, feedback: 2, finalize: 3 });
  });

  it('rejects unknown stages and values outside Lambda’s 2-1000', () => {
    expect(() => parseSettings({ maxConcurrency: { jduge: 4 } })).toThrow(/maxConcurrency\.jduge: unknown stage/);
    expect(() => parseSettings({ maxConcurrency: { judge: 1 } })).toThrow(/maxConcurrency\.judge must be an integer from 2 to 1000/);
    expect(() => parseSettings({ maxConcurrency: { judge: 1001 } })).toThrow(ContextError);
    expect(() => parseSettings({ maxConcurrency: { judge: 2.5 } })).toThrow(ContextError);
  });
});

describe('the other keys', () => {
  it('booleans from JSON or strings', () => {
    expect(parseSettings({ destroyOnRemoval: 'true', nag: 'false' })).toMatchObject({ destroyOnRemoval: true, nag: false });
    expect(() => parseSettings({ destroyOnRemoval: 'yes' })).toThrow(/anyprefer:destroyOnRemoval must be true or false/);
  });

  it('alarm email', () => {
    expect(parseSettings({ alarmEmail: 'ops@example.com' }).alarmEmail).toBe('ops@example.com');
    expect(parseSettings({ alarmEmail: '' }).alarmEmail).toBeUndefined();
    expect(() => parseSettings({ alarmEmail: 'ops' })).toThrow(/anyprefer:alarmEmail/);
  });

  it('Lambda tool ARNs: a list, a JSON string or comma-separated; only function ARNs', () => {
    const a = 'arn:aws:lambda:us-east-1:123456789012:function:search';
    const b = 'arn:aws:lambda:us-east-1:123456789012:function:sql:live';
    expect(parseSettings({ lambdaToolArns: [a, b] }).lambdaToolArns).toEqual([a, b]);
    expect(parseSettings({ lambdaToolArns: JSON.stringify([a]) }).lambdaToolArns).toEqual([a]);
    expect(parseSettings({ lambdaToolArns: `${a}, ${b}` }).lambdaToolArns).toEqual([a, b]);
    expect(() => parseSettings({ lambdaToolArns: ['*'] })).toThrow(/lambdaToolArns\[0\] is not a Lambda function ARN/);
    expect(() => parseSettings({ lambdaToolArns: ['arn:aws:lambda:us-east-1:123456789012:function:*'] })).toThrow(ContextError);
  });

  it('stack name', () => {
    expect(parseSettings({ stackName: 'AnypreferDev' }).stackName).toBe('AnypreferDev');
    expect(() => parseSettings({ stackName: 'has space' })).toThrow(/anyprefer:stackName/);
  });
});
