// Input format detection: one JSON line in, one NormalizedInput (or the reason it cannot be used) out.
//
// A line is a JSON object in one of these formats; the first whose key is present wins, in this order:
//
// - `openai-chat`   {"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//                   `content` is a string or an array of {"type": "text", "text": "..."} parts (joined
//                   with "\n"). A trailing assistant message is removed and becomes the reference
//                   (unless the line has `reference`); the conversation must then end with a user message.
// - `sharegpt`      {"conversations": [{"from": "human"|"gpt"|"system", "value": "..."}, ...]}
//                   `from` may also be user, assistant, chatgpt or bing. Same trailing-assistant rule.
// - `mt-bench`      {"turns": ["first question", "follow-up", ...], "question_id"?, "category"?, "reference"?: [...]}
//                   Only the first turn is the prompt (later turns depend on the model's own first
//                   answer); the later turns go to `metadata.turns`. `question_id` is the id (unless the
//                   line has `id`), `reference[0]` the reference, `reference[1..]` go to `metadata.turnReferences`.
// - `alpaca`        {"instruction": "...", "input"?: "...", "output"?: "..."}
//                   The prompt is the instruction, plus "\n\n" and the input when the input is not blank;
//                   `output` is the reference.
// - `question-answer` {"question": "...", "answer"?: "..."}
//                   `answer` is the reference; a GSM8K-style answer ending in `#### <number>` gives just that
//                   number (commas removed) as the reference, and the full answer goes to `metadata.solution`.
// - `prompt`        {"prompt": "..."} or {"prompt": [chat messages]} (read like `messages` above).
//
// Optional on every format:
// - `id`        string or number; default `line-<n>`.
// - `reference` string or number; takes precedence over a reference the format derives.
// - `domain` or `category`  string (`domain` wins when both are set).
// - `metadata`  object; the fields the format derives (`turns`, `solution`...) are added to it.
// - `images` (array) or `image`: s3://bucket/key, https:// or data:image/...;base64 URLs; chat
//   content parts of type `image_url` are collected too. Target and judge see them as image content.
// A `null` optional field counts as absent.
import { clip, describe, has, isObject, parseObjectLine, typeName, type Json, type JsonObject } from './json';
import type { ChatMessage, InputFormat, InvalidLine, NormalizedInput } from '../types';
import { excerptOf } from './lines';

export type NormalizeResult = { ok: true; input: NormalizedInput } | { ok: false; invalid: InvalidLine };

/** Longest message (or prompt) accepted, in characters. */
export const MAX_CONTENT_CHARS = 200_000;
/** Most messages (or turns) accepted in one line. */
export const MAX_MESSAGES = 200;
/** Longest accepted `id`, in characters (ids become storage keys). */
export const MAX_ID_CHARS = 256;

/** Keys that select a format, in the order the no-format message lists them. */
const FORMAT_KEYS = ['prompt', 'instruction', 'question', 'messages', 'conversations', 'turns'] as const;


/** A validation failure: `reason` is the InvalidLine reason. */
class Invalid extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

function fail(reason: string): never {
  throw new Invalid(reason);
}

/** Read one line of an input file: detect its format and normalize it, or say why it cannot be used. */
export function normalizeLine(text: string, line: number): NormalizeResult {
  try {
    return { ok: true, input: normalize(text, line) };
  } catch (err) {
    if (!(err instanceof Invalid)) throw err;
    return { ok: false, invalid: { line, reason: err.reason, excerpt: excerptOf(text) } };
  }
}

function normalize(text: string, line: number): NormalizedInput {
  const json = parseObjectLine(text);
  if (!json.ok) fail(json.reason);
  const obj = json.value;

  const format = detect(obj);
  const common = commonFields(obj, format);
  partImages = [];
  const parsed = PARSERS[format](obj);
  const images = [...(common.images ?? []), ...partImages];
  if (images.length > MAX_IMAGES) fail(`too many images: ${images.length}, at most ${MAX_IMAGES}`);

  const reference = common.reference ?? parsed.reference;
  const metadata = { ...common.metadata, ...parsed.metadata };
  const input: NormalizedInput = {
    id: common.id ?? parsed.id ?? `line-${line}`,
    line,
    format,
    messages: parsed.messages,
  };
  if (reference !== undefined) input.reference = reference;
  if (common.domain !== undefined) input.domain = common.domain;
  if (Object.keys(metadata).length > 0) input.metadata = metadata;
  if (images.length > 0) input.images = images;
  return input;
}

