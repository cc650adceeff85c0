// Judge evaluation: how often the configured judge (its prompt, tools and bias controls) prefers
// the labeled `chosen` answer of a file of labeled preference pairs. Every pair is judged in both
// orders (swap judging is forced on), so position consistency is always measured.
//
// A line is a JSON object in one of these shapes:
//
// - pair           {"prompt": "..." | [chat messages], "chosen": ANSWER, "rejected": ANSWER}
//                  ANSWER is a string or a one-message list [{"role": "assistant", "content": "..."}]
//                  (TRL's standard and conversational preference formats, anyprefer's pairs.trl.jsonl).
// - trl-implicit   {"chosen": [messages..., assistant], "rejected": [messages..., assistant]}: TRL's
//                  implicit prompt; both conversations share every message but the last.
// - openai         {"input": {"messages": [...]}, "preferred_output": ANSWER, "non_preferred_output": ANSWER}
//                  OpenAI preference fine-tuning (DPO), anyprefer's pairs.openai.jsonl.
//
// Optional on every shape, as in a run's input (input/formats.ts): `reference` (string or number,
// what the judge's `reference` tool returns), `id`, `domain` or `category`, `metadata`, `images`.
// The prompt is read by normalizeLine, so prompts follow the rules of a run's `prompt` format.
import { clip, describe, has, isObject, parseObjectLine, typeName, type Json, type JsonObject } from './input/json';
import type { RunConfig } from './config';
import { MAX_CONTENT_CHARS, normalizeLine } from './input/formats';
import { excerptOf, readLines, type ReadLinesOptions } from './input/lines';
import { addUsage, emptyUsage } from './models/usage';
import type { ChatRequest, ChatResult, ModelGateway } from './ports';
import { judgeWithBiasControls } from './stages/judge';
import type { ToolRegistry } from './tools/registry';
import type { InvalidLine, NormalizedInput, Role, TokenUsage } from './types';

export type LabeledShape = 'pair' | 'trl-implicit' | 'openai';

/** One labeled preference: the prompt as a run would read it, and the labeled answers. */
export interface LabeledExample {
  id: string;
  line: number;
  shape: LabeledShape;
  /** The prompt (and reference, domain, images) exactly as a run's judge would see them. */
  input: NormalizedInput;
  /** The answer the label prefers. */
  chosen: string;
  rejected: string;
}

export type LabeledLine = { ok: true; example: LabeledExample } | { ok: false; invalid: InvalidLine };


class Invalid extends Error {}

function fail(reason: string): never {
  throw new Invalid(reason);
}

/** Fields copied to the prompt object normalizeLine reads. */
const PASSED_THROUGH = ['id', 'reference', 'domain', 'category', 'metadata', 'images', 'image'] as const;

