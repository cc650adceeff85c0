import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../../layers/core/src/config';
import { formatJson, httpTool } from '../../../layers/core/src/tools/http-tool';
import { ToolRegistry, type ToolServices } from '../../../layers/core/src/tools/registry';

const SECRET = 'sk-live-TOPSECRET-0123456789';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
}

let server: Server;
let base: string;
let port: number;
const seen: Seen[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      seen.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, body });
      const path = new URL(req.url ?? '/', 'http://x').pathname;
      switch (path) {
        case '/hang':
          return; // never answers
        case '/detect':
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ label: 'cat', confidence: 0.93, received: body ? JSON.parse(body) : null, boxes: Array.from({ length: 8 }, (_, i) => ({ x: i, y: i * 2, w: 10, h: 12 })) }));
          return;
        case '/echo-auth':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`you sent ${req.headers.authorization}`);
          return;
        case '/query':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(`query=${new URL(req.url ?? '/', 'http://x').search}`);
          return;
        case '/big':
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end('y'.repeat(500_000));
          return;
        case '/unavailable':
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end(`overloaded, try later; your key was ${req.headers.authorization} ${'z'.repeat(400)}`);
          return;
        default:
          res.writeHead(404);
          res.end('not found');
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
  base = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

const settings = (network: { allowHosts?: string[]; allowPrivateAddresses?: boolean } = { allowHosts: ['127.0.0.1'], allowPrivateAddresses: true }) =>
  parseRunConfig({ tools: { network } }).tools;

function services(over: Partial<ToolServices> = {}): ToolServices {
  return {
    blobs: undefined as never,
    buckets: { input: 'in', output: 'out' },
    secret: async (name) => (name === 'DETECTOR_KEY' ? SECRET : undefined),
    invokeLambda: async () => {
      throw new Error('not used');
    },
    fetch: globalThis.fetch,
    lookup: async (host) => {
      throw new Error(`unexpected DNS lookup of ${host}`);
    },
    ...over,
  };
}

const declare = (over: Record<string, unknown>) =>
  parseRunConfig({
    tools: {
      http: [
        {
          name: 'detector',
          description: 'Detects objects',
          parameters: { type: 'object', properties: { image: { type: 'string' }, k: { type: 'integer' } }, required: ['image'] },
          url: `${base}/detect`,
          auth: { header: 'Authorization', keyName: 'DETECTOR_KEY', prefix: 'Bearer ' },
          ...over,
        },
      ],
    },
  }).tools.http[0]!;

async function run(over: Record<string, unknown>, args: string, ctx: { settings?: ReturnType<typeof settings>; services?: ToolServices } = {}) {
  const registry = new ToolRegistry([httpTool(declare(over))]);
  return registry.run({ id: 'c1', name: 'detector', arguments: args }, { settings: settings(), services: services(), ...ctx }, 1);
}