export const MAX_IMAGES = 16;
/** Image URLs found in chat content parts while the current line is parsed (parsing is synchronous). */
let partImages: string[] = [];

/** An image is an S3 object (`s3://bucket/key`), an https URL, or a base64 data URL. */
function imageRef(field: string, value: Json): string {
  if (typeof value !== 'string') fail(`field "${field}" must be a string (s3://, https:// or data: URL), got ${typeName(value)}`);
  const v = value.trim();
  if (/^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]\/.+/.test(v) || /^https:\/\/[^\s]+$/.test(v) || /^data:image\/(png|jpe?g|gif|webp);base64,[A-Za-z0-9+/=]+$/.test(v)) {
    return v;
  }
  return fail(`field "${field}" must be an s3://bucket/key, https:// or data:image/...;base64 URL, got ${describe(clip(v, 60))}`);
}

function detect(obj: JsonObject): InputFormat {
  if (has(obj, 'messages')) return 'openai-chat';
  if (has(obj, 'conversations')) return 'sharegpt';
  if (has(obj, 'turns')) return 'mt-bench';
  if (has(obj, 'instruction')) return 'alpaca';
  if (has(obj, 'question')) return 'question-answer';
  if (has(obj, 'prompt')) return 'prompt';
  const keys = Object.keys(obj);
  const named = keys.slice(0, 10).map((k) => JSON.stringify(clip(k, 40)));
  const more = keys.length > 10 ? ` and ${keys.length - 10} more` : '';
  const got = keys.length === 0 ? 'the object is empty' : `the line has keys ${named.join(', ')}${more}`;
  return fail(`no known format: expected one of ${FORMAT_KEYS.join(', ')}; ${got}`);
}

interface Common {
  images?: string[];
  id?: string;
  reference?: string;
  domain?: string;
  metadata?: Record<string, unknown>;
}

function commonFields(obj: JsonObject, format: InputFormat): Common {
  const common: Common = {};
  const id = optional(obj, 'id');
  if (id !== undefined) common.id = idOf('id', id);
  // mt-bench's `reference` is a list, one per turn: its parser reads it.
  const reference = format === 'mt-bench' ? undefined : optional(obj, 'reference');
  if (reference !== undefined) common.reference = textOrNumber('reference', reference);
  for (const key of ['domain', 'category'] as const) {
    const v = optional(obj, key);
    if (v === undefined || common.domain !== undefined) continue;
    if (typeof v !== 'string') fail(`field "${key}" must be a string, got ${typeName(v)}`);
    const domain = v.trim();
    if (domain !== '') common.domain = domain;
  }
  const metadata = optional(obj, 'metadata');
  if (metadata !== undefined) {
    if (!isObject(metadata)) fail(`field "metadata" must be an object, got ${typeName(metadata)}`);
    common.metadata = metadata;
  }
  const images = optional(obj, 'images');
  if (images !== undefined) {
    if (!Array.isArray(images)) fail(`field "images" must be an array of image URLs, got ${typeName(images)}`);
    common.images = images.map((img, i) => imageRef(`images[${i}]`, img));
  }
  const image = optional(obj, 'image');
  if (image !== undefined) common.images = [...(common.images ?? []), imageRef('image', image)];
  return common;
}

interface Parsed {
  messages: ChatMessage[];
  id?: string;
  reference?: string;
  metadata?: Record<string, unknown>;
}

const PARSERS: Record<InputFormat, (obj: JsonObject) => Parsed> = {
  'openai-chat': (obj) => conversation('messages', obj.messages!, openAiMessage, 'content'),
  sharegpt: (obj) => conversation('conversations', obj.conversations!, shareGptMessage, 'value'),
  'mt-bench': mtBench,
  alpaca,
  'question-answer': questionAnswer,
  prompt: (obj) => {
    const p = obj.prompt!;
    if (Array.isArray(p)) return conversation('prompt', p, openAiMessage, 'content');
    if (typeof p !== 'string') fail(`field "prompt" must be a string or an array of messages, got ${typeName(p)}`);
    return { messages: [{ role: 'user', content: promptText('prompt', p) }] };
  },
};

// ---- chat formats ----

const OPENAI_ROLES: readonly ChatMessage['role'][] = ['system', 'user', 'assistant'];