/** Read one line of a labeled-preference file, or say (with the line number) why it cannot be used. */
export function parseLabeledLine(text: string, line: number): LabeledLine {
  const invalid = (reason: string): LabeledLine => ({ ok: false, invalid: { line, reason, excerpt: excerptOf(text) } });
  try {
    const parsed = parseObjectLine(text);
    if (!parsed.ok) fail(parsed.reason);
    const obj = parsed.value;

    let shape: LabeledShape;
    let prompt: Json;
    let chosen: string;
    let rejected: string;
    /** How normalizeLine's `prompt` is called in this shape, for its messages. */
    let promptField = 'prompt';
    if (has(obj, 'preferred_output') || has(obj, 'non_preferred_output')) {
      shape = 'openai';
      const input = present(obj, 'input');
      if (!isObject(input)) fail(`field "input" must be an object with "messages", got ${typeName(input)}`);
      prompt = present(input, 'messages', 'input.messages');
      promptField = 'input.messages';
      chosen = answerText('preferred_output', present(obj, 'preferred_output'));
      rejected = answerText('non_preferred_output', present(obj, 'non_preferred_output'));
    } else if (has(obj, 'chosen') || has(obj, 'rejected')) {
      const c = present(obj, 'chosen');
      const r = present(obj, 'rejected');
      if (has(obj, 'prompt') && obj.prompt !== null) {
        shape = 'pair';
        prompt = obj.prompt!;
        chosen = answerText('chosen', c);
        rejected = answerText('rejected', r);
      } else {
        shape = 'trl-implicit';
        if (!Array.isArray(c) || !Array.isArray(r)) {
          fail('field "prompt" is missing (without it, "chosen" and "rejected" must be whole conversations that share the prompt messages)');
        }
        if (c.length < 2 || r.length < 2) {
          fail('field "prompt" is missing, and "chosen" and "rejected" are not conversations with prompt messages before the answer');
        }
        const shared = c.slice(0, -1);
        if (JSON.stringify(shared) !== JSON.stringify(r.slice(0, -1))) {
          fail('"chosen" and "rejected" conversations must share every message but the last (the TRL implicit prompt)');
        }
        prompt = shared;
        promptField = 'chosen';
        chosen = answerText(`chosen[${c.length - 1}]`, [c[c.length - 1]!]);
        rejected = answerText(`rejected[${r.length - 1}]`, [r[r.length - 1]!]);
      }
    } else {
      const keys = Object.keys(obj);
      const got = keys.length === 0 ? 'the object is empty' : `the line has keys ${keys.slice(0, 10).map((k) => JSON.stringify(clip(k, 40))).join(', ')}`;
      fail(
        'no labeled pair: expected "prompt", "chosen" and "rejected" (TRL), or "input", "preferred_output" and ' +
          `"non_preferred_output" (OpenAI DPO); ${got}`,
      );
    }
    if (chosen === rejected) fail('"chosen" and "rejected" are the same text: there is no preference to check');

    if (Array.isArray(prompt)) {
      const last = prompt[prompt.length - 1];
      if (isObject(last) && last.role === 'assistant') {
        fail(`field "${promptField}" must end with a user message: the answers follow it, so a trailing assistant message has no place`);
      }
      if (has(obj, 'images')) prompt = prompt.map(withoutImagePlaceholders);
    }
    const promptObject: JsonObject = { prompt };
    for (const key of PASSED_THROUGH) if (has(obj, key)) promptObject[key] = obj[key]!;
    const normalized = normalizeLine(JSON.stringify(promptObject), line);
    if (!normalized.ok) {
      const reason = promptField === 'prompt' ? normalized.invalid.reason : normalized.invalid.reason.replaceAll('"prompt', `"${promptField}`);
      fail(reason);
    }
    const input = normalized.input;
    return { ok: true, example: { id: input.id, line, shape, input, chosen, rejected } };
  } catch (err) {
    if (err instanceof Invalid) return invalid(err.message);
    throw err;
  }
}

/** The lines of a labeled-preference file (a byte stream), parsed one by one as they arrive. */
export async function* readLabeledLines(body: AsyncIterable<Uint8Array>, opts: ReadLinesOptions = {}): AsyncGenerator<LabeledLine> {
  for await (const raw of readLines(body, opts)) {
    if ('error' in raw) yield { ok: false, invalid: { line: raw.line, reason: raw.error, excerpt: raw.excerpt } };
    else yield parseLabeledLine(raw.text, raw.line);
  }
}

/** An answer: a non-blank string, or one assistant message whose content is a string or text parts. */
function answerText(field: string, value: Json): string {
  let text: string;
  if (typeof value === 'string') text = value;
  else if (Array.isArray(value)) {
    if (value.length !== 1) fail(`field "${field}" must be one assistant message, got ${value.length} messages`);
    const m = value[0]!;
    if (!isObject(m)) fail(`field "${field}[0]" must be a message object, got ${typeName(m)}`);
    if (m.role !== 'assistant') fail(`field "${field}[0].role" must be "assistant", got ${describe(m.role)}`);
    text = messageText(`${field}[0].content`, present(m, 'content', `${field}[0].content`));
  } else {
    fail(`field "${field}" must be a string or a list with one assistant message, got ${typeName(value)}`);
  }
  if (text.trim() === '') fail(`field "${field}" is empty`);
  if (text.length > MAX_CONTENT_CHARS) fail(`field "${field}" is ${text.length} characters, over the ${MAX_CONTENT_CHARS}-character limit`);
  return text;
}