describe('httpTool', () => {
  it('POSTs the arguments as JSON with the auth header and returns status and formatted JSON', async () => {
    const before = seen.length;
    const ev = await run({ headers: { 'X-Client': 'anyprefer' } }, '{"image":"s3://in/cat.png","k":3}');
    expect(ev.ok).toBe(true);
    const req = seen[before]!;
    expect(req.method).toBe('POST');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe(`Bearer ${SECRET}`);
    expect(req.headers['x-client']).toBe('anyprefer');
    expect(JSON.parse(req.body)).toEqual({ image: 's3://in/cat.png', k: 3 });
    expect(ev.output.startsWith('HTTP 200\n{\n')).toBe(true);
    expect(ev.output).toContain('"label": "cat"');
    expect(ev.output).toContain('"received": {"image":"s3://in/cat.png","k":3}');
    expect(ev.output).toContain('{"x":0,"y":0,"w":10,"h":12}');
    expect(JSON.stringify(ev)).not.toContain(SECRET);
  });

  it('sends GET arguments as the query string', async () => {
    const ev = await run({ url: `${base}/query?v=1`, method: 'GET', auth: undefined }, '{"image":"a b","k":2,"tags":["x","y"],"opt":{"z":true}}');
    expect(ev.ok).toBe(true);
    expect(ev.output).toBe('HTTP 200\nquery=?v=1&image=a+b&k=2&tags=x&tags=y&opt=%7B%22z%22%3Atrue%7D');
    expect(seen.at(-1)!.method).toBe('GET');
  });

  it('never puts the secret in the output, even when the server echoes it', async () => {
    const ev = await run({ url: `${base}/echo-auth` }, '{"image":"x"}');
    expect(ev.ok).toBe(true);
    expect(ev.output).toBe('HTTP 200\nyou sent Bearer [redacted]');
    expect(JSON.stringify(ev)).not.toContain(SECRET);
  });

  it('turns a non-2xx answer into an error quoting the first 200 characters, without the secret', async () => {
    const ev = await run({ url: `${base}/unavailable` }, '{"image":"x"}');
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(new RegExp(`^HTTP 503 from 127\\.0\\.0\\.1:${port}: overloaded, try later; your key was Bearer \\[redacted\\] z+$`));
    expect(ev.output.length).toBeLessThan(300);
    expect(JSON.stringify(ev)).not.toContain(SECRET);
  });

  it('times out against a server that never answers', async () => {
    const started = performance.now();
    const ev = await run({ url: `${base}/hang`, timeoutMs: 100 }, '{"image":"x"}');
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/timed out after 100 ms/);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('caps an oversize response and says so', async () => {
    const ev = await run({ url: `${base}/big`, maxOutputChars: 1_000 }, '{"image":"x"}');
    expect(ev.ok).toBe(true);
    expect(ev.output).toMatch(/^HTTP 200 \(response truncated: it is larger than 65536 bytes\)\ny+…\[truncated \d+ chars\]$/);
    expect(ev.output.length).toBeLessThanOrEqual(1_000);
  });

  it('rejects bad arguments before calling out', async () => {
    const before = seen.length;
    expect((await run({}, '{"k":1}')).output).toMatch(/missing required argument: image/);
    expect((await run({}, '{"image":"x","k":"three"}')).output).toMatch(/"k" must be integer/);
    expect((await run({}, '{"image":')).output).toMatch(/not valid JSON/);
    expect(seen.length).toBe(before);
  });

  it('refuses loopback without allowPrivateAddresses', async () => {
    const before = seen.length;
    const ev = await run({}, '{"image":"x"}', { settings: settings({ allowHosts: ['127.0.0.1'] }) });
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/refused to connect to 127\.0\.0\.1.*loopback/);
    expect(seen.length).toBe(before);
  });

  it('refuses the metadata address even when allowlisted', async () => {
    const ev = await run({ url: 'http://169.254.169.254/latest/meta-data/' }, '{"image":"x"}', {
      settings: settings({ allowHosts: ['169.254.169.254'] }),
    });
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/169\.254\.169\.254.*metadata/);
  });

  it('refuses a host name that resolves to a private address', async () => {
    const ev = await run({ url: 'https://detector.example.test/v1' }, '{"image":"x"}', {
      settings: settings({ allowHosts: ['detector.example.test'] }),
      services: services({ lookup: async () => ['10.0.0.5'] }),
    });
    expect(ev.output).toMatch(/detector\.example\.test \(resolves to 10\.0\.0\.5\).*private/);
  });

  it('refuses a redirect to the metadata address', async () => {
    const stubFetch: typeof fetch = async () =>
      new Response(null, { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/iam/security-credentials/' } });
    const ev = await run({ url: 'https://tools.example.test/detect' }, '{"image":"x"}', {
      settings: settings({ allowHosts: ['tools.example.test'] }),
      services: services({ fetch: stubFetch, lookup: async () => ['93.184.216.34'] }),
    });
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/redirect from tools\.example\.test to 169\.254\.169\.254 was refused.*metadata/);
  });

  it('reaches nothing when the run has no network settings', async () => {
    const ev = await run({ url: 'https://detector.example.test/v1' }, '{"image":"x"}', { settings: undefined });
    expect(ev.output).toMatch(/allowHosts is empty/);
  });

  it('fails clearly when the secret is not set, naming only the key', async () => {
    const ev = await run({ auth: { header: 'X-Api-Key', keyName: 'MISSING_KEY' } }, '{"image":"x"}');
    expect(ev).toMatchObject({ ok: false, output: 'the secret "MISSING_KEY" for tool detector is not set' });
  });

  it('does not leak a secret that is not a valid header value', async () => {
    const ev = await run({}, '{"image":"x"}', { services: services({ secret: async () => `line1\n${SECRET}` }) });
    expect(ev).toMatchObject({ ok: false, output: 'the secret "DETECTOR_KEY" for tool detector is not a valid value for header Authorization' });
    expect(JSON.stringify(ev)).not.toContain(SECRET);
  });

  it('fails clearly without tool services', async () => {
    const ev = await run({}, '{"image":"x"}', { services: undefined });
    expect(ev.output).toMatch(/no tool services/);
  });
});

describe('formatJson', () => {
  it('keeps short values on one line and breaks long ones', () => {
    expect(formatJson({ a: 1, b: [1, 2] })).toBe('{"a":1,"b":[1,2]}');
    const long = formatJson({ items: Array.from({ length: 30 }, (_, i) => ({ id: i })), note: 'x' });
    expect(long.split('\n')[0]).toBe('{');
    expect(long).toContain('  "items": [\n    {"id":0},');
    expect(JSON.parse(long)).toEqual({ items: Array.from({ length: 30 }, (_, i) => ({ id: i })), note: 'x' });
  });
});