function openAiMessage(field: string, m: JsonObject): ChatMessage {
  const role = required(m, 'role', field);
  if (typeof role !== 'string' || !(OPENAI_ROLES as readonly string[]).includes(role)) {
    fail(`field "${field}.role" must be one of ${OPENAI_ROLES.join(', ')}, got ${describe(role)}`);
  }
  return { role: role as ChatMessage['role'], content: messageContent(`${field}.content`, required(m, 'content', field)) };
}

/** ShareGPT speaker names (compared case-insensitively) and the roles they map to. */
const SHAREGPT_ROLES: Record<string, ChatMessage['role']> = {
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  chatgpt: 'assistant',
  bing: 'assistant',
  system: 'system',
};

function shareGptMessage(field: string, m: JsonObject): ChatMessage {
  const from = required(m, 'from', field);
  const role = typeof from === 'string' ? SHAREGPT_ROLES[from.toLowerCase()] : undefined;
  if (role === undefined) {
    fail(`field "${field}.from" must be one of ${Object.keys(SHAREGPT_ROLES).join(', ')}, got ${describe(from)}`);
  }
  const value = required(m, 'value', field);
  if (typeof value !== 'string') fail(`field "${field}.value" must be a string, got ${typeName(value)}`);
  return { role, content: limited(`${field}.value`, value) };
}

/** A chat in either shape: validate every message, then split off a trailing assistant reference. */
function conversation(
  field: string,
  list: Json,
  read: (field: string, m: JsonObject) => ChatMessage,
  contentKey: string,
): Parsed {
  if (!Array.isArray(list)) fail(`field "${field}" must be an array, got ${typeName(list)}`);
  if (list.length === 0) fail(`field "${field}" is empty`);
  if (list.length > MAX_MESSAGES) {
    fail(`field "${field}" has ${list.length} messages, over the ${MAX_MESSAGES}-message limit`);
  }
  const messages = list.map((m, i) => {
    if (!isObject(m)) fail(`field "${field}[${i}]" must be an object, got ${typeName(m)}`);
    return read(`${field}[${i}]`, m);
  });
  const parsed: Parsed = { messages };
  if (messages[messages.length - 1]!.role === 'assistant') {
    const answer = messages.pop()!.content;
    if (answer.trim() !== '') parsed.reference = answer;
  }
  const last = messages[messages.length - 1];
  if (last?.role !== 'user') {
    const what =
      last === undefined ? 'has no user message' : `ends with ${last.role === 'assistant' ? 'an' : 'a'} ${last.role} message`;
    fail(`field "${field}" must end with a user message (then optionally an assistant reference), but ${what}`);
  }
  if (last.content.trim() === '') fail(`field "${field}[${messages.length - 1}].${contentKey}" is empty`);
  return parsed;
}

function messageContent(field: string, content: Json): string {
  if (typeof content === 'string') return limited(field, content);
  if (!Array.isArray(content)) {
    fail(`field "${field}" must be a string or an array of text parts, got ${typeName(content)}`);
  }
  const texts = content.map((part, i) => {
    const at = `${field}[${i}]`;
    if (!isObject(part)) fail(`field "${at}" must be a text part object, got ${typeName(part)}`);
    if (part.type === 'image_url') {
      const url = isObject(part.image_url) ? part.image_url.url : part.image_url;
      partImages.push(imageRef(`${at}.image_url.url`, url ?? null));
      return undefined;
    }
    if (part.type !== 'text') fail(`field "${at}" has type ${describe(part.type)}: only text and image_url parts are supported`);
    if (typeof part.text !== 'string') fail(`field "${at}.text" must be a string, got ${typeName(part.text)}`);
    return part.text;
  });
  return limited(field, texts.filter((t) => t !== undefined).join('\n'));
}

// ---- single-prompt formats ----