function messageText(field: string, content: Json): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) fail(`field "${field}" must be a string or an array of text parts, got ${typeName(content)}`);
  return content
    .map((part, i) => {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
        fail(`field "${field}[${i}]" must be a text part {"type": "text", "text": "..."}`);
      }
      return part.text;
    })
    .join('\n');
}

/** TRL's vision form marks images with {"type": "image"} parts and lists them in `images`. */
function withoutImagePlaceholders(message: Json): Json {
  if (!isObject(message) || !Array.isArray(message.content)) return message;
  return { ...message, content: message.content.filter((p) => !(isObject(p) && p.type === 'image' && Object.keys(p).length === 1)) };
}

// ---------- evaluation ----------

/** z for a two-sided 95% interval. */
export const Z_95 = 1.959963984540054;

/** Wilson score interval for `successes` out of `n` (95% by default); [0, 1] when n is 0. */
export function wilsonInterval(successes: number, n: number, z: number = Z_95): { low: number; high: number } {
  if (!Number.isInteger(n) || n < 0 || successes < 0 || successes > n) throw new RangeError(`invalid proportion ${successes}/${n}`);
  if (n === 0) return { low: 0, high: 1 };
  const p = successes / n;
  const z2 = z * z;
  const denominator = 1 + z2 / n;
  const center = (p + z2 / (2 * n)) / denominator;
  const half = (z / denominator) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return { low: Math.max(0, center - half), high: Math.min(1, center + half) };
}

export interface ExampleVerdict {
  line: number;
  id: string;
  /** The judge scored the labeled chosen answer strictly higher (averaged over both orders). */
  agrees: boolean;
  /** Exact score tie: counted as disagreement. */
  tie: boolean;
  /** Both orders gave the same preferred answer. */
  positionConsistent: boolean;
  chosenScore: number;
  rejectedScore: number;
  /** Prompt + completion tokens of this example's judge calls. */
  tokens: number;
}

export interface ExampleError {
  line: number;
  id: string;
  error: string;
}

export interface EvaluationReport {
  /** Examples the judge scored (invalid lines and model errors excluded). */
  n: number;
  /** Share of the n examples where the judge preferred the labeled chosen answer; null when n is 0. */
  agreement: number | null;
  /** Wilson score 95% interval of the agreement. */
  ciLow: number;
  ciHigh: number;
  /** Share of the n examples where both orders gave the same preference; null when n is 0. */
  positionConsistency: number | null;
  agreed: number;
  ties: number;
  /** Prompt + completion tokens over every judge call (failed examples included). */
  tokens: number;
  /** Model calls made for judging (failed examples included). */
  calls: number;
  usage: TokenUsage;
  perExample: ExampleVerdict[];
  errors: ExampleError[];
  invalid: InvalidLine[];
}

export interface EvaluateOptions {
  gateway: ModelGateway;
  tools: ToolRegistry;
  /** The run config whose judge (model, prompt, tools, shuffle) is evaluated; swap is forced on. */
  config: RunConfig;
  /** Examples, or parsed lines (whose invalid ones are reported); read lazily, `concurrency` at a time. */
  examples: Iterable<LabeledExample | LabeledLine> | AsyncIterable<LabeledExample | LabeledLine>;
  /** Examples judged at once. Default 4. */
  concurrency?: number;
  /** Called as each example is judged or fails. */
  onResult?: (result: ExampleVerdict | ExampleError) => void;
}

export const DEFAULT_EVAL_CONCURRENCY = 4;

