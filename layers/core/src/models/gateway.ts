// The ModelGateway over any OpenAI-compatible chat.completions endpoint (OpenAI, vLLM, Ollama,
// llama.cpp, LM Studio, a gateway). We own retries (the SDK's are off), `n` fallback and usage.
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import type {
  ChatCompletion,
  ChatCompletionContentPart,
  ChatCompletionContentPartText,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam,
  ChatCompletionTool,
} from 'openai/resources/chat/completions';
import type { ModelEndpoint } from '../config';
import type { ChatChoice, ChatRequest, ChatResult, ContentPart, ModelGateway, ModelMessage, ToolCall } from '../ports';
import type { Role, TokenUsage } from '../types';
import { addUsage, emptyUsage } from './usage';

export interface OpenAIGatewayOptions {
  endpoints: Record<Role, ModelEndpoint>;
  /** Resolves an API key by name (secret field or environment variable). */
  apiKey: (name: string) => Promise<string | undefined>;
  /** Injected for tests; defaults to a real timer. */
  sleep?: (ms: number) => Promise<void>;
  /** Injected for tests; in [0, 1), defaults to Math.random. */
  random?: () => number;
}

/** A model call that failed for good: after the last retry, or at once for a non-retryable error. */
export class ModelCallError extends Error {
  override name = 'ModelCallError';
  readonly role: Role;
  readonly model: string;
  /** HTTP status of the last response, `undefined` when no response came (timeout, connection). */
  readonly status: number | undefined;
  /** HTTP attempts made for the failing request (1 + retries). */
  readonly attempts: number;
  /** Whether the failure was of a transient kind (429, 5xx, timeout...): worth retrying later. */
  readonly retryable: boolean;
  /** Usage spent by this chat() call before it failed. */
  readonly usage: TokenUsage;

  constructor(args: {
    role: Role;
    model: string;
    status: number | undefined;
    attempts: number;
    retryable: boolean;
    detail: string;
    usage: TokenUsage;
    cause?: unknown;
  }) {
    super(
      `model call failed: role=${args.role} model=${args.model} status=${args.status ?? 'none'} ` +
        `attempts=${args.attempts}${args.retryable ? ' (retries exhausted)' : ''}: ${args.detail}`,
      args.cause === undefined ? undefined : { cause: args.cause },
    );
    this.role = args.role;
    this.model = args.model;
    this.status = args.status;
    this.attempts = args.attempts;
    this.retryable = args.retryable;
    this.usage = args.usage;
  }
}

export const BACKOFF_BASE_MS = 500;
export const BACKOFF_CAP_MS = 20_000;
export const RETRY_AFTER_CAP_MS = 60_000;

const RETRYABLE_STATUS = new Set([408, 409, 429]);
const isRetryableStatus = (status: number): boolean => RETRYABLE_STATUS.has(status) || (status >= 500 && status <= 599);

const defaultSleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Delay asked by `retry-after-ms` or `retry-after` (seconds or HTTP date), capped; undefined when absent/invalid. */
export function retryAfterMs(headers: Headers | undefined, now = Date.now()): number | undefined {
  if (!headers) return undefined;
  const cap = (ms: number) => Math.min(Math.max(0, ms), RETRY_AFTER_CAP_MS);
  const ms = headers.get('retry-after-ms');
  if (ms !== null && ms.trim() !== '') {
    const value = Number(ms);
    if (Number.isFinite(value) && value >= 0) return cap(value);
  }
  const ra = headers.get('retry-after');
  if (ra !== null && ra.trim() !== '') {
    const text = ra.trim();
    if (/^\d+(\.\d+)?$/.test(text)) return cap(Number(text) * 1000);
    const date = Date.parse(text);
    if (Number.isFinite(date)) return cap(date - now);
  }
  return undefined;
}

/** Full-jitter exponential backoff for retry number `retry` (0-based). */
export function backoffMs(retry: number, random: () => number): number {
  const ceiling = Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** retry);
  return Math.floor(random() * ceiling);
}

// ---------- mapping ----------

