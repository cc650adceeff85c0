// The offline model lab: an OpenAI-compatible HTTP server on loopback whose four models (target,
// judge, reward, optimizer) are SIMULATIONS, not real models. Deterministic for a seed: every draw is
// keyed on (seed, role, request fingerprint), never on call order or time. It can inject latency,
// 429s, 5xx, hung requests and malformed output; faults are keyed on (fingerprint, attempt number) so
// a retried request can succeed.
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DEFAULT_DATA_FILES, loadKnowledge } from './knowledge';
import { LAB_ROLES, parseChatRequest, requestText, roleForModel, type LabReply, type LabRequest, type LabRole } from './protocol';
import { Rng } from './rng';
import { breakJson, requestFingerprint, simulate, STRUCTURED_ROLES } from './roles';

export const LAB_FINGERPRINT = 'anyprefer-lab-simulation';
export const LAB_OWNER = 'anyprefer-lab (simulation)';
export const LAB_HEADER = 'x-anyprefer-lab';
/** How long a request hangs under the timeout fault (longer than the default client timeout). */
export const LAB_HANG_MS = 65_000;
const MAX_BODY_BYTES = 32 * 1024 * 1024;
const LAB_MODELS = LAB_ROLES.map((r) => `lab-${r}`);

export interface LabOptions {
  /** Seed of every draw (answers, faults, latency). Default 1. */
  seed?: number;
  /** GSM8K-format files the lab knows (default: examples/data/gsm8k-test.jsonl). */
  dataFiles?: string[];
  /** Added latency per request: fixed, or drawn from [min, max]. */
  latencyMs?: number | [number, number];
  faults?: {
    /** Share of requests answered 429 (with Retry-After). */
    rate429?: number;
    /** Share of requests answered 500/502/503. */
    rate5xx?: number;
    /** Share of requests that hang for 65 s (or until the client disconnects or the lab stops). */
    timeoutRate?: number;
    /** Share of structured-output replies (judge, reward, optimizer) whose JSON is broken. */
    malformedRate?: number;
  };
  /** Retry-After seconds sent with a 429. Default 0. */
  retryAfterSeconds?: number;
  /** Port on 127.0.0.1 (default: any free port). */
  port?: number;
  /** Where the lab's own log lines go (default: stderr). */
  log?: (line: string) => void;
}

export interface LabStats {
  /** Chat completion requests per role (including those answered with a fault). */
  requests: Record<LabRole, number>;
  /** Faults injected, per kind. */
  faults: { rateLimited: number; serverError: number; timeout: number; malformed: number };
  /** Requests refused: invalid body (400) or unknown model/route (404). */
  rejected: { badRequest: number; notFound: number };
  /** Estimated tokens (ceil(chars / 4)) of successful replies. */
  tokens: { prompt: number; completion: number; total: number; byRole: Record<LabRole, { prompt: number; completion: number }> };
}

export interface Lab {
  /** `http://127.0.0.1:PORT/v1` */
  baseURL: string;
  stats(): LabStats;
  stop(): Promise<void>;
}

export { requestFingerprint };

const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

