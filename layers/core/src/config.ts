// The run config: validated once at ingest, stored with the run, read by every stage.
// Every field has a documented default (docs/configuration.md); a config file only names changes.
import { z } from 'zod';

/** Where one role's model lives. No `baseURL` and no key means the offline model lab. */
const modelEndpoint = z.strictObject({
  /** Model name sent to the endpoint. */
  model: z.string().min(1),
  /** OpenAI-compatible base URL (vLLM, Ollama, LM Studio, a gateway). Omit for OpenAI itself. */
  baseURL: z.url().optional(),
  /** Name of the API key: a field of the stack's secret, or an environment variable locally. */
  apiKeyName: z.string().min(1).default('OPENAI_API_KEY'),
  /** Whether the endpoint honours `n` (several choices in one request). */
  supportsN: z.boolean().default(true),
  temperature: z.number().min(0).max(2).optional(),
  maxTokens: z.int().positive().max(32_768).default(1024),
  /** Request timeout in milliseconds. */
  timeoutMs: z.int().positive().default(60_000),
  /** Retries of a failed call (429, 5xx, timeout, connection error) before the stage fails. */
  maxRetries: z.int().min(0).max(10).default(4),
});
export type ModelEndpoint = z.infer<typeof modelEndpoint>;

const labModel = (role: string) => ({ model: `lab-${role}` });

const toolName = z.string().regex(/^[a-zA-Z0-9_-]{1,64}$/, 'tool names are 1-64 letters, digits, _ or -');
const jsonSchemaObject = z.record(z.string(), z.unknown()).default({ type: 'object', properties: {} });

/** A tool hosted elsewhere (a detector, captioner, classifier, simulator), called over HTTPS. */
const httpToolConfig = z.strictObject({
  name: toolName,
  description: z.string().min(1).max(2000),
  /** JSON schema of the arguments the judge sends (as the JSON body, or query string for GET). */
  parameters: jsonSchemaObject,
  url: z.url(),
  method: z.enum(['POST', 'GET']).default('POST'),
  headers: z.record(z.string(), z.string()).default({}),
  /** A secret sent as a header: the value comes from the secret (or env) field `keyName`. */
  auth: z.strictObject({ header: z.string().min(1), keyName: z.string().min(1), prefix: z.string().default('') }).optional(),
  timeoutMs: z.int().positive().max(60_000).default(10_000),
  maxOutputChars: z.int().positive().max(200_000).default(8_000),
});
export type HttpToolConfig = z.infer<typeof httpToolConfig>;

/** A user's Lambda function as a tool (the stack grants invoke on the listed ARNs only). */
const lambdaToolConfig = z.strictObject({
  name: toolName,
  description: z.string().min(1).max(2000),
  parameters: jsonSchemaObject,
  functionArn: z.string().regex(/^arn:aws[a-z-]*:lambda:[a-z0-9-]+:\d{12}:function:[A-Za-z0-9_-]+(:[A-Za-z0-9_$-]+)?$/, 'must be a Lambda function ARN'),
  timeoutMs: z.int().positive().max(60_000).default(15_000),
  maxOutputChars: z.int().positive().max(200_000).default(8_000),
});
export type LambdaToolConfig = z.infer<typeof lambdaToolConfig>;

export const DEFAULT_TARGET_PROMPT = 'You are a helpful assistant. Answer the question.';
export const DEFAULT_JUDGE_PROMPT =
  'You are a judge. Score every candidate answer from 0 to 10 for how well it answers the question.';

export const MODES = ['anyprefer', 'self-rewarding', 'judge-only', 'no-tools', 'no-feedback'] as const;
export type Mode = (typeof MODES)[number];

