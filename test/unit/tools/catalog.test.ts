import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../../layers/core/src/config';
import { createToolRegistry, defaultToolServices } from '../../../layers/core/src/tools/catalog';
import type { Tool } from '../../../layers/core/src/tools/registry';

const ALL = ['reference', 'calculator', 'retrieve', 'web_search', 'run_code', 'detector', 'simulate'];
const names = (registry: ReturnType<typeof createToolRegistry>) => registry.specs(ALL).map((s) => s.name);

const runCode: Tool = {
  name: 'run_code',
  description: 'runs code',
  parameters: { type: 'object', properties: {} },
  limits: { timeoutMs: 100, maxOutputChars: 100 },
  execute: async () => 'ran',
};

const http = { name: 'detector', description: 'Detects objects', url: 'https://detector.example.com/v1' };
const lambda = { name: 'simulate', description: 'Simulates', functionArn: 'arn:aws:lambda:us-east-1:123456789012:function:sim' };

describe('createToolRegistry', () => {
  it('offers the built-ins, web_search only when configured', () => {
    expect(names(createToolRegistry(parseRunConfig({}).tools))).toEqual(['reference', 'calculator', 'retrieve']);
    const withSearch = parseRunConfig({ tools: { webSearch: { provider: 'brave' } } }).tools;
    expect(names(createToolRegistry(withSearch))).toEqual(['reference', 'calculator', 'retrieve', 'web_search']);
  });

  it('adds extra built-ins and one tool per declared http and lambda tool', () => {
    const settings = parseRunConfig({ tools: { http: [http], lambda: [lambda] } }).tools;
    const registry = createToolRegistry(settings, [runCode]);
    expect(names(registry)).toEqual(['reference', 'calculator', 'retrieve', 'run_code', 'detector', 'simulate']);
    expect(registry.specs(['detector'])[0]).toEqual({
      name: 'detector',
      description: 'Detects objects',
      parameters: { type: 'object', properties: {} },
    });
  });

  it('gives every call the run settings and the services', async () => {
    const settings = parseRunConfig({ tools: { retrieve: { prefix: 'kb/' } } }).tools;
    const listed: string[] = [];
    const services = {
      ...defaultToolServices({ blobs: undefined as never, buckets: { input: 'in', output: 'out' }, secret: async () => undefined }),
      blobs: { list: async (bucket: string, prefix: string) => (listed.push(`${bucket}/${prefix}`), []) } as never,
    };
    const ev = await createToolRegistry(settings, [], services).run({ id: 'c', name: 'retrieve', arguments: '{"query":"x"}' }, { runId: 'r' }, 1);
    expect(ev.output).toBe('no knowledge corpus under s3://in/kb/ (upload .md, .txt or .jsonl files there)');
    expect(listed).toEqual(['in/kb/']);
  });

  it('refuses a user tool named like a built-in, naming it', () => {
    for (const name of ['calculator', 'web_search', 'run_code']) {
      const settings = parseRunConfig({ tools: { http: [{ ...http, name }] } }).tools;
      expect(() => createToolRegistry(settings)).toThrow(`tools.http[0]: "${name}" is the name of a built-in tool`);
    }
    const settings = parseRunConfig({ tools: { lambda: [{ ...lambda, name: 'retrieve' }] } }).tools;
    expect(() => createToolRegistry(settings)).toThrow(/tools\.lambda\[0\]: "retrieve" is the name of a built-in tool/);
  });

  it('refuses two user tools with one name', () => {
    const settings = parseRunConfig({ tools: { http: [http], lambda: [{ ...lambda, name: 'detector' }] } }).tools;
    expect(() => createToolRegistry(settings)).toThrow('tools.lambda[0]: the tool name "detector" is already used by tools.http[0]');
  });
});

describe('defaultToolServices', () => {
  const deps = { blobs: undefined as never, buckets: { input: 'in', output: 'out' }, secret: async (n: string) => (n === 'K' ? 'v' : undefined) };

  it('resolves host names to all their addresses', async () => {
    const addresses = await defaultToolServices(deps).lookup('localhost');
    expect(addresses.length).toBeGreaterThan(0);
    expect(addresses.some((a) => a === '127.0.0.1' || a === '::1')).toBe(true);
  });

  it('passes secrets through and invokes Lambda with the given client', async () => {
    const mock = mockClient(LambdaClient);
    mock.on(InvokeCommand).resolves({ StatusCode: 200, Payload: new TextEncoder().encode('"ok"') as never });
    const services = defaultToolServices({ ...deps, lambdaClient: new LambdaClient({ region: 'us-east-1' }) });
    expect(await services.secret('K')).toBe('v');
    expect(await services.invokeLambda(lambda.functionArn, '{}', new AbortController().signal)).toBe('"ok"');
    expect(typeof services.fetch).toBe('function');
    mock.restore();
  });
});