function toOpenAIMessage(m: ModelMessage): ChatCompletionMessageParam {
  switch (m.role) {
    case 'system': {
      if (typeof m.content === 'string') return { role: 'system', content: m.content };
      // System messages take text parts only.
      const parts = m.content.filter((p): p is Extract<ContentPart, { type: 'text' }> => p.type === 'text');
      return { role: 'system', content: parts.map((p): ChatCompletionContentPartText => ({ type: 'text', text: p.text })) };
    }
    case 'user': {
      if (typeof m.content === 'string') return { role: 'user', content: m.content };
      return {
        role: 'user',
        content: m.content.map((p): ChatCompletionContentPart =>
          p.type === 'text' ? { type: 'text', text: p.text } : { type: 'image_url', image_url: { url: p.image_url.url } },
        ),
      };
    }
    case 'assistant': {
      const calls = m.toolCalls ?? [];
      if (calls.length === 0) return { role: 'assistant', content: m.content };
      return {
        role: 'assistant',
        content: m.content,
        tool_calls: calls.map((c) => ({ id: c.id, type: 'function', function: { name: c.name, arguments: c.arguments } })),
      };
    }
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
  }
}

function fromOpenAIChoice(choice: ChatCompletion.Choice): ChatChoice {
  const message = choice.message;
  const toolCalls: ToolCall[] = [];
  for (const call of message?.tool_calls ?? []) {
    if (call.type === 'function' || (call as { type?: string }).type === undefined) {
      const fn = (call as { function?: { name?: string; arguments?: string } }).function;
      toolCalls.push({ id: call.id, name: fn?.name ?? '', arguments: fn?.arguments ?? '' });
    }
  }
  return { content: message?.content ?? null, toolCalls };
}

const estimateTokens = (chars: number): number => Math.ceil(chars / 4);

function promptChars(messages: readonly ModelMessage[]): number {
  let chars = 0;
  for (const m of messages) {
    if (typeof m.content === 'string') chars += m.content.length;
    else if (Array.isArray(m.content)) for (const p of m.content) if (p.type === 'text') chars += p.text.length;
    if (m.role === 'assistant') for (const c of m.toolCalls ?? []) chars += c.name.length + c.arguments.length;
  }
  return chars;
}

function completionChars(choices: readonly ChatChoice[]): number {
  let chars = 0;
  for (const c of choices) {
    chars += c.content?.length ?? 0;
    for (const t of c.toolCalls) chars += t.name.length + t.arguments.length;
  }
  return chars;
}

// ---------- gateway ----------

export class OpenAIGateway implements ModelGateway {
  private readonly endpoints: Record<Role, ModelEndpoint>;
  private readonly apiKey: (name: string) => Promise<string | undefined>;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly random: () => number;
  /** Clients by baseURL + key + timeout, shared by roles that point at the same endpoint. */
  private readonly clients = new Map<string, OpenAI>();

  constructor(options: OpenAIGatewayOptions) {
    this.endpoints = options.endpoints;
    this.apiKey = options.apiKey;
    this.sleep = options.sleep ?? defaultSleep;
    this.random = options.random ?? Math.random;
  }

  /** The key is looked up on every call (the lookup caches), so a rotated key gets a new client. */
  private async clientFor(endpoint: ModelEndpoint): Promise<OpenAI> {
    const key = (await this.apiKey(endpoint.apiKeyName)) || 'no-key';
    const cacheKey = JSON.stringify([endpoint.baseURL ?? '', key, endpoint.timeoutMs]);
    let client = this.clients.get(cacheKey);
    if (!client) {
      client = new OpenAI({ apiKey: key, baseURL: endpoint.baseURL, maxRetries: 0, timeout: endpoint.timeoutMs });
      this.clients.set(cacheKey, client);
    }
    return client;
  }

  private endpoint(role: Role): ModelEndpoint {
    const endpoint = this.endpoints[role];
    if (!endpoint) throw new Error(`no model endpoint configured for role ${role}`);
    return endpoint;
  }

