// The request and reply shapes the offline model lab (a simulation) works with: OpenAI chat
// completions, parsed and validated into a small internal form.
import { z } from 'zod';

export type LabRole = 'target' | 'judge' | 'reward' | 'optimizer';
export const LAB_ROLES: readonly LabRole[] = ['target', 'judge', 'reward', 'optimizer'];

export interface LabToolCall {
  id: string;
  name: string;
  /** Raw JSON text of the arguments. */
  arguments: string;
}

export type LabMessage =
  | { role: 'system' | 'user' | 'developer'; content: string }
  | { role: 'assistant'; content: string; toolCalls: LabToolCall[] }
  | { role: 'tool'; content: string; toolCallId: string };

export interface LabRequest {
  model: string;
  messages: LabMessage[];
  n: number;
  /** Names of the functions offered as tools. */
  tools: string[];
  /** `tool_choice`: 'none' forbids tool calls, 'required' (or a named function) demands one. */
  toolChoice?: 'none' | 'auto' | 'required';
  /** Set when the caller asked for structured output (`response_format` json_schema or json_object). */
  jsonSchema?: { name: string; schema: unknown };
  seed?: number;
  temperature?: number;
  maxTokens?: number;
}

export interface LabChoice {
  content: string | null;
  toolCalls?: LabToolCall[];
}

export interface LabReply {
  choices: LabChoice[];
}

/** Which simulated role a model name selects: exact names first, then any name containing a role word. */
export function roleForModel(model: string): LabRole | undefined {
  const lower = model.toLowerCase();
  for (const role of LAB_ROLES) if (lower === `lab-${role}`) return role;
  for (const role of LAB_ROLES) if (lower.includes(role)) return role;
  return undefined;
}

// ---------- parsing an OpenAI request body ----------

const textPart = z.looseObject({ type: z.literal('text'), text: z.string() });
const otherPart = z.looseObject({ type: z.string() });
const content = z.union([z.string(), z.array(z.union([textPart, otherPart])), z.null()]).optional();

const toolCall = z.looseObject({
  id: z.string(),
  type: z.literal('function').optional(),
  function: z.looseObject({ name: z.string(), arguments: z.string() }),
});

const message = z.discriminatedUnion('role', [
  z.looseObject({ role: z.enum(['system', 'user', 'developer']), content }),
  z.looseObject({ role: z.literal('assistant'), content, tool_calls: z.array(toolCall).optional() }),
  z.looseObject({ role: z.literal('tool'), content, tool_call_id: z.string() }),
]);

const tool = z.looseObject({
  type: z.literal('function'),
  function: z.looseObject({ name: z.string().min(1), description: z.string().optional(), parameters: z.unknown().optional() }),
});

const responseFormat = z.union([
  z.looseObject({ type: z.literal('text') }),
  z.looseObject({ type: z.literal('json_object') }),
  z.looseObject({
    type: z.literal('json_schema'),
    json_schema: z.looseObject({ name: z.string(), schema: z.unknown().optional(), strict: z.boolean().nullish() }),
  }),
]);

const body = z.looseObject({
  model: z.string().min(1),
  messages: z.array(message).min(1),
  n: z.int().min(1).max(128).nullish(),
  tools: z.array(tool).nullish(),
  tool_choice: z.unknown().optional(),
  response_format: responseFormat.nullish(),
  seed: z.int().nullish(),
  temperature: z.number().min(0).max(2).nullish(),
  max_tokens: z.int().min(1).nullish(),
  max_completion_tokens: z.int().min(1).nullish(),
  stream: z.boolean().nullish(),
});

const textOf = (c: z.infer<typeof content>): string => {
  if (c === undefined || c === null) return '';
  if (typeof c === 'string') return c;
  return c.map((p) => (p.type === 'text' && typeof p.text === 'string' ? p.text : '')).join('');
};

export type ParseResult = { ok: true; request: LabRequest } | { ok: false; message: string; param?: string };

/** Validates a chat completions body; errors read like the OpenAI API's. */
export function parseChatRequest(input: unknown): ParseResult {
  const parsed = body.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const param = issue.path.join('.');
    return { ok: false, message: `Invalid request body: ${param || '(root)'}: ${issue.message}`, param: param || undefined };
  }
  const b = parsed.data;
  if (b.stream) return { ok: false, message: 'Streaming is not supported by this server.', param: 'stream' };
  const messages: LabMessage[] = b.messages.map((m) => {
    if (m.role === 'assistant') {
      return {
        role: 'assistant',
        content: textOf(m.content),
        toolCalls: (m.tool_calls ?? []).map((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments })),
      };
    }
    if (m.role === 'tool') return { role: 'tool', content: textOf(m.content), toolCallId: m.tool_call_id };
    return { role: m.role, content: textOf(m.content) };
  });
  const rf = b.response_format;
  const request: LabRequest = {
    model: b.model,
    messages,
    n: b.n ?? 1,
    tools: (b.tools ?? []).map((t) => t.function.name),
  };
  const tc = b.tool_choice;
  if (tc === 'none' || tc === 'auto' || tc === 'required') request.toolChoice = tc;
  else if (typeof tc === 'object' && tc !== null) request.toolChoice = 'required';
  if (rf?.type === 'json_schema') request.jsonSchema = { name: rf.json_schema.name, schema: rf.json_schema.schema };
  else if (rf?.type === 'json_object') request.jsonSchema = { name: 'json_object', schema: {} };
  if (b.seed !== undefined && b.seed !== null) request.seed = b.seed;
  if (b.temperature !== undefined && b.temperature !== null) request.temperature = b.temperature;
  const maxTokens = b.max_completion_tokens ?? b.max_tokens;
  if (maxTokens !== undefined && maxTokens !== null) request.maxTokens = maxTokens;
  return { ok: true, request };
}

// ---------- reading a request ----------

export function systemText(req: LabRequest): string {
  return req.messages
    .filter((m) => m.role === 'system' || m.role === 'developer')
    .map((m) => m.content)
    .join('\n\n');
}

export function lastUserText(req: LabRequest): string {
  for (let i = req.messages.length - 1; i >= 0; i--) {
    const m = req.messages[i]!;
    if (m.role === 'user') return m.content;
  }
  return '';
}

/** The text of every message, for fingerprints and token estimates. */
export function requestText(req: LabRequest): string {
  return req.messages
    .map((m) => m.content + (m.role === 'assistant' ? m.toolCalls.map((c) => c.name + c.arguments).join('') : ''))
    .join('');
}

/** Attribute value from a readTags attrs string, e.g. `index="2"`. */
export function attr(attrs: string, name: string): string | undefined {
  return new RegExp(`${name}="([^"]*)"`).exec(attrs)?.[1];
}