export const runConfigSchema = z.strictObject({
  /**
   * `anyprefer`: separate judge with tools, reward model, feedback (the method).
   * `self-rewarding`: the target judges its own candidates; no tools, no reward model, no feedback.
   * `judge-only`: separate judge (with the configured tools); no reward model, no feedback.
   * `no-tools` / `no-feedback`: the method without the judge's tools / with one iteration only.
   */
  mode: z.enum(MODES).default('anyprefer'),
  /** Position-bias controls for the judge. */
  judging: z
    .strictObject({
      /** Show candidates in a fresh (seeded) order for every judge call. */
      shuffle: z.boolean().default(true),
      /** Judge twice, the second time in reversed order; keep the pair only when both agree. */
      swap: z.boolean().default(false),
    })
    .prefault({}),
  /** Candidates the target samples per prompt and iteration. */
  candidatesPerPrompt: z.int().min(2).max(16).default(4),
  /** Reward-model score (0-10) a pair needs to be accepted. */
  rewardThreshold: z.number().min(0).max(10).default(7),
  /** Passes through generate → judge per item, feedback included; then the item is rejected. */
  maxIterations: z.int().min(1).max(10).default(3),
  /** Smallest judge score difference between chosen and rejected that makes a pair. */
  minMargin: z.number().min(0).max(10).default(1),
  models: z
    .strictObject({
      target: modelEndpoint.prefault(labModel('target')),
      judge: modelEndpoint.prefault(labModel('judge')),
      reward: modelEndpoint.prefault(labModel('reward')),
      optimizer: modelEndpoint.prefault(labModel('optimizer')),
    })
    .prefault({}),
  prompts: z
    .strictObject({
      target: z.string().min(1).max(20_000).default(DEFAULT_TARGET_PROMPT),
      judge: z.string().min(1).max(20_000).default(DEFAULT_JUDGE_PROMPT),
    })
    .prefault({}),
  tools: z
    .strictObject({
      /** Tools the judge may call, for every domain unless `byDomain` names the domain. */
      enabled: z.array(z.string().min(1)).default(['reference', 'calculator']),
      byDomain: z.record(z.string(), z.array(z.string().min(1))).default({}),
      /** Rounds of tool calls the judge may make before it must score. */
      maxRounds: z.int().min(0).max(8).default(3),
      http: z.array(httpToolConfig).default([]),
      lambda: z.array(lambdaToolConfig).default([]),
      /** Outbound network rules for `http` and `web_search`: hosts allowed, and whether private,
       * loopback and link-local addresses may be reached (never by default). */
      network: z
        .strictObject({ allowHosts: z.array(z.string().min(1)).default([]), allowPrivateAddresses: z.boolean().default(false) })
        .prefault({}),
      /** BM25 over the user's corpus in the input bucket. */
      retrieve: z.strictObject({ prefix: z.string().default('knowledge/'), topK: z.int().min(1).max(20).default(4) }).prefault({}),
      /** Web search through one provider API; off unless configured. */
      webSearch: z
        .strictObject({
          provider: z.enum(['brave', 'tavily']),
          /** Override the provider's API base URL (a proxy, or a test stub). */
          baseURL: z.url().optional(),
          apiKeyName: z.string().min(1).default('SEARCH_API_KEY'),
          maxResults: z.int().min(1).max(10).default(5),
        })
        .optional(),
      /** JavaScript sandbox limits for `run_code`. */
      runCode: z
        .strictObject({ timeoutMs: z.int().min(10).max(30_000).default(2_000), memoryMb: z.int().min(1).max(256).default(32) })
        .prefault({}),
    })
    .prefault({}),
  /** In-flight work limits per stage (Lambda maxConcurrency in AWS, poller slots locally). */
  concurrency: z
    .strictObject({
      ingest: z.int().min(1).max(1000).default(2),
      generate: z.int().min(1).max(1000).default(4),
      judge: z.int().min(1).max(1000).default(4),
      feedback: z.int().min(1).max(1000).default(2),
      finalize: z.int().min(1).max(1000).default(2),
    })
    .prefault({}),
  /**
   * The prompt policy. Each feedback revision is a prompt version; a share (`explore`) of new
   * items try a revision that has fewer than `minTrials` trials, and the run-level prompt for a
   * role and domain moves to a revision only when, over at least `minTrials` judge attempts each,
   * its acceptance rate beats the incumbent's by `minLift`, or it accepts as often and its mean
   * reward is higher by `minRewardLift`.
   */
  policy: z
    .strictObject({
      promote: z.boolean().default(true),
      explore: z.number().min(0).max(1).default(0.25),
      minTrials: z.int().min(1).max(1000).default(5),
      minLift: z.number().min(0).max(1).default(0.1),
      minRewardLift: z.number().min(0).max(10).default(0.5),
    })
    .prefault({}),
  /** Stop taking new work once the run has used this many tokens or this estimated cost. */
  budget: z
    .strictObject({
      maxTokens: z.int().positive().optional(),
      maxCostUsd: z.number().positive().optional(),
      /** USD per million prompt (input) and completion (output) tokens, per role. */
      prices: z
        .partialRecord(z.enum(['target', 'judge', 'reward', 'optimizer']), z.strictObject({ inputPerMTok: z.number().min(0), outputPerMTok: z.number().min(0) }))
        .default({}),
    })
    .refine((b) => b.maxCostUsd === undefined || Object.keys(b.prices).length > 0, { message: 'maxCostUsd needs prices for the roles' })
    .prefault({}),
  /** Seed for everything random in the pipeline and the offline lab. */
  seed: z.int().default(1),
});

