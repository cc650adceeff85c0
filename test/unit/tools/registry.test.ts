import { describe, expect, it } from 'vitest';
import { calculatorTool } from '../../../layers/core/src/tools/calculator';
import { referenceTool } from '../../../layers/core/src/tools/reference';
import { ToolRegistry, type Tool } from '../../../layers/core/src/tools/registry';

const call = (name: string, args: string, id = 'c1') => ({ id, name, arguments: args });

function tool(overrides: Partial<Tool> & Pick<Tool, 'execute'>): Tool {
  return {
    name: 'echo',
    description: 'echo',
    parameters: {
      type: 'object',
      properties: { text: { type: 'string' }, times: { type: 'integer' } },
      required: ['text'],
      additionalProperties: false,
    },
    limits: { timeoutMs: 50, maxOutputChars: 20 },
    ...overrides,
  };
}

const echo = tool({ execute: async (args) => (args as { text: string }).text });

describe('ToolRegistry', () => {
  const registry = new ToolRegistry([referenceTool, calculatorTool, echo]);

  it('lists specs for known names only', () => {
    expect(registry.specs(['calculator', 'nope', 'reference']).map((s) => s.name)).toEqual(['calculator', 'reference']);
    expect(registry.has('reference')).toBe(true);
    expect(registry.has('nope')).toBe(false);
    expect(registry.specs(['reference'])[0]!.parameters).toEqual({ type: 'object', properties: {}, additionalProperties: false });
  });

  it('runs a tool and records evidence', async () => {
    const ev = await registry.run(call('calculator', '{"expression":"6*7"}'), {}, 2);
    expect(ev).toMatchObject({ round: 2, tool: 'calculator', arguments: { expression: '6*7' }, ok: true, output: '42' });
    expect(ev.durationMs).toBeGreaterThanOrEqual(0);
  });

  it('turns an unknown tool into an error', async () => {
    const ev = await registry.run(call('search', '{}'), {}, 1);
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/unknown tool "search"/);
    expect(ev.output).toMatch(/calculator/);
  });

  it('turns bad JSON arguments into an error', async () => {
    const ev = await registry.run(call('calculator', '{"expression": 1+1'), {}, 1);
    expect(ev.ok).toBe(false);
    expect(ev.output).toMatch(/not valid JSON/);
    expect(ev.arguments).toBe('{"expression": 1+1');
  });

  it('checks required arguments and primitive types', async () => {
    const missing = await registry.run(call('calculator', '{}'), {}, 1);
    expect(missing).toMatchObject({ ok: false });
    expect(missing.output).toMatch(/missing required argument: expression/);
    const wrongType = await registry.run(call('echo', '{"text":"a","times":1.5}'), {}, 1);
    expect(wrongType.output).toMatch(/"times" must be integer/);
    const notObject = await registry.run(call('echo', '[1]'), {}, 1);
    expect(notObject.output).toMatch(/expected a JSON object/);
  });

  it('treats empty arguments as {}', async () => {
    const ev = await registry.run(call('reference', ''), { reference: '42' }, 1);
    expect(ev).toMatchObject({ ok: true, output: '42', arguments: {} });
  });

  it('reports a missing reference answer', async () => {
    const ev = await registry.run(call('reference', '{}'), {}, 1);
    expect(ev).toMatchObject({ ok: false, output: 'this task has no reference answer' });
  });

  it('reports calculator errors', async () => {
    const ev = await registry.run(call('calculator', '{"expression":"1/0"}'), {}, 1);
    expect(ev).toMatchObject({ ok: false, output: 'division by zero' });
  });

  it('times out a tool that never resolves and aborts its signal', async () => {
    let signal: AbortSignal | undefined;
    const hang = tool({
      name: 'hang',
      execute: (_args, ctx) => {
        signal = ctx.signal;
        return new Promise<string>(() => {});
      },
    });
    const r = new ToolRegistry([hang]);
    const started = Date.now();
    const ev = await r.run(call('hang', '{"text":"x"}'), {}, 1);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(ev).toMatchObject({ ok: false, output: 'hang timed out after 50 ms' });
    expect(ev.durationMs).toBeGreaterThanOrEqual(45);
    expect(signal?.aborted).toBe(true);
  });

  it('truncates oversize output', async () => {
    const ev = await registry.run(call('echo', JSON.stringify({ text: 'a'.repeat(50) })), {}, 1);
    expect(ev.ok).toBe(true);
    expect(ev.output).toBe(`${'a'.repeat(20)}…[truncated 30 chars]`);
  });

  it('turns a thrown error (sync or async) into evidence', async () => {
    const boom = tool({
      name: 'boom',
      execute: () => {
        throw new Error('kaput');
      },
    });
    const ev = await new ToolRegistry([boom]).run(call('boom', '{"text":"x"}'), {}, 1);
    expect(ev).toMatchObject({ ok: false, output: 'kaput' });
  });
});