  async chat(role: Role, request: ChatRequest): Promise<ChatResult> {
    const endpoint = this.endpoint(role);
    const client = await this.clientFor(endpoint);
    const wanted = Math.max(1, Math.floor(request.n ?? 1));
    const usage = { value: emptyUsage() };
    const messages = request.messages.map(toOpenAIMessage);
    const tools: ChatCompletionTool[] | undefined =
      request.tools && request.tools.length > 0
        ? request.tools.map((t) => ({
            type: 'function',
            function: { name: t.name, description: t.description, parameters: t.parameters },
          }))
        : undefined;
    const temperature = request.temperature ?? endpoint.temperature;

    const body = (n: number, seed: number | undefined): ChatCompletionCreateParamsNonStreaming => ({
      model: endpoint.model,
      messages,
      max_tokens: endpoint.maxTokens,
      ...(n > 1 ? { n } : {}),
      ...(tools ? { tools } : {}),
      ...(tools && request.toolChoice ? { tool_choice: request.toolChoice } : {}),
      ...(request.jsonSchema
        ? {
            response_format: {
              type: 'json_schema' as const,
              json_schema: { name: request.jsonSchema.name, schema: request.jsonSchema.schema, strict: true },
            },
          }
        : {}),
      ...(temperature !== undefined ? { temperature } : {}),
      ...(seed !== undefined ? { seed } : {}),
    });

    const choices: ChatChoice[] = [];
    try {
      const firstN = endpoint.supportsN ? wanted : 1;
      choices.push(...(await this.request(role, endpoint, client, body(firstN, request.seed), request.messages, usage)));
      // Top up one choice per request: the endpoint has no `n`, or returned fewer choices than asked.
      // Each extra request gets its own seed so seeded samples differ. At most `wanted` extra requests.
      let extra = 0;
      while (choices.length < wanted && extra < wanted) {
        const batch = Math.min(wanted - choices.length, wanted - extra);
        const seeds = Array.from({ length: batch }, (_, i) =>
          request.seed !== undefined ? request.seed + extra + i + 1 : undefined,
        );
        extra += batch;
        const results = await Promise.all(
          seeds.map((seed) => this.request(role, endpoint, client, body(1, seed), request.messages, usage)),
        );
        for (const r of results) choices.push(...r);
      }
    } catch (error) {
      if (error instanceof ModelCallError) {
        // Report everything this chat() spent, not only the failing request.
        throw new ModelCallError({
          role,
          model: endpoint.model,
          status: error.status,
          attempts: error.attempts,
          retryable: error.retryable,
          detail: detailOf(error.cause) ?? error.message,
          usage: usage.value,
          cause: error.cause,
        });
      }
      throw error;
    }
    if (choices.length === 0) {
      throw new ModelCallError({
        role,
        model: endpoint.model,
        status: 200,
        attempts: 1,
        retryable: false,
        detail: 'the endpoint returned no choices',
        usage: usage.value,
      });
    }
    return { choices: choices.slice(0, wanted), usage: usage.value };
  }

  /** One logical request with our retry policy; adds its usage to `usage`. */
  private async request(
    role: Role,
    endpoint: ModelEndpoint,
    client: OpenAI,
    body: ChatCompletionCreateParamsNonStreaming,
    promptMessages: readonly ModelMessage[],
    usage: { value: TokenUsage },
  ): Promise<ChatChoice[]> {
    const maxRetries = Math.max(0, endpoint.maxRetries);
    for (let attempt = 1; ; attempt++) {
      try {
        const completion = await client.chat.completions.create(body);
        const choices = (completion.choices ?? []).map(fromOpenAIChoice);
        const u = completion.usage;
        usage.value = addUsage(usage.value, {
          calls: 1,
          promptTokens: u?.prompt_tokens ?? estimateTokens(promptChars(promptMessages)),
          completionTokens: u?.completion_tokens ?? estimateTokens(completionChars(choices)),
        });
        return choices;
      } catch (error) {
        const status = error instanceof APIError && !(error instanceof APIConnectionError) ? error.status : undefined;
        // A response arrived (even an error one): count the call.
        if (status !== undefined) usage.value = addUsage(usage.value, { calls: 1, promptTokens: 0, completionTokens: 0 });
        const retryable =
          error instanceof APIUserAbortError
            ? false
            : error instanceof APIConnectionError // includes APIConnectionTimeoutError
              ? true
              : status !== undefined && isRetryableStatus(status);
        if (!retryable || attempt > maxRetries) {
          throw new ModelCallError({
            role,
            model: endpoint.model,
            status,
            attempts: attempt,
            retryable,
            detail: detailOf(error) ?? String(error),
            usage: usage.value,
            cause: error,
          });
        }
        const headers = error instanceof APIError ? (error.headers as Headers | undefined) : undefined;
        const delay = retryAfterMs(headers) ?? backoffMs(attempt - 1, this.random);
        await this.sleep(delay);
      }
    }
  }
}

function detailOf(error: unknown): string | undefined {
  if (error === undefined) return undefined;
  const message = error instanceof Error ? error.message : String(error);
  return message.length > 500 ? `${message.slice(0, 500)}…` : message;
}
