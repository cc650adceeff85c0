import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ModelEndpoint } from '../../../layers/core/src/config';
import { backoffMs, ModelCallError, OpenAIGateway, retryAfterMs } from '../../../layers/core/src/models/gateway';
import type { Role } from '../../../layers/core/src/types';

type Reply = { status: number; headers?: Record<string, string>; body: unknown; delayMs?: number };
type Script = (body: Record<string, any>, index: number) => Reply;

let server: Server;
let baseURL: string;
let script: Script;
let requests: { body: Record<string, any>; auth: string | undefined }[];

function completion(contents: (string | null)[], usage?: { prompt_tokens: number; completion_tokens: number }, toolCalls?: unknown[]): unknown {
  return {
    id: 'c1',
    object: 'chat.completion',
    created: 0,
    model: 'm',
    choices: contents.map((content, index) => ({
      index,
      finish_reason: toolCalls ? 'tool_calls' : 'stop',
      message: { role: 'assistant', content, ...(toolCalls ? { tool_calls: toolCalls } : {}) },
    })),
    ...(usage ? { usage: { ...usage, total_tokens: usage.prompt_tokens + usage.completion_tokens } } : {}),
  };
}

const ok = (contents: (string | null)[], usage = { prompt_tokens: 10, completion_tokens: 5 }): Reply => ({
  status: 200,
  body: completion(contents, usage),
});

beforeAll(async () => {
  server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let data = '';
    req.on('data', (c) => (data += c));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/chat/completions') {
        res.writeHead(404).end();
        return;
      }
      const body = JSON.parse(data) as Record<string, any>;
      requests.push({ body, auth: req.headers.authorization });
      const reply = script(body, requests.length - 1);
      const send = () => {
        if (res.destroyed) return;
        res.writeHead(reply.status, { 'content-type': 'application/json', ...reply.headers });
        res.end(JSON.stringify(reply.body));
      };
      if (reply.delayMs) setTimeout(send, reply.delayMs);
      else send();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseURL = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  requests = [];
});

function makeGateway(overrides: Partial<ModelEndpoint> = {}, key: string | null = 'sk-test') {
  const endpoint: ModelEndpoint = {
    model: 'test-model',
    baseURL,
    apiKeyName: 'TEST_KEY',
    supportsN: true,
    maxTokens: 256,
    timeoutMs: 2_000,
    maxRetries: 2,
    ...overrides,
  };
  const endpoints = { target: endpoint, judge: endpoint, reward: endpoint, optimizer: endpoint } as Record<Role, ModelEndpoint>;
  const sleeps: number[] = [];
  const gateway = new OpenAIGateway({
    endpoints,
    apiKey: async (name) => (name === 'TEST_KEY' ? (key ?? undefined) : undefined),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    random: () => 0.5,
  });
  return { gateway, sleeps };
}

const user = (text: string) => [{ role: 'user' as const, content: text }];