export async function startLab(opts: LabOptions = {}): Promise<Lab> {
  const seed = opts.seed ?? 1;
  const knowledge = loadKnowledge(opts.dataFiles ?? DEFAULT_DATA_FILES);
  const faults = opts.faults ?? {};
  const log = opts.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const attempts = new Map<string, number>();
  const inFlight = new Set<AbortController>();
  let stopping = false;

  const zeroRoles = <T>(make: () => T) => Object.fromEntries(LAB_ROLES.map((r) => [r, make()])) as Record<LabRole, T>;
  const stats: LabStats = {
    requests: zeroRoles(() => 0),
    faults: { rateLimited: 0, serverError: 0, timeout: 0, malformed: 0 },
    rejected: { badRequest: 0, notFound: 0 },
    tokens: { prompt: 0, completion: 0, total: 0, byRole: zeroRoles(() => ({ prompt: 0, completion: 0 })) },
  };

  const send = (res: ServerResponse, status: number, payload: unknown, headers: Record<string, string> = {}) => {
    if (res.writableEnded || res.destroyed) return;
    const body = JSON.stringify(payload);
    res.writeHead(status, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
      [LAB_HEADER]: 'simulation',
      ...headers,
    });
    res.end(body);
  };
  const error = (res: ServerResponse, status: number, message: string, type: string, code: string | null, param: string | null = null, headers?: Record<string, string>) =>
    send(res, status, { error: { message, type, param, code } }, headers);

  async function handleChat(req: IncomingMessage, res: ServerResponse, signal: AbortSignal): Promise<void> {
    let raw: unknown;
    try {
      raw = JSON.parse(await readBody(req));
    } catch (e) {
      stats.rejected.badRequest++;
      const tooLarge = e instanceof Error && e.message === 'too large';
      return error(res, tooLarge ? 413 : 400, tooLarge ? 'Request body too large.' : 'We could not parse the JSON body of your request.', 'invalid_request_error', null);
    }
    const parsed = parseChatRequest(raw);
    if (!parsed.ok) {
      stats.rejected.badRequest++;
      return error(res, 400, parsed.message, 'invalid_request_error', null, parsed.param ?? null);
    }
    const request = parsed.request;
    const role = roleForModel(request.model);
    if (!role) {
      stats.rejected.notFound++;
      return error(res, 404, `The model \`${request.model}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model');
    }
    stats.requests[role]++;
    const fp = requestFingerprint(request);
    const attempt = attempts.get(fp) ?? 0;
    attempts.set(fp, attempt + 1);
    const faultRng = Rng.from(seed, 'fault', fp, attempt);

    await sleep(latencyFor(opts.latencyMs, faultRng.fork('latency')), signal);
    if (signal.aborted) return;

    if (faultRng.chance(faults.timeoutRate ?? 0)) {
      stats.faults.timeout++;
      await sleep(LAB_HANG_MS, signal);
      if (!signal.aborted) error(res, 504, 'The server timed out while processing your request.', 'server_error', 'timeout');
      return;
    }
    if (faultRng.chance(faults.rate429 ?? 0)) {
      stats.faults.rateLimited++;
      return error(res, 429, 'Rate limit reached for requests. Please try again later.', 'requests', 'rate_limit_exceeded', null, {
        'retry-after': String(opts.retryAfterSeconds ?? 0),
      });
    }
    if (faultRng.chance(faults.rate5xx ?? 0)) {
      stats.faults.serverError++;
      const status = faultRng.pick([500, 502, 503]);
      return error(res, status, 'The server had an error while processing your request. Sorry about that!', 'server_error', null);
    }

    const reply = simulate(role, request, Rng.from(seed, role, fp), knowledge);
    if (STRUCTURED_ROLES.includes(role) && (faults.malformedRate ?? 0) > 0) {
      reply.choices = reply.choices.map((c, i) => {
        const r = faultRng.fork('malformed', i);
        if (c.content === null || !r.chance(faults.malformedRate ?? 0)) return c;
        stats.faults.malformed++;
        return { ...c, content: breakJson(c.content, r) };
      });
    }
    send(res, 200, completion(request, role, fp, reply));
  }

  function completion(request: LabRequest, role: LabRole, fp: string, reply: LabReply) {
    let completionChars = 0;
    const choices = reply.choices.map((c, index) => {
      let content = c.content;
      let finish: 'stop' | 'tool_calls' | 'length' = c.toolCalls?.length ? 'tool_calls' : 'stop';
      if (content !== null && request.maxTokens !== undefined && estimateTokens(content.length) > request.maxTokens) {
        content = content.slice(0, request.maxTokens * 4);
        finish = 'length';
      }
      completionChars += (content ?? '').length + (c.toolCalls ?? []).reduce((s, t) => s + t.name.length + t.arguments.length, 0);
      const message: Record<string, unknown> = { role: 'assistant', content, refusal: null };
      if (c.toolCalls?.length) {
        message.tool_calls = c.toolCalls.map((t) => ({ id: t.id, type: 'function', function: { name: t.name, arguments: t.arguments } }));
      }
      return { index, message, logprobs: null, finish_reason: finish };
    });
    const prompt = estimateTokens(requestText(request).length);
    const completionTokens = estimateTokens(completionChars);
    stats.tokens.prompt += prompt;
    stats.tokens.completion += completionTokens;
    stats.tokens.total += prompt + completionTokens;
    stats.tokens.byRole[role].prompt += prompt;
    stats.tokens.byRole[role].completion += completionTokens;
    return {
      id: `chatcmpl-lab${fp.slice(0, 24)}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: request.model,
      system_fingerprint: LAB_FINGERPRINT,
      choices,
      usage: { prompt_tokens: prompt, completion_tokens: completionTokens, total_tokens: prompt + completionTokens },
    };
  }

  const modelEntry = (id: string) => ({ id, object: 'model', created: 1_700_000_000, owned_by: LAB_OWNER });

  const server = createServer((req, res) => {
    const controller = new AbortController();
    inFlight.add(controller);
    res.on('close', () => {
      inFlight.delete(controller);
      if (!res.writableFinished) controller.abort();
    });
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const path = url.pathname.replace(/\/+$/, '');
    const route = async () => {
      if (stopping) return error(res, 503, 'The lab is shutting down.', 'server_error', null);
      if (req.method === 'POST' && path === '/v1/chat/completions') return handleChat(req, res, controller.signal);
      if (req.method === 'GET' && path === '/v1/models') return send(res, 200, { object: 'list', data: LAB_MODELS.map(modelEntry) });
      const model = /^\/v1\/models\/(.+)$/.exec(path);
      if (req.method === 'GET' && model) {
        const id = decodeURIComponent(model[1]!);
        if (roleForModel(id)) return send(res, 200, modelEntry(id));
        stats.rejected.notFound++;
        return error(res, 404, `The model \`${id}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model_not_found', 'model');
      }
      stats.rejected.notFound++;
      return error(res, 404, `Unknown request URL: ${req.method} ${url.pathname}.`, 'invalid_request_error', 'unknown_url');
    };
    route().catch((e: unknown) => {
      log(`[anyprefer-lab simulation] internal error: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
      error(res, 500, 'The server had an error while processing your request.', 'server_error', null);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? 0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const baseURL = `http://127.0.0.1:${port}/v1`;
  log(`[anyprefer-lab simulation] simulated models (not real models) on ${baseURL}, seed ${seed}, ${knowledge.size} known problems`);

  return {
    baseURL,
    stats: () => structuredClone(stats),
    async stop() {
      if (stopping) return;
      stopping = true;
      for (const c of inFlight) c.abort();
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      server.closeAllConnections();
      await closed;
      log(`[anyprefer-lab simulation] stopped`);
    },
  };
}

function latencyFor(latency: LabOptions['latencyMs'], rng: Rng): number {
  if (latency === undefined) return 0;
  if (typeof latency === 'number') return Math.max(0, latency);
  const [min, max] = latency;
  return Math.max(0, rng.uniform(min, max));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0 || signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error('too large'));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}
