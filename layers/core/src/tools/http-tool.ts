// User-declared tools hosted elsewhere (detectors, captioners, medical classifiers, simulators), called
// over HTTPS behind the network guard. The arguments go as the JSON body (POST) or the query string
// (GET); the answer comes back as the status and the body text. A secret header value is read when
// the call is made and never appears in the output or in errors (it is redacted if a server echoes it).
import type { HttpToolConfig } from '../config';
import { guardedFetch, type NetworkRules } from './network-guard';
import type { Tool, ToolContext, ToolServices } from './registry';

/** The rules when a run has no settings: nothing may be reached. */
export const NO_NETWORK: NetworkRules = { allowHosts: [], allowPrivateAddresses: false };

/** Characters of a non-2xx body quoted in the error. */
const ERROR_EXCERPT_CHARS = 200;
/** The registry's own timer is a backstop: the tool's own timeout fires first with a clearer message. */
const TIMEOUT_MARGIN_MS = 1_000;

/** JSON laid out for reading: a value that fits on a line stays on one, larger ones break with 2 spaces. */
export function formatJson(value: unknown, width = 100): string {
  const render = (v: unknown, indent: string): string => {
    const flat = JSON.stringify(v) ?? 'null';
    if (v === null || typeof v !== 'object' || indent.length + flat.length <= width) return flat;
    const inner = `${indent}  `;
    if (Array.isArray(v)) {
      if (v.length === 0) return '[]';
      return `[\n${v.map((x) => inner + render(x, inner)).join(',\n')}\n${indent}]`;
    }
    const entries = Object.entries(v as Record<string, unknown>).filter(([, x]) => x !== undefined);
    if (entries.length === 0) return '{}';
    return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${render(x, inner)}`).join(',\n')}\n${indent}}`;
  };
  return render(value, '');
}

/** The body as formatted JSON when it is JSON, else as is. */
export function formatBody(text: string, contentType: string | null): string {
  const trimmed = text.trim();
  const looksJson = /\bjson\b/i.test(contentType ?? '') || /^[[{]/.test(trimmed);
  if (!looksJson || trimmed === '') return text;
  try {
    return formatJson(JSON.parse(trimmed));
  } catch {
    return text;
  }
}

/** Replaces every occurrence of the secret (when there is one worth redacting) in `text`. */
export function redact(text: string, secret: string | undefined): string {
  return secret && secret.length >= 4 ? text.split(secret).join('[redacted]') : text;
}

/** The query-string form of the arguments: scalars as text, arrays repeated, objects as JSON. */
function appendQuery(url: URL, args: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(args)) {
    if (value === undefined) continue;
    const values = Array.isArray(value) ? value : [value];
    for (const v of values) {
      url.searchParams.append(key, v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v));
    }
  }
}

/** Services the tool needs, or a clear error when the runtime provided none. */
export function requireServices(ctx: ToolContext, tool: string): ToolServices {
  if (!ctx.services) throw new Error(`${tool} cannot run here: no tool services (network, secrets, storage) were provided`);
  return ctx.services;
}

/** Turns an abort into the limit that caused it; other errors pass through. */
export function abortMessage(error: unknown, timeout: AbortSignal, timeoutMs: number, outer: AbortSignal, what: string): Error {
  if (timeout.aborted) return new Error(`${what} timed out after ${timeoutMs} ms`);
  if (outer.aborted) return new Error(`${what} was cancelled`);
  return error instanceof Error ? error : new Error(String(error));
}

export function httpTool(config: HttpToolConfig): Tool {
  const configuredUrl = new URL(config.url); // validated by the config schema
  return {
    name: config.name,
    description: config.description,
    parameters: config.parameters,
    limits: { timeoutMs: config.timeoutMs + TIMEOUT_MARGIN_MS, maxOutputChars: config.maxOutputChars },
    async execute(args, ctx) {
      const services = requireServices(ctx, `the http tool ${config.name}`);
      const rules = ctx.settings?.network ?? NO_NETWORK;
      const record = (args ?? {}) as Record<string, unknown>;
      if (typeof record !== 'object' || Array.isArray(record)) throw new Error('arguments must be a JSON object');

      const headers = new Headers();
      headers.set('accept', 'application/json, text/plain;q=0.9, */*;q=0.5');
      for (const [name, value] of Object.entries(config.headers)) headers.set(name, value);
      let secret: string | undefined;
      if (config.auth) {
        secret = (await services.secret(config.auth.keyName))?.trim();
        if (!secret) throw new Error(`the secret "${config.auth.keyName}" for tool ${config.name} is not set`);
        try {
          headers.set(config.auth.header, `${config.auth.prefix}${secret}`);
        } catch {
          // The platform's message quotes the value: say what is wrong without it.
          throw new Error(`the secret "${config.auth.keyName}" for tool ${config.name} is not a valid value for header ${config.auth.header}`);
        }
      }

      const url = new URL(configuredUrl);
      let body: string | undefined;
      if (config.method === 'GET') appendQuery(url, record);
      else {
        body = JSON.stringify(record);
        headers.set('content-type', 'application/json');
      }

      const timeout = AbortSignal.timeout(config.timeoutMs);
      const signal = AbortSignal.any([ctx.signal, timeout]);
      // Bytes read: enough for the output limit (UTF-8 and JSON layout may shrink it), bounded.
      const maxBytes = Math.min(1024 * 1024, Math.max(64 * 1024, config.maxOutputChars * 4));
      let response;
      try {
        response = await guardedFetch(url, { method: config.method, headers, body, signal }, rules, services, {
          maxBytes,
          sensitiveHeaders: config.auth ? [config.auth.header] : [],
        });
      } catch (error) {
        const e = abortMessage(error, timeout, config.timeoutMs, ctx.signal, `request to ${url.host}`);
        throw new Error(redact(e.message, secret));
      }

      const host = response.url.host;
      if (response.status < 200 || response.status > 299) {
        const excerpt = response.body.replace(/\s+/g, ' ').trim().slice(0, ERROR_EXCERPT_CHARS);
        throw new Error(redact(`HTTP ${response.status} from ${host}: ${excerpt || '(empty body)'}`, secret));
      }
      const note = response.truncated ? ` (response truncated: it is larger than ${maxBytes} bytes)` : '';
      const text = response.truncated ? response.body : formatBody(response.body, response.headers.get('content-type'));
      const head = `HTTP ${response.status}${note}\n`;
      const room = Math.max(0, config.maxOutputChars - head.length);
      const keep = Math.max(0, room - 40);
      const shown = text.length > room ? `${text.slice(0, keep)}…[truncated ${text.length - keep} chars]` : text;
      return redact(head + shown, secret);
    },
  };
}
