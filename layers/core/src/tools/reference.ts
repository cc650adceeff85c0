// The item's reference answer, as a tool: the judge asks for it when it needs ground truth.
import type { Tool } from './registry';

export const referenceTool: Tool = {
  name: 'reference',
  description:
    'Returns the known-correct reference answer for this task (ground truth supplied with the dataset). ' +
    'Use it to check whether each candidate answer is correct. Takes no arguments. ' +
    'Fails when the task has no reference answer.',
  parameters: { type: 'object', properties: {}, additionalProperties: false },
  limits: { timeoutMs: 1_000, maxOutputChars: 8_000 },
  async execute(_args, ctx) {
    if (ctx.reference === undefined || ctx.reference.trim() === '') throw new Error('this task has no reference answer');
    return ctx.reference;
  },
};
