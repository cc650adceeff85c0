// The judge's tools: specs offered to the model, and a runner that turns every call (good or bad)
// into evidence. `run` never throws: a failed call is evidence too.
import type { RunConfig } from '../config';
import type { BlobStore, ToolCall, ToolSpec } from '../ports';
import type { ToolEvidence } from '../types';

export interface ToolContext {
  reference?: string;
  domain?: string;
  /** The run the item belongs to (tools cache per-run state, such as a search index, under it). */
  runId?: string;
  signal: AbortSignal;
  /** The run's tool settings (limits, network rules, corpus location). */
  settings?: RunConfig['tools'];
  /** What tools may reach outside the process. */
  services?: ToolServices;
}

/** Outside capabilities tools use; injected so tests can replace each one. */
export interface ToolServices {
  blobs: BlobStore;
  buckets: { input: string; output: string };
  /** A secret value by name (Secrets Manager field when deployed, environment variable locally). */
  secret(name: string): Promise<string | undefined>;
  /** Invokes a Lambda function with a JSON payload and returns its response payload as text. */
  invokeLambda(functionArn: string, payload: string, signal: AbortSignal): Promise<string>;
  fetch: typeof fetch;
  /** DNS resolution for the network guard (all addresses of a host name). */
  lookup(hostname: string): Promise<string[]>;
}

export interface Tool {
  name: string;
  description: string;
  /** JSON schema of the arguments object. */
  parameters: Record<string, unknown>;
  limits: { timeoutMs: number; maxOutputChars: number };
  execute(args: unknown, ctx: ToolContext): Promise<string>;
}


export const truncate = (text: string, max: number): string =>
  text.length > max ? `${text.slice(0, max)}…[truncated ${text.length - max} chars]` : text;

/** Longest error text kept in evidence (errors are ours and short; this only guards thrown junk). */
const MAX_ERROR_CHARS = 1000;

export class ToolRegistry {
  private readonly tools = new Map<string, Tool>();

  /** `context` is merged into every call's context: the run's tool settings and services. */
  constructor(
    tools: Tool[],
    private readonly context: Partial<Omit<ToolContext, 'signal'>> = {},
  ) {
    for (const tool of tools) {
      if (this.tools.has(tool.name)) throw new Error(`duplicate tool name: ${tool.name}`);
      this.tools.set(tool.name, tool);
    }
  }

  /** Specs for the named tools, in the order given; unknown names are skipped. */
  specs(names: string[]): ToolSpec[] {
    const out: ToolSpec[] = [];
    for (const name of new Set(names)) {
      const tool = this.tools.get(name);
      if (tool) out.push({ name: tool.name, description: tool.description, parameters: tool.parameters });
    }
    return out;
  }

  has(name: string): boolean {
    return this.tools.has(name);
  }

  async run(call: ToolCall, ctx: Omit<ToolContext, 'signal'>, round: number): Promise<ToolEvidence> {
    const started = performance.now();
    const evidence = (args: unknown, ok: boolean, output: string): ToolEvidence => ({
      round,
      tool: call.name,
      arguments: args,
      ok,
      output,
      durationMs: Math.round((performance.now() - started) * 1000) / 1000,
    });

    const tool = this.tools.get(call.name);
    if (!tool) {
      const known = [...this.tools.keys()].join(', ') || '(none)';
      return evidence(call.arguments, false, `unknown tool "${call.name}"; available tools: ${known}`);
    }

    let args: unknown;
    const text = call.arguments ?? '';
    if (text.trim() === '') args = {};
    else {
      try {
        args = JSON.parse(text);
      } catch (error) {
        return evidence(text, false, truncate(`arguments are not valid JSON: ${(error as Error).message}`, MAX_ERROR_CHARS));
      }
    }
    const problem = validateArgs(args, tool.parameters);
    if (problem) return evidence(args, false, `invalid arguments for ${tool.name}: ${problem}`);

    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        controller.abort();
        reject(new Error(`${tool.name} timed out after ${tool.limits.timeoutMs} ms`));
      }, tool.limits.timeoutMs);
    });
    try {
      const execution = Promise.resolve().then(() => tool.execute(args, { ...this.context, ...ctx, signal: controller.signal }));
      execution.catch(() => {}); // a late rejection after a timeout must not go unhandled
      const output = await Promise.race([execution, timeout]);
      return evidence(args, true, truncate(typeof output === 'string' ? output : String(output), tool.limits.maxOutputChars));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return evidence(args, false, truncate(message || 'the tool failed without a message', MAX_ERROR_CHARS));
    } finally {
      clearTimeout(timer);
    }
  }
}

const JSON_TYPES = ['string', 'number', 'integer', 'boolean', 'object', 'array', 'null'] as const;

function matchesType(value: unknown, type: string): boolean {
  switch (type) {
    case 'string':
      return typeof value === 'string';
    case 'number':
      return typeof value === 'number' && Number.isFinite(value);
    case 'integer':
      return typeof value === 'number' && Number.isInteger(value);
    case 'boolean':
      return typeof value === 'boolean';
    case 'null':
      return value === null;
    case 'array':
      return Array.isArray(value);
    case 'object':
      return typeof value === 'object' && value !== null && !Array.isArray(value);
    default:
      return true; // a type we do not check
  }
}

/** Light validation: an object, required keys present, declared primitive types respected. */
export function validateArgs(args: unknown, schema: Record<string, unknown>): string | undefined {
  if (!matchesType(args, 'object')) return `expected a JSON object, got ${describe(args)}`;
  const record = args as Record<string, unknown>;
  const required = Array.isArray(schema.required) ? (schema.required as unknown[]).filter((k) => typeof k === 'string') : [];
  const missing = required.filter((k) => !(k in record) || record[k] === undefined);
  if (missing.length > 0) return `missing required argument${missing.length > 1 ? 's' : ''}: ${missing.join(', ')}`;
  const properties = (schema.properties ?? {}) as Record<string, Record<string, unknown> | undefined>;
  for (const [key, value] of Object.entries(record)) {
    const prop = properties[key];
    if (!prop || prop.type === undefined) continue;
    const types = (Array.isArray(prop.type) ? prop.type : [prop.type]).filter(
      (t): t is string => typeof t === 'string' && (JSON_TYPES as readonly string[]).includes(t),
    );
    if (types.length > 0 && !types.some((t) => matchesType(value, t))) {
      return `argument "${key}" must be ${types.join(' or ')}, got ${describe(value)}`;
    }
    if (typeof value === 'string' && typeof prop.maxLength === 'number' && value.length > prop.maxLength) {
      return `argument "${key}" is longer than ${prop.maxLength} characters`;
    }
  }
  return undefined;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}
