// Shared fixtures for the offline model lab tests: real GSM8K problems and requests built with the
// pipeline's own prompt builders (the contract the lab reads).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';
import { parseChatRequest, type LabRequest } from '../../../local/lab/protocol';
import type { ChatMessage } from '../../../layers/core/src/types';

export const GSM8K = fileURLToPath(new URL('../../../examples/data/gsm8k-test.jsonl', import.meta.url));

export interface Row {
  question: string;
  answer: string;
}

export const rows: Row[] = readFileSync(GSM8K, 'utf8')
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l) as Row);

export const gold = (row: Row): number => Number(row.answer.split('####')[1]!.trim().replace(/,/g, ''));

/** An OpenAI chat body, parsed the way the lab server parses it. */
export function request(body: Record<string, unknown>): LabRequest {
  const parsed = parseChatRequest(body);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.request;
}

export const chat = (model: string, messages: readonly ChatMessage[], extra: Record<string, unknown> = {}): LabRequest =>
  request({ model, messages, ...extra });

export function json<T = unknown>(content: string | null | undefined): T {
  expect(typeof content).toBe('string');
  return JSON.parse(content!) as T;
}