export type RunConfig = z.infer<typeof runConfigSchema>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validates a run config (parsed JSON) and fills in the defaults; errors name the field. */
export function parseRunConfig(input: unknown): RunConfig {
  const result = runConfigSchema.safeParse(input ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`);
    throw new ConfigError(`invalid run config: ${problems.join('; ')}`);
  }
  return result.data;
}

/** The tools the judge may use for an item of this domain (none in the modes without tools). */
export function toolsFor(config: RunConfig, domain: string | undefined): string[] {
  if (config.mode === 'self-rewarding' || config.mode === 'no-tools') return [];
  return (domain !== undefined ? config.tools.byDomain[domain] : undefined) ?? config.tools.enabled;
}

/** What the mode changes in the pipeline. */
export function modeSettings(config: RunConfig): { judgeRole: 'judge' | 'target'; rewardGate: boolean; maxIterations: number } {
  switch (config.mode) {
    case 'self-rewarding':
      return { judgeRole: 'target', rewardGate: false, maxIterations: 1 };
    case 'judge-only':
      return { judgeRole: 'judge', rewardGate: false, maxIterations: 1 };
    case 'no-feedback':
      return { judgeRole: 'judge', rewardGate: true, maxIterations: 1 };
    default:
      return { judgeRole: 'judge', rewardGate: true, maxIterations: config.maxIterations };
  }
}

/**
 * The config as it may be published (manifest, dataset card): header values of declared tools and
 * credentials or query strings in URLs are masked. Keys belong in the secret (`auth`, `apiKeyName`),
 * but a config written by hand may still carry one.
 */
export function publishableConfig(config: RunConfig): RunConfig {
  const mask = (url: string | undefined) => {
    if (!url) return url;
    const u = new URL(url);
    if (u.username || u.password) [u.username, u.password] = ['***', ''];
    if (u.search) u.search = '?***';
    return u.toString();
  };
  const models = Object.fromEntries(Object.entries(config.models).map(([role, m]) => [role, { ...m, ...(m.baseURL ? { baseURL: mask(m.baseURL) } : {}) }]));
  return {
    ...config,
    models: models as RunConfig['models'],
    tools: {
      ...config.tools,
      http: config.tools.http.map((t) => ({ ...t, url: mask(t.url)!, headers: Object.fromEntries(Object.keys(t.headers).map((h) => [h, '***'])) })),
      ...(config.tools.webSearch?.baseURL ? { webSearch: { ...config.tools.webSearch, baseURL: mask(config.tools.webSearch.baseURL) } } : {}),
    },
  };
}