describe('OpenAIGateway', () => {
  it('retries a 429 after its Retry-After delay and sums usage', async () => {
    script = (_b, i) =>
      i === 0
        ? { status: 429, headers: { 'retry-after': '0' }, body: { error: { message: 'slow down', type: 'rate_limit' } } }
        : ok(['hello'], { prompt_tokens: 7, completion_tokens: 3 });
    const { gateway, sleeps } = makeGateway();
    const result = await gateway.chat('target', { messages: user('hi') });
    expect(requests).toHaveLength(2);
    expect(sleeps).toEqual([0]);
    expect(result.choices).toEqual([{ content: 'hello', toolCalls: [] }]);
    // Both requests got a response; only the successful one reported tokens.
    expect(result.usage).toEqual({ calls: 2, promptTokens: 7, completionTokens: 3 });
    expect(requests[0]!.auth).toBe('Bearer sk-test');
    expect(requests[0]!.body).toMatchObject({ model: 'test-model', max_tokens: 256, messages: [{ role: 'user', content: 'hi' }] });
    expect(requests[0]!.body.max_completion_tokens).toBeUndefined();
  });

  it('uses exponential backoff with jitter when no Retry-After is given, then gives up with ModelCallError', async () => {
    script = () => ({ status: 500, body: { error: { message: 'boom' } } });
    const { gateway, sleeps } = makeGateway({ maxRetries: 3 });
    const error = await gateway.chat('judge', { messages: user('hi') }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    const e = error as ModelCallError;
    expect(requests).toHaveLength(4);
    expect(e.attempts).toBe(4);
    expect(e.status).toBe(500);
    expect(e.retryable).toBe(true);
    expect(e.role).toBe('judge');
    expect(e.message).toMatch(/judge/);
    expect(e.message).toMatch(/test-model/);
    expect(e.message).toMatch(/500/);
    expect(e.message).toMatch(/attempts=4/);
    expect(e.usage.calls).toBe(4);
    // random() = 0.5: half of 500, 1000, 2000 ms.
    expect(sleeps).toEqual([250, 500, 1000]);
  });

  it('does not retry a 400', async () => {
    script = () => ({ status: 400, body: { error: { message: 'bad request: unknown field' } } });
    const { gateway, sleeps } = makeGateway();
    const error = (await gateway.chat('target', { messages: user('hi') }).catch((e: unknown) => e)) as ModelCallError;
    expect(error).toBeInstanceOf(ModelCallError);
    expect(requests).toHaveLength(1);
    expect(error.attempts).toBe(1);
    expect(error.retryable).toBe(false);
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/unknown field/);
    expect(sleeps).toEqual([]);
  });

  it('retries a connection error (refused port) and reports no status', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const { gateway, sleeps } = makeGateway({ baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 1 });
    const error = (await gateway.chat('target', { messages: user('hi') }).catch((e: unknown) => e)) as ModelCallError;
    expect(error).toBeInstanceOf(ModelCallError);
    expect(error.status).toBeUndefined();
    expect(error.attempts).toBe(2);
    expect(error.retryable).toBe(true);
    expect(error.usage.calls).toBe(0);
    expect(sleeps).toHaveLength(1);
  });

  it('retries a request that timed out', async () => {
    script = (_b, i) => (i === 0 ? { ...ok(['late']), delayMs: 400 } : ok(['on time']));
    const { gateway, sleeps } = makeGateway({ timeoutMs: 100, maxRetries: 1 });
    const result = await gateway.chat('target', { messages: user('hi') });
    expect(result.choices[0]!.content).toBe('on time');
    expect(requests).toHaveLength(2);
    expect(sleeps).toHaveLength(1);
    expect(result.usage.calls).toBe(1); // the timed-out request got no response
  });

  it('falls back to single requests when the endpoint has no n', async () => {
    let k = 0;
    script = () => ok([`answer ${++k}`]);
    const { gateway } = makeGateway({ supportsN: false });
    const result = await gateway.chat('target', { messages: user('hi'), n: 3, seed: 7 });
    expect(requests).toHaveLength(3);
    for (const r of requests) expect(r.body.n === undefined || r.body.n === 1).toBe(true);
    expect(result.choices.map((c) => c.content).sort()).toEqual(['answer 1', 'answer 2', 'answer 3']);
    expect(result.usage).toEqual({ calls: 3, promptTokens: 30, completionTokens: 15 });
    // Each single request gets its own seed so seeded samples differ.
    expect(new Set(requests.map((r) => r.body.seed)).size).toBe(3);
  });

  it('tops up when the server returns fewer choices than n', async () => {
    script = (body) => (body.n === 3 ? ok(['a']) : ok(['more']));
    const { gateway } = makeGateway({ supportsN: true });
    const result = await gateway.chat('target', { messages: user('hi'), n: 3 });
    expect(requests[0]!.body.n).toBe(3);
    expect(requests).toHaveLength(3);
    expect(result.choices.map((c) => c.content)).toEqual(['a', 'more', 'more']);
  });

  it('keeps the top-up bounded when the server returns no choices', async () => {
    script = () => ok([]);
    const { gateway } = makeGateway({ supportsN: false });
    const error = await gateway.chat('target', { messages: user('hi'), n: 2 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelCallError);
    expect(requests).toHaveLength(3); // the first request + at most n extra
  });

  it('round-trips tool calls and tool results', async () => {
    script = () => ({
      status: 200,
      body: completion([null], { prompt_tokens: 4, completion_tokens: 2 }, [
        { id: 'call_1', type: 'function', function: { name: 'calculator', arguments: '{"expression":"1+1"}' } },
      ]),
    });
    const { gateway } = makeGateway();
    const result = await gateway.chat('judge', {
      messages: [
        { role: 'system', content: 'judge' },
        { role: 'user', content: [{ type: 'text', text: 'look' }, { type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } }] },
        { role: 'assistant', content: null, toolCalls: [{ id: 'call_0', name: 'reference', arguments: '{}' }] },
        { role: 'tool', toolCallId: 'call_0', content: '42' },
      ],
      tools: [{ name: 'calculator', description: 'math', parameters: { type: 'object', properties: {} } }],
    });
    expect(result.choices[0]).toEqual({
      content: null,
      toolCalls: [{ id: 'call_1', name: 'calculator', arguments: '{"expression":"1+1"}' }],
    });
    const body = requests[0]!.body;
    expect(body.tools).toEqual([
      { type: 'function', function: { name: 'calculator', description: 'math', parameters: { type: 'object', properties: {} } } },
    ]);
    expect(body.messages).toEqual([
      { role: 'system', content: 'judge' },
      {
        role: 'user',
        content: [
          { type: 'text', text: 'look' },
          { type: 'image_url', image_url: { url: 'data:image/png;base64,AA==' } },
        ],
      },
      {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: 'call_0', type: 'function', function: { name: 'reference', arguments: '{}' } }],
      },
      { role: 'tool', tool_call_id: 'call_0', content: '42' },
    ]);
  });

  it('sends response_format json_schema strict, temperature, seed', async () => {
    script = () => ok(['{"a":1}']);
    const { gateway } = makeGateway({ temperature: 0.9 });
    const schema = { type: 'object', properties: { a: { type: 'number' } }, required: ['a'], additionalProperties: false };
    await gateway.chat('reward', { messages: user('hi'), jsonSchema: { name: 'out', schema }, temperature: 0.2, seed: 3 });
    await gateway.chat('reward', { messages: user('hi') });
    expect(requests[0]!.body.response_format).toEqual({ type: 'json_schema', json_schema: { name: 'out', schema, strict: true } });
    expect(requests[0]!.body.temperature).toBe(0.2);
    expect(requests[0]!.body.seed).toBe(3);
    expect(requests[1]!.body.temperature).toBe(0.9);
    expect(requests[1]!.body.response_format).toBeUndefined();
    expect(requests[1]!.body.tools).toBeUndefined();
  });

  it("estimates usage when the server reports none, and sends 'no-key' without a key", async () => {
    script = () => ({ status: 200, body: completion(['12345678']) });
    const { gateway } = makeGateway({}, null);
    const result = await gateway.chat('target', { messages: user('abcdefghi') });
    expect(result.usage).toEqual({ calls: 1, promptTokens: 3, completionTokens: 2 });
    expect(requests[0]!.auth).toBe('Bearer no-key');
  });
});

describe('retry delays', () => {
  const h = (entries: Record<string, string>) => new Headers(entries);
  it('reads retry-after-ms, seconds and HTTP dates, capped at 60 s', () => {
    expect(retryAfterMs(h({ 'retry-after-ms': '1500' }))).toBe(1500);
    expect(retryAfterMs(h({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(h({ 'retry-after': '3600' }))).toBe(60_000);
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(retryAfterMs(h({ 'retry-after': 'Wed, 01 Jan 2025 00:00:05 GMT' }), now)).toBe(5000);
    expect(retryAfterMs(h({ 'retry-after': 'soon' }))).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
  it('caps exponential backoff at 20 s', () => {
    expect(backoffMs(0, () => 0.999)).toBeLessThan(500);
    expect(backoffMs(20, () => 0.999)).toBeLessThan(20_000);
    expect(backoffMs(20, () => 0.999)).toBeGreaterThan(19_000);
  });
});