/** Judges every labeled pair in both orders and measures agreement with the labels. */
export async function evaluateJudge(opts: EvaluateOptions): Promise<EvaluationReport> {
  const concurrency = opts.concurrency ?? DEFAULT_EVAL_CONCURRENCY;
  if (!Number.isInteger(concurrency) || concurrency < 1) throw new RangeError(`concurrency must be a positive integer, got ${concurrency}`);
  const config: RunConfig = { ...opts.config, judging: { ...opts.config.judging, swap: true } };
  const gateway = new CountingGateway(opts.gateway);
  const perExample: ExampleVerdict[] = [];
  const errors: ExampleError[] = [];
  const invalid: InvalidLine[] = [];

  const pull = serialized(iteratorOf(opts.examples));
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const next = await pull();
      if (next.done) return;
      const item = next.value;
      if ('ok' in item && !item.ok) {
        invalid.push(item.invalid);
        continue;
      }
      const example = 'ok' in item ? item.example : item;
      let result: ExampleVerdict | ExampleError;
      try {
        result = await judgeExample(gateway, opts.tools, config, example);
        perExample.push(result);
      } catch (err) {
        result = { line: example.line, id: example.id, error: err instanceof Error ? err.message : String(err) };
        errors.push(result);
      }
      opts.onResult?.(result);
    }
  };
  try {
    await Promise.all(Array.from({ length: concurrency }, worker));
  } finally {
    stopped = true;
  }

  const byLine = <T extends { line: number }>(a: T, b: T) => a.line - b.line;
  perExample.sort(byLine);
  errors.sort(byLine);
  invalid.sort(byLine);
  const n = perExample.length;
  const agreed = perExample.filter((e) => e.agrees).length;
  const consistent = perExample.filter((e) => e.positionConsistent).length;
  const ci = wilsonInterval(agreed, n);
  return {
    n,
    agreement: n > 0 ? agreed / n : null,
    ciLow: ci.low,
    ciHigh: ci.high,
    positionConsistency: n > 0 ? consistent / n : null,
    agreed,
    ties: perExample.filter((e) => e.tie).length,
    tokens: gateway.usage.promptTokens + gateway.usage.completionTokens,
    calls: gateway.usage.calls,
    usage: gateway.usage,
    perExample,
    errors,
    invalid,
  };
}

async function judgeExample(gateway: ModelGateway, tools: ToolRegistry, config: RunConfig, example: LabeledExample): Promise<ExampleVerdict> {
  const judged = await judgeWithBiasControls({
    gateway,
    tools,
    config,
    judgePrompt: config.prompts.judge,
    input: example.input,
    candidates: [
      { index: 0, content: example.chosen },
      { index: 1, content: example.rejected },
    ],
    seedKey: ['eval', example.line, example.id],
  });
  const score = (index: number) => {
    const s = judged.judgement.scores.find((x) => x.index === index);
    if (!s) throw new Error(`the judge gave no score for the ${index === 0 ? 'chosen' : 'rejected'} answer`);
    return s.score;
  };
  const chosenScore = score(0);
  const rejectedScore = score(1);
  const tie = chosenScore === rejectedScore;
  return {
    line: example.line,
    id: example.id,
    agrees: !tie && judged.judgement.chosen === 0,
    tie,
    positionConsistent: judged.positionConsistent ?? true,
    chosenScore,
    rejectedScore,
    tokens: judged.usage.promptTokens + judged.usage.completionTokens,
  };
}

/** Sums the usage of every call, including what a failed call reports having spent. */
class CountingGateway implements ModelGateway {
  usage: TokenUsage = emptyUsage();
  constructor(private readonly inner: ModelGateway) {}
  async chat(role: Role, request: ChatRequest): Promise<ChatResult> {
    try {
      const result = await this.inner.chat(role, request);
      this.usage = addUsage(this.usage, result.usage);
      return result;
    } catch (err) {
      const spent = (err as { usage?: Partial<TokenUsage> } | null)?.usage;
      if (spent && typeof spent.calls === 'number' && typeof spent.promptTokens === 'number' && typeof spent.completionTokens === 'number') {
        this.usage = addUsage(this.usage, spent as TokenUsage);
      }
      throw err;
    }
  }
}

function iteratorOf<T>(source: Iterable<T> | AsyncIterable<T>): AsyncIterator<T> | Iterator<T> {
  return Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
}

/** `next()` one call at a time, whatever the iterator: workers share it. */
function serialized<T>(iterator: AsyncIterator<T> | Iterator<T>): () => Promise<IteratorResult<T>> {
  let last: Promise<unknown> = Promise.resolve();
  return () => {
    const next = last.then(() => iterator.next());
    last = next.catch(() => undefined);
    return next;
  };
}

// ---- helpers ----


/** A field that must be there (not null). */
function present(obj: JsonObject, key: string, field: string = key): Json {
  if (!has(obj, key) || obj[key] === null) fail(`field "${field}" is missing`);
  return obj[key]!;
}




