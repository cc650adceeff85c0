import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../../layers/core/src/config';
import { ToolRegistry, type Tool, type ToolServices } from '../../../layers/core/src/tools/registry';
import { createWebSearchTool, isWebSearchConfigured, webSearchTool } from '../../../layers/core/src/tools/web-search';

const KEY = 'BSA-search-key-9f8e7d6c5b4a';

let server: Server;
let base: string;
const seen: { method: string; url: string; headers: IncomingMessage['headers']; body: string }[] = [];
let mode: 'ok' | 'empty' | 'unauthorized' | 'hang' = 'ok';

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      if (mode === 'hang') return;
      if (mode === 'unauthorized') {
        res.writeHead(401, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ error: `invalid token ${req.headers['x-subscription-token'] ?? req.headers.authorization}` }));
        return;
      }
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      res.writeHead(200, { 'content-type': 'application/json' });
      if (path === '/res/v1/web/search') {
        res.end(
          JSON.stringify({
            web: {
              results:
                mode === 'empty'
                  ? []
                  : [
                      { title: 'Marie Curie - Wikipedia', url: 'https://en.wikipedia.org/wiki/Marie_Curie', description: 'Marie <strong>Curie</strong> won two Nobel Prizes &amp; more.' },
                      { title: 'Nobel Prize facts', url: 'https://www.nobelprize.org/facts', description: 'Facts about the prizes.' },
                    ],
            },
          }),
        );
      } else if (path === '/search') {
        res.end(
          JSON.stringify({
            results: mode === 'empty' ? [] : [{ title: 'Curie (Tavily)', url: 'https://example.org/curie', content: 'Physicist and chemist.', score: 0.9 }],
          }),
        );
      } else {
        res.end('{}');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const services: ToolServices = {
  blobs: undefined as never,
  buckets: { input: 'in', output: 'out' },
  secret: async (name) => (name === 'SEARCH_API_KEY' ? KEY : undefined),
  invokeLambda: async () => {
    throw new Error('not used');
  },
  fetch: globalThis.fetch,
  lookup: async (host) => {
    throw new Error(`unexpected DNS lookup of ${host}`);
  },
};

const LOOPBACK = { allowHosts: ['127.0.0.1'], allowPrivateAddresses: true };

function settingsFor(provider: 'brave' | 'tavily', over: Record<string, unknown> = {}, network: Record<string, unknown> = LOOPBACK) {
  return parseRunConfig({ tools: { webSearch: { provider, baseURL: base, maxResults: 3, ...over }, network } }).tools;
}

async function run(settings: ReturnType<typeof settingsFor> | undefined, args: string, tool: Tool = webSearchTool) {
  return new ToolRegistry([tool]).run({ id: 'c', name: 'web_search', arguments: args }, { settings, services }, 1);
}

describe('web_search', () => {
  it('searches Brave with the subscription token and formats numbered results', async () => {
    mode = 'ok';
    const before = seen.length;
    const ev = await run(settingsFor('brave'), '{"query":"Marie Curie Nobel"}');
    expect(ev.ok).toBe(true);
    const req = seen[before]!;
    expect(req.method).toBe('GET');
    expect(req.headers['x-subscription-token']).toBe(KEY);
    const url = new URL(req.url, 'http://x');
    expect(url.pathname).toBe('/res/v1/web/search');
    expect(url.searchParams.get('q')).toBe('Marie Curie Nobel');
    expect(url.searchParams.get('count')).toBe('3');
    expect(ev.output).toBe(
      '1. Marie Curie - Wikipedia\n   https://en.wikipedia.org/wiki/Marie_Curie\n   Marie Curie won two Nobel Prizes & more.\n\n' +
        '2. Nobel Prize facts\n   https://www.nobelprize.org/facts\n   Facts about the prizes.',
    );
    expect(JSON.stringify(ev)).not.toContain(KEY);
  });

  it('searches Tavily with a Bearer key and a JSON body', async () => {
    mode = 'ok';
    const before = seen.length;
    const ev = await run(settingsFor('tavily'), '{"query":"Curie"}');
    expect(ev.ok).toBe(true);
    const req = seen[before]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/search');
    expect(req.headers.authorization).toBe(`Bearer ${KEY}`);
    expect(req.headers['content-type']).toBe('application/json');
    expect(JSON.parse(req.body)).toEqual({ query: 'Curie', max_results: 3 });
    expect(ev.output).toBe('1. Curie (Tavily)\n   https://example.org/curie\n   Physicist and chemist.');
    expect(JSON.stringify(ev)).not.toContain(KEY);
  });

  it('says when there are no results', async () => {
    mode = 'empty';
    const ev = await run(settingsFor('brave'), '{"query":"zzqx"}');
    expect(ev).toMatchObject({ ok: true, output: 'no web results for "zzqx"' });
  });

  it('turns a provider error into a tool error without the key', async () => {
    mode = 'unauthorized';
    for (const provider of ['brave', 'tavily'] as const) {
      const ev = await run(settingsFor(provider), '{"query":"x"}');
      expect(ev.ok).toBe(false);
      expect(ev.output).toMatch(new RegExp(`^${provider} search failed: HTTP 401 from 127\\.0\\.0\\.1:\\d+: .*invalid token .*\\[redacted\\]`));
      expect(JSON.stringify(ev)).not.toContain(KEY);
    }
  });

  it('times out against a provider that never answers', async () => {
    mode = 'hang';
    const started = performance.now();
    const ev = await run(settingsFor('brave'), '{"query":"x"}', createWebSearchTool({ timeoutMs: 100 }));
    expect(ev).toMatchObject({ ok: false, output: 'brave search timed out after 100 ms' });
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('is an error when not configured, and not offered', async () => {
    const settings = parseRunConfig({}).tools;
    expect(isWebSearchConfigured(settings)).toBe(false);
    expect(isWebSearchConfigured(undefined)).toBe(false);
    expect(isWebSearchConfigured(settingsFor('brave'))).toBe(true);
    const ev = await run(settings, '{"query":"x"}');
    expect(ev).toMatchObject({ ok: false });
    expect(ev.output).toMatch(/^web_search is not configured/);
  });

  it('puts the provider host behind the network guard', async () => {
    mode = 'ok';
    const before = seen.length;
    const notListed = await run(settingsFor('brave', {}, { allowHosts: ['api.search.brave.com'], allowPrivateAddresses: true }), '{"query":"x"}');
    expect(notListed.output).toMatch(/refused 127\.0\.0\.1: the host is not in tools\.network\.allowHosts/);
    const loopback = await run(settingsFor('tavily', {}, { allowHosts: ['127.0.0.1'] }), '{"query":"x"}');
    expect(loopback.output).toMatch(/loopback/);
    const defaults = await run(settingsFor('brave', { baseURL: undefined }, {}), '{"query":"x"}');
    expect(defaults.output).toMatch(/refused api\.search\.brave\.com: tools\.network\.allowHosts is empty/);
    expect(seen.length).toBe(before);
  });

  it('rejects bad arguments and a missing key', async () => {
    expect((await run(settingsFor('brave'), '{}')).output).toMatch(/missing required argument: query/);
    expect((await run(settingsFor('brave'), '{"query":"  "}')).output).toMatch(/non-empty/);
    expect((await run(settingsFor('brave', { apiKeyName: 'NOPE' }), '{"query":"x"}')).output).toBe('web_search: the API key "NOPE" is not set');
  });
});
