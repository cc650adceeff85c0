// Outbound network rules for tools that reach other hosts (`http` tools, `web_search`).
//
// A URL may be fetched only when
//   - its scheme is https (plain http only with `allowPrivateAddresses`, which exists for local testing),
//   - its host is on `tools.network.allowHosts` (exact name, or `*.example.com` for any subdomain),
//   - every address it resolves to is public: loopback, private, link-local (the cloud instance
//     metadata address 169.254.169.254 above all), unspecified, CGNAT, multicast, broadcast and
//     reserved ranges are refused, unless `allowPrivateAddresses`.
// Redirects are followed by hand (at most MAX_REDIRECTS) and every target is checked again.
//
// Limitation (DNS rebinding): we resolve the host name and check the addresses *before* the request,
// then `fetch` resolves the name again when it connects. A hostile DNS server answering with a public
// address first and a private one a moment later (short TTL) can slip past this check. Literal IP
// hosts, wrong schemes, hosts off the allowlist and redirects to refused targets are all caught; the
// rebinding window is only open to a host the user allowlisted whose DNS turns hostile. The full fix is
// an HTTP agent that connects to the exact address we checked (a pinned-address `lookup` in an
// undici Agent); the allowlist is the control that matters until then.
import type { ToolServices } from './registry';

export interface NetworkRules {
  allowHosts: string[];
  allowPrivateAddresses: boolean;
}

/** All addresses of a host name (the `lookup` of ToolServices). */
export type Lookup = (hostname: string) => Promise<string[]>;

export class NetworkGuardError extends Error {
  override name = 'NetworkGuardError';
}

export const MAX_REDIRECTS = 3;
/** Body bytes kept when the caller sets no cap. */
export const DEFAULT_MAX_BYTES = 1024 * 1024;
/** Headers dropped when a redirect leaves the origin (the fetch standard drops Authorization too). */
const DEFAULT_SENSITIVE_HEADERS = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-subscription-token'];

// ---------- addresses ----------

/** Strict dotted-quad IPv4 (what URL parsing and DNS produce) as four bytes. */
function parseIPv4(text: string): number[] | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  const bytes: number[] = [];
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    bytes.push(n);
  }
  return bytes;
}

