// A user's Lambda function as a tool: the arguments are the event, the function's response the
// output. A function error (FunctionError, or an `{"errorMessage": …}` payload) is a tool error.
import { InvokeCommand, type LambdaClient } from '@aws-sdk/client-lambda';
import type { LambdaToolConfig } from '../config';
import { abortMessage, formatJson, requireServices } from './http-tool';
import type { Tool, ToolServices } from './registry';

/** The registry's own timer is a backstop: the tool's own timeout fires first with a clearer message. */
const TIMEOUT_MARGIN_MS = 1_000;
/** Characters of a function error kept in the message. */
const MAX_ERROR_CHARS = 500;

const ERROR_KEYS = new Set(['errorMessage', 'errorType', 'stackTrace', 'trace', 'requestId', 'cause']);

/** The error of a Lambda error payload (`{"errorType", "errorMessage", "stackTrace"}`), or undefined. */
export function functionErrorOf(payload: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(payload);
  } catch {
    return undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  if (typeof record.errorMessage !== 'string' || !Object.keys(record).every((k) => ERROR_KEYS.has(k))) return undefined;
  const type = typeof record.errorType === 'string' && record.errorType ? `${record.errorType}: ` : '';
  return `${type}${record.errorMessage}`.slice(0, MAX_ERROR_CHARS);
}

/** The `invokeLambda` service over an SDK client: a synchronous invoke, the payload as text. */
export function invokeLambdaWith(client: LambdaClient): ToolServices['invokeLambda'] {
  return async (functionArn, payload, signal) => {
    const result = await client.send(
      new InvokeCommand({ FunctionName: functionArn, InvocationType: 'RequestResponse', Payload: new TextEncoder().encode(payload) }),
      { abortSignal: signal },
    );
    const text = result.Payload ? new TextDecoder().decode(result.Payload) : '';
    if (result.FunctionError) {
      const detail = functionErrorOf(text) ?? (text.slice(0, MAX_ERROR_CHARS) || 'no error message');
      throw new Error(`function error (${result.FunctionError}): ${detail}`);
    }
    if (result.StatusCode !== undefined && (result.StatusCode < 200 || result.StatusCode > 299)) {
      throw new Error(`invoke returned status ${result.StatusCode}`);
    }
    return text;
  };
}

/** A function's response as tool output: a JSON string as its text, other JSON laid out, else as is. */
function formatPayload(text: string): string {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === 'string' ? value : formatJson(value);
  } catch {
    return text;
  }
}

export function lambdaTool(config: LambdaToolConfig): Tool {
  return {
    name: config.name,
    description: config.description,
    parameters: config.parameters,
    limits: { timeoutMs: config.timeoutMs + TIMEOUT_MARGIN_MS, maxOutputChars: config.maxOutputChars },
    async execute(args, ctx) {
      const services = requireServices(ctx, `the lambda tool ${config.name}`);
      const timeout = AbortSignal.timeout(config.timeoutMs);
      const signal = AbortSignal.any([ctx.signal, timeout]);
      let payload: string;
      try {
        payload = await services.invokeLambda(config.functionArn, JSON.stringify(args ?? {}), signal);
      } catch (error) {
        if (timeout.aborted || ctx.signal.aborted) {
          throw abortMessage(error, timeout, config.timeoutMs, ctx.signal, `the function ${config.functionArn}`);
        }
        const message = error instanceof Error ? error.message : String(error);
        throw new Error(message.startsWith('function error') ? message : `invoking ${config.functionArn} failed: ${message}`);
      }
      const functionError = functionErrorOf(payload);
      if (functionError) throw new Error(`function error: ${functionError}`);
      return formatPayload(payload);
    },
  };
}
