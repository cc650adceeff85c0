import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../../layers/core/src/config';
import { functionErrorOf, invokeLambdaWith, lambdaTool } from '../../../layers/core/src/tools/lambda-tool';
import { ToolRegistry, type ToolServices } from '../../../layers/core/src/tools/registry';

const ARN = 'arn:aws:lambda:us-east-1:123456789012:function:simulator';

const declare = (over: Record<string, unknown> = {}) =>
  parseRunConfig({
    tools: {
      lambda: [
        {
          name: 'simulate',
          description: 'Runs the physics simulator',
          parameters: { type: 'object', properties: { steps: { type: 'integer' } }, required: ['steps'] },
          functionArn: ARN,
          ...over,
        },
      ],
    },
  }).tools.lambda[0]!;

function services(invokeLambda: ToolServices['invokeLambda']): ToolServices {
  return {
    blobs: undefined as never,
    buckets: { input: 'in', output: 'out' },
    secret: async () => undefined,
    invokeLambda,
    fetch: async () => {
      throw new Error('not used');
    },
    lookup: async () => [],
  };
}

async function run(invoke: ToolServices['invokeLambda'], args: string, over: Record<string, unknown> = {}) {
  const registry = new ToolRegistry([lambdaTool(declare(over))]);
  return registry.run({ id: 'c1', name: 'simulate', arguments: args }, { services: services(invoke) }, 1);
}

const bytes = (text: string) => new TextEncoder().encode(text) as never;

describe('lambdaTool with an injected invokeLambda', () => {
  it('sends the arguments as the payload and formats a JSON answer', async () => {
    const calls: { arn: string; payload: string; signal: AbortSignal }[] = [];
    const ev = await run(async (arn, payload, signal) => {
      calls.push({ arn, payload, signal });
      return JSON.stringify({ energy: 12.5, stable: true });
    }, '{"steps":100}');
    expect(ev).toMatchObject({ ok: true, output: '{"energy":12.5,"stable":true}' });
    expect(calls).toHaveLength(1);
    expect(calls[0]!.arn).toBe(ARN);
    expect(JSON.parse(calls[0]!.payload)).toEqual({ steps: 100 });
    expect(calls[0]!.signal).toBeInstanceOf(AbortSignal);
  });

  it('returns a JSON string answer as its text, and other text as is', async () => {
    expect((await run(async () => '"the orbit is stable"', '{"steps":1}')).output).toBe('the orbit is stable');
    expect((await run(async () => 'plain text', '{"steps":1}')).output).toBe('plain text');
  });

  it('turns an error payload into a tool error', async () => {
    const ev = await run(
      async () => JSON.stringify({ errorType: 'ValueError', errorMessage: 'steps must be positive', stackTrace: ['at x'] }),
      '{"steps":-1}',
    );
    expect(ev).toMatchObject({ ok: false, output: 'function error: ValueError: steps must be positive' });
  });

  it('does not mistake a result with an errorMessage field among others for an error', async () => {
    const ev = await run(async () => JSON.stringify({ errorMessage: 'none', energy: 1 }), '{"steps":1}');
    expect(ev.ok).toBe(true);
  });

  it('times out when the function does not answer in time', async () => {
    const started = performance.now();
    const ev = await run(
      (_arn, _payload, signal) =>
        new Promise<string>((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })),
      '{"steps":1}',
      { timeoutMs: 100 },
    );
    expect(ev.ok).toBe(false);
    expect(ev.output).toBe(`the function ${ARN} timed out after 100 ms`);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('reports an invoke failure', async () => {
    const ev = await run(async () => {
      throw new Error('AccessDeniedException: not authorized');
    }, '{"steps":1}');
    expect(ev).toMatchObject({ ok: false, output: `invoking ${ARN} failed: AccessDeniedException: not authorized` });
  });

  it('rejects bad arguments without invoking', async () => {
    let invoked = 0;
    const invoke = async () => {
      invoked++;
      return '{}';
    };
    expect((await run(invoke, '{}')).output).toMatch(/missing required argument: steps/);
    expect((await run(invoke, '{"steps":"many"}')).output).toMatch(/"steps" must be integer/);
    expect(invoked).toBe(0);
  });

  it('truncates an oversize answer to the output limit', async () => {
    const ev = await run(async () => JSON.stringify('w'.repeat(5_000)), '{"steps":1}', { maxOutputChars: 100 });
    expect(ev.ok).toBe(true);
    expect(ev.output).toMatch(/^w{100}…\[truncated 4900 chars\]$/);
  });
});

describe('invokeLambdaWith (LambdaClient mocked)', () => {
  const lambda = mockClient(LambdaClient);
  afterEach(() => lambda.reset());

  it('invokes RequestResponse with the payload and decodes the answer', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: bytes('{"label":"benign"}') });
    const ev = await run(invokeLambdaWith(new LambdaClient({ region: 'us-east-1' })), '{"steps":7}');
    expect(ev).toMatchObject({ ok: true, output: '{"label":"benign"}' });
    const input = lambda.commandCalls(InvokeCommand)[0]!.args[0].input;
    expect(input.FunctionName).toBe(ARN);
    expect(input.InvocationType).toBe('RequestResponse');
    expect(JSON.parse(new TextDecoder().decode(input.Payload as Uint8Array))).toEqual({ steps: 7 });
  });

  it('throws on FunctionError with the function message', async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: bytes(JSON.stringify({ errorType: 'Runtime.ExitError', errorMessage: 'the model weights are missing' })),
    });
    const invoke = invokeLambdaWith(new LambdaClient({ region: 'us-east-1' }));
    await expect(invoke(ARN, '{}', new AbortController().signal)).rejects.toThrow(
      'function error (Unhandled): Runtime.ExitError: the model weights are missing',
    );
    const ev = await run(invoke, '{"steps":1}');
    expect(ev).toMatchObject({ ok: false, output: 'function error (Unhandled): Runtime.ExitError: the model weights are missing' });
  });

  it('reports an SDK error', async () => {
    lambda.on(InvokeCommand).rejects(new Error('ResourceNotFoundException: Function not found'));
    const ev = await run(invokeLambdaWith(new LambdaClient({ region: 'us-east-1' })), '{"steps":1}');
    expect(ev.output).toBe(`invoking ${ARN} failed: ResourceNotFoundException: Function not found`);
  });
});

describe('functionErrorOf', () => {
  it('recognises only Lambda error payloads', () => {
    expect(functionErrorOf('{"errorMessage":"boom"}')).toBe('boom');
    expect(functionErrorOf('{"errorType":"E","errorMessage":"boom","trace":[]}')).toBe('E: boom');
    expect(functionErrorOf('{"result":1}')).toBeUndefined();
    expect(functionErrorOf('not json')).toBeUndefined();
    expect(functionErrorOf('[1]')).toBeUndefined();
  });
});