/** IPv6 (brackets, `::`, an embedded dotted quad and a `%zone` allowed) as eight 16-bit groups. */
function parseIPv6(text: string): number[] | undefined {
  let s = text.trim();
  if (s.startsWith('[') && s.endsWith(']')) s = s.slice(1, -1);
  const zone = s.indexOf('%');
  if (zone >= 0) s = s.slice(0, zone);
  if (!s.includes(':')) return undefined;
  const lastColon = s.lastIndexOf(':');
  const last = s.slice(lastColon + 1);
  if (last.includes('.')) {
    const v4 = parseIPv4(last);
    if (!v4) return undefined;
    s = `${s.slice(0, lastColon + 1)}${((v4[0]! << 8) | v4[1]!).toString(16)}:${((v4[2]! << 8) | v4[3]!).toString(16)}`;
  }
  const halves = s.split('::');
  if (halves.length > 2) return undefined;
  const groups = (part: string | undefined): number[] | undefined => {
    if (part === undefined || part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!/^[0-9a-fA-F]{1,4}$/.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  if (!head || !tail) return undefined;
  if (halves.length === 1) return head.length === 8 ? head : undefined;
  if (head.length + tail.length > 7) return undefined;
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
}

const METADATA_V4 = '169.254.169.254';

function classifyIPv4(bytes: number[]): string | undefined {
  const [a = 0, b = 0, c = 0, d = 0] = bytes;
  if (a === 169 && b === 254 && c === 169 && d === 254) return `the cloud instance metadata address ${METADATA_V4} (link-local)`;
  if (a === 0) return 'an unspecified / "this network" address (0.0.0.0/8)';
  if (a === 10) return 'a private address (10.0.0.0/8)';
  if (a === 100 && b >= 64 && b <= 127) return 'a carrier-grade NAT address (100.64.0.0/10)';
  if (a === 127) return 'a loopback address (127.0.0.0/8)';
  if (a === 169 && b === 254) return 'a link-local address (169.254.0.0/16)';
  if (a === 172 && b >= 16 && b <= 31) return 'a private address (172.16.0.0/12)';
  if (a === 192 && b === 0 && c === 0) return 'an IETF protocol assignment address (192.0.0.0/24)';
  if (a === 192 && b === 0 && c === 2) return 'a documentation address (192.0.2.0/24)';
  if (a === 192 && b === 168) return 'a private address (192.168.0.0/16)';
  if (a === 198 && (b === 18 || b === 19)) return 'a benchmarking address (198.18.0.0/15)';
  if (a === 198 && b === 51 && c === 100) return 'a documentation address (198.51.100.0/24)';
  if (a === 203 && b === 0 && c === 113) return 'a documentation address (203.0.113.0/24)';
  if (a >= 224 && a <= 239) return 'a multicast address (224.0.0.0/4)';
  if (a === 255 && b === 255 && c === 255 && d === 255) return 'the broadcast address (255.255.255.255)';
  if (a >= 240) return 'a reserved address (240.0.0.0/4)';
  return undefined;
}

function embeddedIPv4(hi: number, lo: number, what: string): string | undefined {
  const reason = classifyIPv4([hi >> 8, hi & 0xff, lo >> 8, lo & 0xff]);
  return reason && `${reason} in ${what}`;
}

function classifyIPv6(g: number[]): string | undefined {
  const zero = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zero(0, 8)) return 'the unspecified address (::)';
  if (zero(0, 7) && g[7] === 1) return 'the loopback address (::1)';
  if (zero(0, 5) && g[5] === 0xffff) return embeddedIPv4(g[6]!, g[7]!, 'IPv4-mapped IPv6 form');
  if (zero(0, 6)) return embeddedIPv4(g[6]!, g[7]!, 'IPv4-compatible form') ?? 'an IPv4-compatible address (deprecated, ::/96)';
  if (g[0] === 0x64 && g[1] === 0xff9b && zero(2, 6)) return embeddedIPv4(g[6]!, g[7]!, 'NAT64 form');
  if (g[0] === 0x64 && g[1] === 0xff9b && g[2] === 1) return 'a local-use NAT64 address (64:ff9b:1::/48)';
  if (g[0] === 0x2002) return embeddedIPv4(g[1]!, g[2]!, '6to4 form');
  if (g[0] === 0x2001 && g[1] === 0) return embeddedIPv4(g[6]! ^ 0xffff, g[7]! ^ 0xffff, 'Teredo form');
  if (g[0] === 0x2001 && g[1] === 0xdb8) return 'a documentation address (2001:db8::/32)';
  if (g[0] === 0x100 && zero(1, 4)) return 'a discard-only address (100::/64)';
  if (g[0] === 0xfd00 && g[1] === 0xec2 && zero(2, 7) && g[7] === 0x254) return 'the cloud instance metadata address fd00:ec2::254 (IPv6)';
  if ((g[0]! & 0xfe00) === 0xfc00) return 'a unique-local (private) address (fc00::/7)';
  if ((g[0]! & 0xffc0) === 0xfe80) return 'a link-local address (fe80::/10)';
  if ((g[0]! & 0xffc0) === 0xfec0) return 'a site-local address (deprecated, fec0::/10)';
  if ((g[0]! & 0xff00) === 0xff00) return 'a multicast address (ff00::/8)';
  return undefined;
}

/** Whether `text` is an IP address literal (IPv4 dotted quad or IPv6, brackets allowed). */
export function isIpLiteral(text: string): boolean {
  return parseIPv4(text) !== undefined || parseIPv6(text) !== undefined;
}

/**
 * Why an address may not be reached by default (`'a loopback address (127.0.0.0/8)'`, …), or `undefined` for a
 * public address. Text that is not an IP address is refused too.
 */
export function classifyAddress(address: string): string | undefined {
  const v4 = parseIPv4(address.trim());
  if (v4) return classifyIPv4(v4);
  const v6 = parseIPv6(address);
  if (v6) return classifyIPv6(v6);
  return 'not an IP address';
}

// ---------- hosts ----------

/** A host name or IP literal as URL parsing gives it (lower case, punycode, canonical IP), no brackets or trailing dot. */
function normalizeHost(host: string): string {
  let h = host.trim().toLowerCase();
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  try {
    h = new URL(`http://${h.includes(':') ? `[${h}]` : h}/`).hostname;
  } catch {
    // not a valid host: compared as written (it matches nothing a URL can hold)
  }
  if (h.startsWith('[') && h.endsWith(']')) h = h.slice(1, -1);
  if (h.endsWith('.')) h = h.slice(0, -1);
  return h;
}

/** Whether `hostname` (from a parsed URL) is on the allowlist: exact, or `*.suffix` for any subdomain. */
export function hostAllowed(hostname: string, allowHosts: readonly string[]): boolean {
  const host = normalizeHost(hostname);
  return allowHosts.some((entry) => {
    const e = entry.trim().toLowerCase();
    if (e.startsWith('*.')) return host.endsWith(`.${normalizeHost(e.slice(2))}`);
    return normalizeHost(e) === host;
  });
}

function refusal(host: string, address: string | undefined, reason: string): NetworkGuardError {
  const where = address === undefined || address === host ? host : `${host} (resolves to ${address})`;
  const metadata = reason.includes('metadata address')
    ? ' Instance metadata hands out cloud credentials; tools must never reach it.'
    : '';
  return new NetworkGuardError(
    `refused to connect to ${where}: it is ${reason}, not a public address.${metadata} ` +
      'Tools may only reach public addresses (tools.network.allowPrivateAddresses lifts this, for local testing only).',
  );
}

/**
 * Checks a URL against the network rules and returns it parsed; throws NetworkGuardError with the
 * reason otherwise. `lookup` resolves host names (every address must pass).
 */
export async function checkUrl(url: string | URL, rules: NetworkRules, lookup: Lookup): Promise<URL> {
  let parsed: URL;
  try {
    parsed = new URL(String(url));
  } catch {
    throw new NetworkGuardError(`not a valid URL: ${String(url).slice(0, 100)}`);
  }
  const host = parsed.hostname;
  if (host === '') throw new NetworkGuardError(`refused ${parsed.protocol} URL without a host`);
  const display = normalizeHost(host);
  // A refused address is refused whatever the scheme or the allowlist say, and the error names it.
  // URL parsing has already turned 2852039166, 0x7f.1, 0177.0.0.1 and [::ffff:a.b.c.d] into canonical form.
  const literal = isIpLiteral(display);
  if (literal && !rules.allowPrivateAddresses) {
    const reason = classifyAddress(display);
    if (reason) throw refusal(display, undefined, reason);
  }
  if (parsed.protocol !== 'https:') {
    if (parsed.protocol !== 'http:') {
      throw new NetworkGuardError(`refused ${parsed.protocol} URL for ${display}: only https is allowed`);
    }
    if (!rules.allowPrivateAddresses) {
      throw new NetworkGuardError(
        `refused plain http to ${display}: only https is allowed (http only with tools.network.allowPrivateAddresses, for local testing)`,
      );
    }
  }
  if (rules.allowHosts.length === 0) {
    throw new NetworkGuardError(
      `refused ${display}: tools.network.allowHosts is empty, so tools may not reach any host (add "${display}" to allow it)`,
    );
  }
  if (!hostAllowed(host, rules.allowHosts)) {
    throw new NetworkGuardError(`refused ${display}: the host is not in tools.network.allowHosts (${rules.allowHosts.join(', ')})`);
  }
  if (rules.allowPrivateAddresses || literal) return parsed;

  let addresses: string[];
  try {
    addresses = await lookup(display);
  } catch (error) {
    const code = (error as { code?: string }).code;
    throw new NetworkGuardError(`could not resolve ${display}: ${code ?? (error as Error).message}`);
  }
  if (addresses.length === 0) throw new NetworkGuardError(`could not resolve ${display}: no addresses`);
  for (const address of addresses) {
    const reason = classifyAddress(address);
    if (reason) throw refusal(display, address, reason);
  }
  return parsed;
}

// ---------- fetch ----------

export interface GuardedFetchOptions {
  /** Body bytes kept; the rest is dropped and `truncated` set. */
  maxBytes?: number;
  maxRedirects?: number;
  /** Request headers dropped when a redirect goes to another origin (case-insensitive). */
  sensitiveHeaders?: string[];
}

export interface GuardedResponse {
  status: number;
  statusText: string;
  headers: Headers;
  /** The URL that answered (after redirects). */
  url: URL;
  /** The body as UTF-8 text, at most `maxBytes` bytes of it. */
  body: string;
  /** Bytes kept. */
  bytes: number;
  truncated: boolean;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Rejects as soon as `signal` aborts (for steps that take no signal, such as DNS lookups). */
function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return promise;
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

async function readCapped(response: Response, maxBytes: number): Promise<{ body: string; bytes: number; truncated: boolean }> {
  if (!response.body) return { body: '', bytes: 0, truncated: false };
  const reader = response.body.getReader();
  const decoder = new TextDecoder('utf-8');
  let text = '';
  let bytes = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return { body: text + decoder.decode(), bytes, truncated: false };
      if (bytes + value.byteLength > maxBytes) {
        const keep = maxBytes - bytes;
        // stream: true keeps an incomplete trailing character out of the text instead of a U+FFFD.
        text += decoder.decode(value.subarray(0, keep), { stream: true });
        bytes += keep;
        reader.cancel().catch(() => {});
        return { body: text, bytes, truncated: true };
      }
      bytes += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    reader.releaseLock();
  }
}

function describeFailure(error: unknown, host: string): Error {
  if (error instanceof NetworkGuardError) return error;
  const name = (error as { name?: string } | null)?.name;
  if (name === 'AbortError' || name === 'TimeoutError') return error as Error;
  const cause = (error as { cause?: { code?: string; message?: string } } | null)?.cause;
  const detail = cause?.code ?? cause?.message ?? (error as Error)?.message ?? String(error);
  return new Error(`request to ${host} failed: ${detail}`);
}

/**
 * `fetch` behind the network guard: checks the URL, fetches with `redirect: 'manual'`, checks every
 * redirect target the same way (at most `maxRedirects`), and reads at most `maxBytes` of the body.
 * Abort and timeout errors from `init.signal` pass through unchanged (callers name the limit).
 */
export async function guardedFetch(
  url: string | URL,
  init: RequestInit,
  rules: NetworkRules,
  services: Pick<ToolServices, 'fetch' | 'lookup'>,
  options: GuardedFetchOptions = {},
): Promise<GuardedResponse> {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_BYTES;
  const maxRedirects = options.maxRedirects ?? MAX_REDIRECTS;
  const sensitive = new Set((options.sensitiveHeaders ?? []).concat(DEFAULT_SENSITIVE_HEADERS).map((h) => h.toLowerCase()));
  const signal = init.signal ?? undefined;
  const lookup: Lookup = (host) => raceSignal(services.lookup(host), signal);

  let target = await checkUrl(url, rules, lookup);
  let method = (init.method ?? 'GET').toUpperCase();
  let body = init.body;
  const headers = new Headers(init.headers);

  for (let redirects = 0; ; redirects++) {
    let response: Response;
    try {
      response = await services.fetch(target.href, { ...init, method, body, headers, redirect: 'manual' });
    } catch (error) {
      throw describeFailure(error, target.host);
    }
    const location = response.headers.get('location');
    if (!REDIRECTS.has(response.status) || location === null) {
      try {
        const read = await readCapped(response, maxBytes);
        return { status: response.status, statusText: response.statusText, headers: response.headers, url: target, ...read };
      } catch (error) {
        throw describeFailure(error, target.host);
      }
    }
    response.body?.cancel().catch(() => {});
    if (redirects >= maxRedirects) {
      throw new NetworkGuardError(`too many redirects from ${target.host} (more than ${maxRedirects})`);
    }
    let next: URL;
    try {
      next = new URL(location, target);
    } catch {
      throw new NetworkGuardError(`${target.host} redirected to an invalid URL`);
    }
    try {
      next = await checkUrl(next, rules, lookup);
    } catch (error) {
      if (error instanceof NetworkGuardError) {
        throw new NetworkGuardError(`redirect from ${target.host} to ${next.host} was refused: ${error.message}`);
      }
      throw error;
    }
    if (next.origin !== target.origin) for (const h of sensitive) headers.delete(h);
    if (response.status === 303 || ((response.status === 301 || response.status === 302) && method === 'POST')) {
      if (method !== 'HEAD') method = 'GET';
      body = undefined;
      headers.delete('content-type');
      headers.delete('content-length');
    }
    target = next;
  }
}
