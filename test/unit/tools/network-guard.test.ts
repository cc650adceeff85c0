import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  checkUrl,
  classifyAddress,
  guardedFetch,
  hostAllowed,
  NetworkGuardError,
  type Lookup,
  type NetworkRules,
} from '../../../layers/core/src/tools/network-guard';

const noDns: Lookup = async (host) => {
  throw new Error(`unexpected DNS lookup of ${host}`);
};
const dnsOf =
  (table: Record<string, string[]>): Lookup =>
  async (host) => {
    const found = table[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };

const strict = (allowHosts: string[]): NetworkRules => ({ allowHosts, allowPrivateAddresses: false });
const local = (allowHosts: string[]): NetworkRules => ({ allowHosts, allowPrivateAddresses: true });

async function refusal(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(NetworkGuardError);
    return (error as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('classifyAddress', () => {
  it.each([
    ['127.0.0.1', /loopback/],
    ['127.255.0.9', /loopback/],
    ['10.1.2.3', /private.*10\.0\.0\.0\/8/],
    ['172.16.0.1', /private.*172\.16/],
    ['172.31.255.255', /private/],
    ['192.168.1.1', /private.*192\.168/],
    ['169.254.169.254', /metadata address 169\.254\.169\.254/],
    ['169.254.1.1', /link-local/],
    ['0.0.0.0', /unspecified/],
    ['0.1.2.3', /unspecified/],
    ['100.64.0.1', /carrier-grade NAT/],
    ['100.127.255.255', /carrier-grade NAT/],
    ['224.0.0.1', /multicast/],
    ['239.255.255.250', /multicast/],
    ['255.255.255.255', /broadcast/],
    ['240.0.0.1', /reserved/],
    ['::1', /loopback/],
    ['::', /unspecified/],
    ['0:0:0:0:0:0:0:1', /loopback/],
    ['fc00::1', /unique-local/],
    ['fd12:3456::1', /unique-local/],
    ['fe80::1', /link-local/],
    ['fe80::1%eth0', /link-local/],
    ['febf::1', /link-local/],
    ['ff02::1', /multicast/],
    ['::ffff:169.254.169.254', /metadata address 169\.254\.169\.254.*IPv4-mapped/],
    ['::ffff:a9fe:a9fe', /metadata address/],
    ['::ffff:127.0.0.1', /loopback.*IPv4-mapped/],
    ['::127.0.0.1', /loopback.*IPv4-compatible/],
    ['64:ff9b::a9fe:a9fe', /metadata.*NAT64/],
    ['2002:0a00:0001::1', /private.*6to4/],
    ['fd00:ec2::254', /metadata address fd00:ec2::254/],
    ['not-an-ip', /not an IP address/],
    ['1.2.3', /not an IP address/],
    ['1:2:3:4:5:6:7:8:9', /not an IP address/],
  ])('refuses %s', (address, reason) => {
    expect(classifyAddress(address)).toMatch(reason);
  });

  it.each(['8.8.8.8', '93.184.216.34', '172.32.0.1', '100.128.0.1', '169.253.1.1', '2606:4700:4700::1111', '::ffff:8.8.8.8', '2002:0808:0808::1'])(
    'accepts public %s',
    (address) => {
      expect(classifyAddress(address)).toBeUndefined();
    },
  );
});

describe('hostAllowed', () => {
  it('matches exact names and *.suffix wildcards, case- and trailing-dot-insensitive', () => {
    const allow = ['api.example.com', '*.tools.example.org', '127.0.0.1', '::1'];
    expect(hostAllowed('api.example.com', allow)).toBe(true);
    expect(hostAllowed('API.Example.COM.', allow)).toBe(true);
    expect(hostAllowed('example.com', allow)).toBe(false);
    expect(hostAllowed('evil-api.example.com', allow)).toBe(false);
    expect(hostAllowed('a.tools.example.org', allow)).toBe(true);
    expect(hostAllowed('a.b.tools.example.org', allow)).toBe(true);
    expect(hostAllowed('tools.example.org', allow)).toBe(false);
    expect(hostAllowed('eviltools.example.org', allow)).toBe(false);
    expect(hostAllowed('127.0.0.1', allow)).toBe(true);
    expect(hostAllowed('[::1]', allow)).toBe(true);
    expect(hostAllowed('[0:0:0:0:0:0:0:1]', allow)).toBe(true);
  });
});

describe('checkUrl', () => {
  it('accepts an allowlisted https host whose every address is public', async () => {
    const url = await checkUrl('https://api.example.com/v1?x=1', strict(['api.example.com']), dnsOf({ 'api.example.com': ['93.184.216.34', '2606:2800:220:1::1'] }));
    expect(url.href).toBe('https://api.example.com/v1?x=1');
  });

  it('refuses everything when the allowlist is empty, and says so', async () => {
    const message = await refusal(checkUrl('https://api.example.com/', strict([]), noDns));
    expect(message).toMatch(/allowHosts is empty/);
    expect(message).toMatch(/add "api\.example\.com"/);
  });

  it('refuses a host that is not on the allowlist', async () => {
    expect(await refusal(checkUrl('https://other.example.com/', strict(['api.example.com']), noDns))).toMatch(
      /not in tools\.network\.allowHosts/,
    );
  });

  it('refuses plain http unless private addresses are allowed, and non-web schemes always', async () => {
    const dns = dnsOf({ 'api.example.com': ['93.184.216.34'] });
    expect(await refusal(checkUrl('http://api.example.com/', strict(['api.example.com']), dns))).toMatch(/only https/);
    await expect(checkUrl('http://api.example.com/', local(['api.example.com']), dns)).resolves.toBeInstanceOf(URL);
    expect(await refusal(checkUrl('file:///etc/passwd', local(['*']), dns))).toMatch(/without a host|only https/);
    expect(await refusal(checkUrl('ftp://api.example.com/', local(['api.example.com']), dns))).toMatch(/only https/);
    expect(await refusal(checkUrl('not a url', local(['x']), dns))).toMatch(/not a valid URL/);
  });

  it('refuses the instance metadata address even when it is allowlisted, naming it', async () => {
    for (const url of ['http://169.254.169.254/latest/meta-data/', 'https://169.254.169.254/latest/meta-data/iam/']) {
      const message = await refusal(checkUrl(url, strict(['169.254.169.254']), noDns));
      expect(message).toMatch(/169\.254\.169\.254/);
      expect(message).toMatch(/metadata/);
    }
    // …and allows it only for local testing
    await expect(checkUrl('http://169.254.169.254/latest/meta-data/', local(['169.254.169.254']), noDns)).resolves.toBeInstanceOf(URL);
  });

  it.each([
    ['http://127.0.0.1:8080/', /loopback/],
    ['https://127.0.0.1/', /loopback/],
    ['http://[::1]/', /loopback/],
    ['http://[::ffff:169.254.169.254]/', /metadata address 169\.254\.169\.254/],
    ['http://[::ffff:127.0.0.1]/', /loopback/],
    ['http://2852039166/', /metadata address 169\.254\.169\.254/],
    ['http://0xa9fea9fe/', /metadata/],
    ['http://0251.0376.0251.0376/', /metadata/],
    ['http://0x7f000001/', /loopback/],
    ['http://0x7f.1/', /loopback/],
    ['http://127.1/', /loopback/],
    ['http://017700000001/', /loopback/],
    ['http://0/', /unspecified/],
    ['http://[fe80::1]/', /link-local/],
    ['http://[fd00:ec2::254]/', /metadata/],
    ['http://10.0.0.5/', /private/],
    ['http://100.64.1.1/', /carrier-grade/],
    ['http://255.255.255.255/', /broadcast/],
    ['http://224.0.0.251/', /multicast/],
  ])('refuses the literal address in %s even when allowlisted', async (url, reason) => {
    const host = new URL(url).hostname;
    const message = await refusal(checkUrl(url, strict([host, host.replace(/^\[|\]$/g, '')]), noDns));
    expect(message).toMatch(reason);
    expect(message).toMatch(/not a public address/);
  });

  it('refuses a host name that resolves to a private address', async () => {
    const message = await refusal(checkUrl('https://intranet.example.test/', strict(['intranet.example.test']), dnsOf({ 'intranet.example.test': ['10.0.0.5'] })));
    expect(message).toMatch(/intranet\.example\.test \(resolves to 10\.0\.0\.5\)/);
    expect(message).toMatch(/private/);
  });

  it('refuses when any one of the resolved addresses is private', async () => {
    const dns = dnsOf({ 'mixed.example.test': ['93.184.216.34', '::ffff:169.254.169.254'] });
    expect(await refusal(checkUrl('https://mixed.example.test/', strict(['*.example.test']), dns))).toMatch(/metadata/);
  });

  it('refuses a host that does not resolve', async () => {
    const message = await refusal(checkUrl('https://nowhere.example.test/', strict(['nowhere.example.test']), dnsOf({})));
    expect(message).toMatch(/could not resolve nowhere\.example\.test: ENOTFOUND/);
    expect(await refusal(checkUrl('https://empty.example.test/', strict(['empty.example.test']), dnsOf({ 'empty.example.test': [] })))).toMatch(
      /no addresses/,
    );
  });

  it('skips DNS for a public literal address and for local testing', async () => {
    await expect(checkUrl('https://8.8.8.8/', strict(['8.8.8.8']), noDns)).resolves.toBeInstanceOf(URL);
    await expect(checkUrl('http://localhost:1/', local(['localhost']), noDns)).resolves.toBeInstanceOf(URL);
  });
});

// ---------- guardedFetch against loopback ----------

type Handler = Parameters<typeof createServer>[1];

async function listen(handler: NonNullable<Handler>): Promise<{ server: Server; base: string }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, base: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
}

async function close(server: Server): Promise<void> {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

describe('guardedFetch', () => {
  let server: Server;
  let base: string;
  const seen: { url: string; headers: Record<string, unknown> }[] = [];

  beforeAll(async () => {
    ({ server, base } = await listen((req, res) => {
      seen.push({ url: req.url ?? '', headers: req.headers });
      const url = new URL(req.url ?? '/', 'http://x');
      if (url.pathname === '/hang') return; // never answers
      if (url.pathname === '/big') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('x'.repeat(200_000));
        return;
      }
      if (url.pathname === '/accents') {
        res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
        res.end('é'.repeat(100));
        return;
      }
      if (url.pathname === '/chain') {
        const n = Number(url.searchParams.get('n'));
        if (n > 0) {
          res.writeHead(302, { location: `/chain?n=${n - 1}` });
          res.end();
          return;
        }
        res.end('arrived');
        return;
      }
      if (url.pathname === '/to-metadata') {
        res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' });
        res.end();
        return;
      }
      if (url.pathname === '/to-elsewhere') {
        res.writeHead(307, { location: 'http://elsewhere.example.test/' });
        res.end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ ok: true }));
    }));
  });
  afterAll(() => close(server));

  const services = { fetch: globalThis.fetch, lookup: noDns };

  it('fetches an allowed loopback URL in local-testing mode', async () => {
    const res = await guardedFetch(`${base}/ok`, {}, local(['127.0.0.1']), services);
    expect(res).toMatchObject({ status: 200, body: '{"ok":true}', truncated: false, bytes: 11 });
  });

  it('refuses loopback without allowPrivateAddresses, before any request', async () => {
    const before = seen.length;
    expect(await refusal(guardedFetch(`${base}/ok`, {}, strict(['127.0.0.1']), services))).toMatch(/loopback/);
    expect(seen.length).toBe(before);
  });

  it('stops reading at the byte cap and reports truncation', async () => {
    const res = await guardedFetch(`${base}/big`, {}, local(['127.0.0.1']), services, { maxBytes: 1000 });
    expect(res.truncated).toBe(true);
    expect(res.bytes).toBe(1000);
    expect(res.body).toBe('x'.repeat(1000));
  });

  it('does not split a character at the byte cap', async () => {
    const res = await guardedFetch(`${base}/accents`, {}, local(['127.0.0.1']), services, { maxBytes: 11 });
    expect(res.truncated).toBe(true);
    expect(res.body).toBe('é'.repeat(5));
  });

  it('follows up to 3 redirects and refuses a 4th', async () => {
    const ok = await guardedFetch(`${base}/chain?n=3`, {}, local(['127.0.0.1']), services);
    expect(ok.body).toBe('arrived');
    expect(ok.url.search).toBe('?n=0');
    expect(await refusal(guardedFetch(`${base}/chain?n=4`, {}, local(['127.0.0.1']), services))).toMatch(/too many redirects/);
  });

  it('checks every redirect target against the allowlist', async () => {
    const message = await refusal(guardedFetch(`${base}/to-elsewhere`, {}, local(['127.0.0.1']), services));
    expect(message).toMatch(/redirect from 127\.0\.0\.1:\d+ to elsewhere\.example\.test was refused/);
    expect(message).toMatch(/not in tools\.network\.allowHosts/);
  });

  it('refuses a redirect from an allowed host to the metadata address', async () => {
    // The first hop is a public host (injected DNS) that the stub fetch answers with a 302.
    const requested: string[] = [];
    const stubFetch: typeof fetch = async (input) => {
      requested.push(String(input));
      return new Response('moved', { status: 302, headers: { location: 'http://169.254.169.254/latest/meta-data/' } });
    };
    const message = await refusal(
      guardedFetch(
        'https://tools.example.test/detect',
        {},
        strict(['tools.example.test', '169.254.169.254']),
        { fetch: stubFetch, lookup: dnsOf({ 'tools.example.test': ['93.184.216.34'] }) },
      ),
    );
    expect(requested).toEqual(['https://tools.example.test/detect']);
    expect(message).toMatch(/redirect from tools\.example\.test to 169\.254\.169\.254 was refused/);
    expect(message).toMatch(/metadata/);
  });

  it('refuses a loopback redirect to the metadata address when only the stub is allowed', async () => {
    // allowPrivateAddresses is needed to reach the loopback stub, so here the redirect fails the allowlist.
    expect(await refusal(guardedFetch(`${base}/to-metadata`, {}, local(['127.0.0.1']), services))).toMatch(/169\.254\.169\.254/);
  });

  it('drops credentials when a redirect leaves the origin', async () => {
    const calls: { url: string; headers: Headers; method?: string; body?: unknown }[] = [];
    const stubFetch: typeof fetch = async (input, init) => {
      calls.push({ url: String(input), headers: new Headers(init?.headers), method: init?.method, body: init?.body });
      if (calls.length === 1) return new Response(null, { status: 302, headers: { location: 'https://b.example.test/next' } });
      return new Response('done');
    };
    const res = await guardedFetch(
      'https://a.example.test/start',
      { method: 'POST', body: '{"x":1}', headers: { authorization: 'Bearer k', 'x-key': 'v', 'content-type': 'application/json', 'x-plain': '1' } },
      strict(['*.example.test']),
      { fetch: stubFetch, lookup: async () => ['93.184.216.34'] },
      { sensitiveHeaders: ['X-Key'] },
    );
    expect(res.body).toBe('done');
    expect(calls[0]!.headers.get('authorization')).toBe('Bearer k');
    expect(calls[1]!.headers.get('authorization')).toBeNull();
    expect(calls[1]!.headers.get('x-key')).toBeNull();
    expect(calls[1]!.headers.get('x-plain')).toBe('1');
    // a 302 after POST continues as GET without the body
    expect(calls[1]!.method).toBe('GET');
    expect(calls[1]!.body).toBeUndefined();
  });

  it('gives up at the caller signal when the server never answers', async () => {
    const started = performance.now();
    const error = await guardedFetch(`${base}/hang`, { signal: AbortSignal.timeout(100) }, local(['127.0.0.1']), services).catch((e: unknown) => e);
    expect((error as Error).name).toBe('TimeoutError');
    expect(performance.now() - started).toBeLessThan(5_000);
  });

  it('names the host when the connection fails', async () => {
    const { server: gone, base: goneBase } = await listen(() => {});
    await close(gone);
    const error = (await guardedFetch(goneBase, {}, local(['127.0.0.1']), services).catch((e: unknown) => e)) as Error;
    expect(error.message).toMatch(/request to 127\.0\.0\.1:\d+ failed: ECONNREFUSED/);
  });
});
