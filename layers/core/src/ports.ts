// The small interfaces the stages depend on. The AWS adapters in ./adapters implement them;
// tests may implement them in memory.
import type { Readable } from 'node:stream';

export interface BlobStore {
  put(bucket: string, key: string, body: string | Uint8Array, contentType?: string): Promise<void>;
  /** Streams a large body (multipart upload) without holding it in memory. */
  putStream(bucket: string, key: string, body: Readable, contentType?: string): Promise<void>;
  getText(bucket: string, key: string): Promise<string>;
  /** `undefined` when the object does not exist. */
  getTextIfExists(bucket: string, key: string): Promise<string | undefined>;
  /** A byte range [start, end) or the whole object as a stream. */
  getStream(bucket: string, key: string, range?: { start: number; end: number }): Promise<Readable>;
  head(bucket: string, key: string): Promise<{ size: number; etag?: string; versionId?: string; metadata?: Record<string, string> } | undefined>;
  list(bucket: string, prefix: string): Promise<string[]>;
  /** A time-limited https URL to GET the object (for images handed to model endpoints). */
  presign(bucket: string, key: string, expiresSeconds: number): Promise<string>;
}

/** Sends JSON messages to a named queue (the name is a logical stage name, see resources.ts). */
export interface QueueSender {
  send(queue: QueueName, messages: readonly unknown[]): Promise<void>;
}

export type QueueName = 'ingest' | 'generate' | 'judge' | 'feedback' | 'finalize';

export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

const LEVELS = { info: 0, warn: 1, error: 2, silent: 3 } as const;
export type LogLevel = keyof typeof LEVELS;

/** Structured JSON log lines (CloudWatch Logs Insights reads the fields) at or above `level`. */
export function jsonLogger(level: LogLevel = 'info'): Logger {
  const at = (l: Exclude<LogLevel, 'silent'>, out: (line: string) => void) => (message: string, fields?: Record<string, unknown>) => {
    if (LEVELS[l] >= LEVELS[level]) out(JSON.stringify({ level: l.toUpperCase(), message, ...fields }));
  };
  return { info: at('info', console.log), warn: at('warn', console.warn), error: at('error', console.error) };
}

// ---------- models ----------

export type ContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: { url: string } };

export interface ToolCall {
  id: string;
  name: string;
  /** Raw JSON text of the arguments, as the model produced it (may be invalid). */
  arguments: string;
}

export type ModelMessage =
  | { role: 'system' | 'user'; content: string | ContentPart[] }
  | { role: 'assistant'; content: string | null; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

/** A function the model may call (OpenAI function-calling shape). */
export interface ToolSpec {
  name: string;
  description: string;
  /** JSON schema of the arguments object. */
  parameters: Record<string, unknown>;
}

export interface ChatRequest {
  messages: ModelMessage[];
  /** Choices wanted in one request; the gateway falls back to n requests when the endpoint has no `n`. */
  n?: number;
  tools?: ToolSpec[];
  /** `none` forbids tool calls while `tools` (needed to read a tool-call history) stay declared. */
  toolChoice?: 'auto' | 'none';
  /** Structured output: the reply must be JSON matching this schema. */
  jsonSchema?: { name: string; schema: Record<string, unknown> };
  temperature?: number;
  seed?: number;
}

export interface ChatChoice {
  content: string | null;
  toolCalls: ToolCall[];
}

export interface ChatResult {
  choices: ChatChoice[];
  usage: import('./types').TokenUsage;
}

/** One OpenAI-compatible endpoint per role; retries and usage accounting live behind this. */
export interface ModelGateway {
  chat(role: import('./types').Role, request: ChatRequest): Promise<ChatResult>;
}
