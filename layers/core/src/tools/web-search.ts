// Web search through one provider API (Brave or Tavily), behind the network guard: the provider's
// host must be on tools.network.allowHosts like any other. Off unless `tools.webSearch` is set.
import type { RunConfig } from '../config';
import { abortMessage, NO_NETWORK, redact, requireServices } from './http-tool';
import { guardedFetch, type NetworkRules } from './network-guard';
import type { Tool, ToolServices } from './registry';

export interface SearchResult {
  title: string;
  url: string;
  snippet: string;
}

export interface SearchProvider {
  search(query: string, maxResults: number, signal: AbortSignal): Promise<SearchResult[]>;
}

type WebSearchSettings = NonNullable<RunConfig['tools']['webSearch']>;

export const BRAVE_BASE_URL = 'https://api.search.brave.com';
export const TAVILY_BASE_URL = 'https://api.tavily.com';
const MAX_RESPONSE_BYTES = 1024 * 1024;
const SEARCH_TIMEOUT_MS = 10_000;
const MAX_SNIPPET_CHARS = 500;

export function isWebSearchConfigured(settings: RunConfig['tools'] | undefined): boolean {
  return settings?.webSearch !== undefined;
}

interface ProviderDeps {
  apiKey: string;
  baseURL?: string;
  rules: NetworkRules;
  services: Pick<ToolServices, 'fetch' | 'lookup'>;
}

const ENTITIES: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", nbsp: ' ', '#39': "'", '#x27': "'" };

/** Snippets arrive with <strong> marks and entities; the judge reads plain text. */
function plain(text: unknown, max = MAX_SNIPPET_CHARS): string {
  if (typeof text !== 'string') return '';
  const s = text
    .replace(/<[^>]{0,200}>/g, '')
    .replace(/&(#?\w+);/g, (m, name: string) => ENTITIES[name.toLowerCase()] ?? m)
    .replace(/\s+/g, ' ')
    .trim();
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

function endpoint(baseURL: string, path: string): URL {
  const base = baseURL.endsWith('/') ? baseURL : `${baseURL}/`;
  return new URL(path.replace(/^\//, ''), base);
}

async function requestJson(
  provider: string,
  url: URL,
  init: RequestInit,
  deps: ProviderDeps,
  sensitiveHeader: string,
): Promise<unknown> {
  const response = await guardedFetch(url, init, deps.rules, deps.services, {
    maxBytes: MAX_RESPONSE_BYTES,
    sensitiveHeaders: [sensitiveHeader],
  });
  if (response.status < 200 || response.status > 299) {
    const excerpt = response.body.replace(/\s+/g, ' ').trim().slice(0, 200);
    throw new Error(redact(`${provider} search failed: HTTP ${response.status} from ${response.url.host}: ${excerpt || '(empty body)'}`, deps.apiKey));
  }
  if (response.truncated) throw new Error(`${provider} search failed: the response is larger than ${MAX_RESPONSE_BYTES} bytes`);
  try {
    return JSON.parse(response.body);
  } catch {
    throw new Error(`${provider} search failed: the response is not JSON`);
  }
}

/** Brave Search API: GET /res/v1/web/search?q=&count=, key in X-Subscription-Token. */
export function braveProvider(deps: ProviderDeps): SearchProvider {
  return {
    async search(query, maxResults, signal) {
      const url = endpoint(deps.baseURL ?? BRAVE_BASE_URL, '/res/v1/web/search');
      url.searchParams.set('q', query);
      url.searchParams.set('count', String(maxResults));
      const headers = { accept: 'application/json', 'x-subscription-token': deps.apiKey };
      const data = (await requestJson('brave', url, { method: 'GET', headers, signal }, deps, 'x-subscription-token')) as {
        web?: { results?: { title?: unknown; url?: unknown; description?: unknown }[] };
      };
      const results = Array.isArray(data?.web?.results) ? data.web.results : [];
      return results
        .filter((r) => typeof r?.url === 'string')
        .slice(0, maxResults)
        .map((r) => ({ title: plain(r.title, 200) || String(r.url), url: String(r.url), snippet: plain(r.description) }));
    },
  };
}

/** Tavily API: POST /search {query, max_results}, key as a Bearer token. */
export function tavilyProvider(deps: ProviderDeps): SearchProvider {
  return {
    async search(query, maxResults, signal) {
      const url = endpoint(deps.baseURL ?? TAVILY_BASE_URL, '/search');
      const headers = { accept: 'application/json', 'content-type': 'application/json', authorization: `Bearer ${deps.apiKey}` };
      const body = JSON.stringify({ query, max_results: maxResults });
      const data = (await requestJson('tavily', url, { method: 'POST', headers, body, signal }, deps, 'authorization')) as {
        results?: { title?: unknown; url?: unknown; content?: unknown }[];
      };
      const results = Array.isArray(data?.results) ? data.results : [];
      return results
        .filter((r) => typeof r?.url === 'string')
        .slice(0, maxResults)
        .map((r) => ({ title: plain(r.title, 200) || String(r.url), url: String(r.url), snippet: plain(r.content) }));
    },
  };
}

export function createSearchProvider(settings: WebSearchSettings, deps: ProviderDeps): SearchProvider {
  const withBase = { ...deps, baseURL: settings.baseURL };
  return settings.provider === 'brave' ? braveProvider(withBase) : tavilyProvider(withBase);
}

export function formatResults(results: SearchResult[]): string {
  return results.map((r, i) => `${i + 1}. ${r.title}\n   ${r.url}${r.snippet ? `\n   ${r.snippet}` : ''}`).join('\n\n');
}

/** The web_search tool; `timeoutMs` bounds one provider request (tests shorten it). */
export function createWebSearchTool(options: { timeoutMs?: number } = {}): Tool {
  const timeoutMs = options.timeoutMs ?? SEARCH_TIMEOUT_MS;
  return {
    name: 'web_search',
    description:
      'Searches the web and returns the top results (title, URL, snippet). Use it to check facts that are not in the task, ' +
      'such as names, dates, definitions or current information. Write a short keyword query.',
    parameters: {
      type: 'object',
      properties: { query: { type: 'string', description: 'The search query', maxLength: 400 } },
      required: ['query'],
      additionalProperties: false,
    },
    limits: { timeoutMs: timeoutMs + 1_000, maxOutputChars: 8_000 },
    async execute(args, ctx) {
      const settings = ctx.settings?.webSearch;
      if (!settings) throw new Error('web_search is not configured (set tools.webSearch in the run config)');
      const query = (args as { query?: unknown } | null)?.query;
      if (typeof query !== 'string' || !query.trim()) throw new Error('argument "query" must be a non-empty string');
      const services = requireServices(ctx, 'web_search');
      const apiKey = (await services.secret(settings.apiKeyName))?.trim();
      if (!apiKey) throw new Error(`web_search: the API key "${settings.apiKeyName}" is not set`);
      const provider = createSearchProvider(settings, { apiKey, rules: ctx.settings?.network ?? NO_NETWORK, services });
      const timeout = AbortSignal.timeout(timeoutMs);
      const signal = AbortSignal.any([ctx.signal, timeout]);
      let results: SearchResult[];
      try {
        results = await provider.search(query.trim(), settings.maxResults, signal);
      } catch (error) {
        const e = abortMessage(error, timeout, timeoutMs, ctx.signal, `${settings.provider} search`);
        throw new Error(redact(e.message, apiKey));
      }
      if (results.length === 0) return `no web results for "${query.trim()}"`;
      return formatResults(results);
    },
  };
}

export const webSearchTool: Tool = createWebSearchTool();
