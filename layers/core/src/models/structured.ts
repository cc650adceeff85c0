// JSON replies validated against a zod schema, with one repair round-trip when the model slips.
import { z } from 'zod';
import type { ChatChoice, ModelGateway, ModelMessage, ToolSpec } from '../ports';
import type { Role, TokenUsage } from '../types';
import { addUsage } from './usage';

/** The model's reply could not be read as the schema, even after one repair call. */
export class ModelOutputError extends Error {
  override name = 'ModelOutputError';
  readonly role: Role;
  /** The last reply text (the repair reply). */
  readonly raw: string;
  /** Usage of both calls. */
  readonly usage: TokenUsage;

  constructor(role: Role, schemaName: string, problem: string, raw: string, usage: TokenUsage) {
    super(`${role} reply is not valid JSON for schema ${schemaName} (after one repair): ${problem}`);
    this.role = role;
    this.raw = raw;
    this.usage = usage;
  }
}

/**
 * The JSON schema sent as `response_format.json_schema.schema` (strict mode): zod's draft 2020-12
 * output without `$schema` and without the ±2^53 bounds zod adds to every integer. Throws for
 * schemas strict mode cannot express (an optional property: use `.nullable()` instead).
 */
export function toStrictJsonSchema(schema: z.ZodType): Record<string, unknown> {
  const json = z.toJSONSchema(schema) as Record<string, unknown>;
  delete json.$schema;
  const visit = (node: unknown, path: string): void => {
    if (Array.isArray(node)) {
      node.forEach((child, i) => visit(child, `${path}/${i}`));
      return;
    }
    if (node === null || typeof node !== 'object') return;
    const record = node as Record<string, unknown>;
    if (record.maximum === Number.MAX_SAFE_INTEGER) delete record.maximum;
    if (record.minimum === Number.MIN_SAFE_INTEGER) delete record.minimum;
    const isObject = record.type === 'object' || (Array.isArray(record.type) && record.type.includes('object'));
    if (isObject) {
      const properties = (record.properties ?? {}) as Record<string, unknown>;
      const required = new Set(Array.isArray(record.required) ? (record.required as string[]) : []);
      const optional = Object.keys(properties).filter((k) => !required.has(k));
      if (optional.length > 0) {
        throw new Error(
          `schema ${path || '<root>'}: optional properties (${optional.join(', ')}) are not allowed in strict mode; make them nullable`,
        );
      }
      if (record.additionalProperties === undefined) record.additionalProperties = false;
      else if (record.additionalProperties !== false) {
        throw new Error(`schema ${path || '<root>'}: strict mode needs additionalProperties: false`);
      }
    }
    for (const [key, value] of Object.entries(record)) {
      if (key === 'enum' || key === 'const' || key === 'default' || key === 'examples') continue;
      visit(value, `${path}/${key}`);
    }
  };
  visit(json, '');
  return json;
}

/** Candidate JSON texts in a reply, best first: the whole reply, fenced blocks, balanced {...}. */
export function jsonCandidates(text: string): string[] {
  const out: string[] = [];
  const cleaned = text.replace(/<think>[\s\S]*?<\/think>/gi, '').trim();
  if (cleaned) out.push(cleaned);
  for (const m of cleaned.matchAll(/```[a-zA-Z0-9_-]*[^\S\n]*\n?([\s\S]*?)```/g)) {
    const body = (m[1] ?? '').trim();
    if (body) out.push(body);
  }
  // Balanced objects from each '{' (strings and escapes respected); bounded.
  let from = cleaned.indexOf('{');
  for (let tries = 0; from !== -1 && tries < 50; tries++) {
    const end = balancedEnd(cleaned, from);
    if (end !== -1) out.push(cleaned.slice(from, end + 1));
    from = cleaned.indexOf('{', from + 1);
  }
  return [...new Set(out)];
}

function balancedEnd(text: string, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\') i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === '{') depth++;
    else if (ch === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 10)
    .map((i) => `${i.path.length > 0 ? i.path.join('.') : '(root)'}: ${i.message}`)
    .join('; ');
}

/** Reads a reply as the schema: `{ ok: true, value }` or `{ ok: false, error }`. */
export function parseStructured<T>(text: string, schema: z.ZodType<T>): { ok: true; value: T } | { ok: false; error: string } {
  let firstSchemaError: string | undefined;
  for (const candidate of jsonCandidates(text)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(candidate);
    } catch {
      continue;
    }
    const result = schema.safeParse(parsed);
    if (result.success) return { ok: true, value: result.data };
    firstSchemaError ??= describeIssues(result.error);
  }
  if (firstSchemaError !== undefined) return { ok: false, error: firstSchemaError };
  return { ok: false, error: text.trim() === '' ? 'the reply was empty' : 'no JSON object found in the reply' };
}

export async function structuredCall<T>(
  gateway: ModelGateway,
  role: Role,
  messages: ModelMessage[],
  schema: z.ZodType<T>,
  name: string,
  extra?: { tools?: ToolSpec[]; toolChoice?: 'auto' | 'none'; temperature?: number },
): Promise<{ value: T; usage: TokenUsage; raw: string }> {
  const jsonSchema = { name, schema: toStrictJsonSchema(schema) };
  const ask = (msgs: ModelMessage[]) =>
    gateway.chat(role, {
      messages: msgs,
      jsonSchema,
      ...(extra?.tools && extra.tools.length > 0 ? { tools: extra.tools, toolChoice: extra.toolChoice } : {}),
      ...(extra?.temperature !== undefined ? { temperature: extra.temperature } : {}),
    });

  const first = await ask(messages);
  const firstRaw = replyText(first.choices[0]);
  const firstParse = readChoice(first.choices[0], schema);
  if (firstParse.ok) return { value: firstParse.value, usage: first.usage, raw: firstRaw };

  const repair: ModelMessage[] = [
    ...messages,
    { role: 'assistant', content: firstRaw === '' ? '(empty reply)' : firstRaw },
    {
      role: 'user',
      content: `Your reply was not valid JSON for the schema: ${firstParse.error}. Reply again with only the JSON object.`,
    },
  ];
  const second = await ask(repair);
  const usage = addUsage(first.usage, second.usage);
  const secondRaw = replyText(second.choices[0]);
  const secondParse = readChoice(second.choices[0], schema);
  if (secondParse.ok) return { value: secondParse.value, usage, raw: secondRaw };
  throw new ModelOutputError(role, name, secondParse.error, secondRaw, usage);
}

function replyText(choice: ChatChoice | undefined): string {
  return choice?.content ?? '';
}

function readChoice<T>(choice: ChatChoice | undefined, schema: z.ZodType<T>): ReturnType<typeof parseStructured<T>> {
  const text = replyText(choice);
  if (text.trim() === '' && choice && choice.toolCalls.length > 0) {
    const names = choice.toolCalls.map((c) => c.name).join(', ');
    return { ok: false, error: `the reply called tools (${names}) instead of answering with the JSON object` };
  }
  return parseStructured(text, schema);
}