function mtBench(obj: JsonObject): Parsed {
  const turns = obj.turns!;
  if (!Array.isArray(turns)) fail(`field "turns" must be an array of strings, got ${typeName(turns)}`);
  if (turns.length === 0) fail('field "turns" is empty');
  if (turns.length > MAX_MESSAGES) fail(`field "turns" has ${turns.length} turns, over the ${MAX_MESSAGES}-turn limit`);
  const texts = turns.map((t, i) => {
    if (typeof t !== 'string') fail(`field "turns[${i}]" must be a string, got ${typeName(t)}`);
    return limited(`turns[${i}]`, t);
  });
  const parsed: Parsed = { messages: [{ role: 'user', content: promptText('turns[0]', texts[0]!) }] };
  const metadata: Record<string, unknown> = {};
  if (texts.length > 1) metadata.turns = texts.slice(1);

  const questionId = optional(obj, 'question_id');
  if (questionId !== undefined) parsed.id = idOf('question_id', questionId);

  const reference = optional(obj, 'reference');
  if (typeof reference === 'string' || typeof reference === 'number') {
    parsed.reference = textOrNumber('reference', reference);
  } else if (Array.isArray(reference)) {
    const refs = reference.map((r, i) => {
      if (typeof r !== 'string') fail(`field "reference[${i}]" must be a string, got ${typeName(r)}`);
      return r;
    });
    if (refs[0] !== undefined && refs[0].trim() !== '') parsed.reference = refs[0];
    if (refs.length > 1) metadata.turnReferences = refs.slice(1);
  } else if (reference !== undefined) {
    fail(`field "reference" must be a string or an array of strings, got ${typeName(reference)}`);
  }
  if (Object.keys(metadata).length > 0) parsed.metadata = metadata;
  return parsed;
}

function alpaca(obj: JsonObject): Parsed {
  const instruction = obj.instruction!;
  if (typeof instruction !== 'string') fail(`field "instruction" must be a string, got ${typeName(instruction)}`);
  let content = promptText('instruction', instruction);
  const input = optional(obj, 'input');
  if (input !== undefined) {
    if (typeof input !== 'string') fail(`field "input" must be a string, got ${typeName(input)}`);
    if (input.trim() !== '') content = `${content}\n\n${input}`;
  }
  const parsed: Parsed = { messages: [{ role: 'user', content: limited('instruction" + "input', content) }] };
  const output = optional(obj, 'output');
  if (output !== undefined) {
    const reference = textOrNumber('output', output);
    if (reference !== undefined) parsed.reference = reference;
  }
  return parsed;
}

/** GSM8K's final answer marker: `#### 1,234` (the last one counts). */
const FINAL_ANSWER = /####\s*\$?\s*(-?\d[\d,]*(?:\.\d+)?)/g;

function questionAnswer(obj: JsonObject): Parsed {
  const question = obj.question!;
  if (typeof question !== 'string') fail(`field "question" must be a string, got ${typeName(question)}`);
  const parsed: Parsed = { messages: [{ role: 'user', content: promptText('question', question) }] };
  const answerField = optional(obj, 'answer');
  const answer = answerField === undefined ? undefined : textOrNumber('answer', answerField);
  if (answer !== undefined) {
    const finals = [...answer.matchAll(FINAL_ANSWER)];
    const final = finals[finals.length - 1]?.[1]?.replaceAll(',', '');
    parsed.reference = final ?? answer;
    if (final !== undefined) parsed.metadata = { solution: answer };
  }
  return parsed;
}

// ---- helpers ----

/** The text the target must answer: not blank, not over the limit. */
function promptText(field: string, text: string): string {
  if (text.trim() === '') fail(`field "${field}" is empty`);
  return limited(field, text);
}

function limited(field: string, text: string): string {
  if (text.length > MAX_CONTENT_CHARS) {
    fail(`field "${field}" is ${text.length} characters, over the ${MAX_CONTENT_CHARS}-character limit`);
  }
  return text;
}

function idOf(field: string, v: Json): string {
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') fail(`field "${field}" must be a string or a number, got ${typeName(v)}`);
  const id = v.trim();
  if (id === '') fail(`field "${field}" is empty`);
  if (id.length > MAX_ID_CHARS) {
    fail(`field "${field}" is ${id.length} characters, over the ${MAX_ID_CHARS}-character limit`);
  }
  return id;
}

/** A string or number field as text; blank counts as absent. */
function textOrNumber(field: string, v: Json): string | undefined {
  if (typeof v === 'number') return String(v);
  if (typeof v !== 'string') fail(`field "${field}" must be a string or a number, got ${typeName(v)}`);
  return v.trim() === '' ? undefined : v;
}


/** An optional field: absent and `null` both give undefined. */
function optional(obj: JsonObject, key: string): Json | undefined {
  return has(obj, key) && obj[key] !== null ? obj[key] : undefined;
}

function required(m: JsonObject, key: string, field: string): Json {
  if (!has(m, key)) fail(`field "${field}.${key}" is missing`);
  return m[key]!;
}




