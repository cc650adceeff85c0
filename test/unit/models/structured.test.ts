import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { ModelOutputError, parseStructured, structuredCall, toStrictJsonSchema } from '../../../layers/core/src/models/structured';
import { addUsage, addUsageByRole, emptyUsage } from '../../../layers/core/src/models/usage';
import type { ChatRequest, ChatResult, ModelGateway } from '../../../layers/core/src/ports';
import { judgeOutputSchema, optimizerOutputSchema, rewardOutputSchema } from '../../../layers/core/src/prompts';
import type { Role, UsageByRole } from '../../../layers/core/src/types';

/** A gateway that replies with scripted texts and records what it was asked. */
function scripted(replies: (string | null)[]) {
  const requests: { role: Role; request: ChatRequest }[] = [];
  const gateway: ModelGateway = {
    async chat(role, request): Promise<ChatResult> {
      requests.push({ role, request: structuredClone(request) });
      const content = replies[requests.length - 1];
      if (content === undefined) throw new Error('no more scripted replies');
      return { choices: [{ content, toolCalls: [] }], usage: { calls: 1, promptTokens: 10, completionTokens: 4 } };
    },
  };
  return { gateway, requests };
}

const reward = { score: 8, failure: 'none', critique: 'fine' };
const msgs = [{ role: 'user' as const, content: 'rate this' }];

describe('structuredCall', () => {
  it('accepts a valid reply in one call and sends a strict json schema', async () => {
    const { gateway, requests } = scripted([JSON.stringify(reward)]);
    const out = await structuredCall(gateway, 'reward', msgs, rewardOutputSchema, 'reward_verdict');
    expect(out.value).toEqual(reward);
    expect(out.usage).toEqual({ calls: 1, promptTokens: 10, completionTokens: 4 });
    const js = requests[0]!.request.jsonSchema!;
    expect(js.name).toBe('reward_verdict');
    expect(js.schema.$schema).toBeUndefined();
    expect(js.schema.additionalProperties).toBe(false);
    expect(js.schema.required).toEqual(['score', 'failure', 'critique']);
  });

  it('accepts fenced JSON and JSON after prose', async () => {
    const fenced = scripted(['Here you go:\n```json\n' + JSON.stringify(reward, null, 2) + '\n```\nThanks']);
    expect((await structuredCall(fenced.gateway, 'reward', msgs, rewardOutputSchema, 'r')).value).toEqual(reward);
    const prose = scripted([`<think>{maybe}</think>Sure! {"note": "not it"} then ${JSON.stringify(reward)} done.`]);
    expect((await structuredCall(prose.gateway, 'reward', msgs, rewardOutputSchema, 'r')).value).toEqual(reward);
    expect(prose.requests).toHaveLength(1);
  });

  it('repairs a malformed reply once, with the error and the bad reply', async () => {
    const { gateway, requests } = scripted(['{"score": 8, "failure": "none", critique: }', JSON.stringify(reward)]);
    const out = await structuredCall(gateway, 'reward', msgs, rewardOutputSchema, 'r', { temperature: 0 });
    expect(out.value).toEqual(reward);
    expect(out.raw).toBe(JSON.stringify(reward));
    expect(out.usage).toEqual({ calls: 2, promptTokens: 20, completionTokens: 8 });
    const repair = requests[1]!.request;
    expect(repair.temperature).toBe(0);
    expect(repair.messages).toHaveLength(3);
    expect(repair.messages[1]).toEqual({ role: 'assistant', content: '{"score": 8, "failure": "none", critique: }' });
    expect(repair.messages[2]!.role).toBe('user');
    expect(repair.messages[2]!.content).toMatch(/^Your reply was not valid JSON for the schema: .+\. Reply again with only the JSON object\.$/);
  });

  it('names the schema violation in the repair message', async () => {
    const { gateway, requests } = scripted([JSON.stringify({ ...reward, score: 11 }), JSON.stringify(reward)]);
    await structuredCall(gateway, 'reward', msgs, rewardOutputSchema, 'r');
    expect(requests[1]!.request.messages[2]!.content).toMatch(/score/);
  });

  it('throws ModelOutputError when the repair fails too', async () => {
    const { gateway, requests } = scripted(['not json', 'still {not json']);
    const error = await structuredCall(gateway, 'judge', msgs, judgeOutputSchema, 'scores').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ModelOutputError);
    const e = error as ModelOutputError;
    expect(e.message).toMatch(/judge/);
    expect(e.message).toMatch(/no JSON object/);
    expect(e.raw).toBe('still {not json');
    expect(e.usage.calls).toBe(2);
    expect(requests).toHaveLength(2);
  });

  it('works with a refined schema', async () => {
    const refined = judgeOutputSchema.refine((o) => o.scores.length === 2, { message: 'score both candidates' });
    const one = { scores: [{ candidate: 1, score: 5, rationale: 'x' }] };
    const two = { scores: [...one.scores, { candidate: 2, score: 3, rationale: 'y' }] };
    const { gateway, requests } = scripted([JSON.stringify(one), JSON.stringify(two)]);
    const out = await structuredCall(gateway, 'judge', msgs, refined, 'scores');
    expect(out.value).toEqual(two);
    expect(requests[1]!.request.messages[2]!.content).toMatch(/score both candidates/);
  });
});

describe('toStrictJsonSchema', () => {
  it('produces strict-mode schemas for the pipeline schemas', () => {
    for (const schema of [judgeOutputSchema, rewardOutputSchema, optimizerOutputSchema]) {
      const json = toStrictJsonSchema(schema);
      expect(json.$schema).toBeUndefined();
      const check = (node: any): void => {
        if (node && typeof node === 'object') {
          if (node.type === 'object') {
            expect(node.additionalProperties).toBe(false);
            expect([...node.required].sort()).toEqual(Object.keys(node.properties).sort());
          }
          expect(node.maximum).not.toBe(Number.MAX_SAFE_INTEGER);
          Object.values(node).forEach(check);
        }
      };
      check(json);
    }
  });

  it('closes plain objects and rejects optional properties', () => {
    expect(toStrictJsonSchema(z.object({ a: z.string() })).additionalProperties).toBe(false);
    expect(() => toStrictJsonSchema(z.object({ a: z.string().optional() }))).toThrow(/optional/);
  });
});

describe('parseStructured', () => {
  it('reports empty replies and schema errors', () => {
    expect(parseStructured('', rewardOutputSchema)).toEqual({ ok: false, error: 'the reply was empty' });
    const bad = parseStructured('{"score": "high"}', rewardOutputSchema);
    expect(bad.ok).toBe(false);
  });
});

describe('usage helpers', () => {
  it('adds usage and usage by role', () => {
    const a = { calls: 1, promptTokens: 2, completionTokens: 3 };
    expect(addUsage(a, a)).toEqual({ calls: 2, promptTokens: 4, completionTokens: 6 });
    expect(addUsage(emptyUsage(), a)).toEqual(a);
    const map: UsageByRole = {};
    const twice = addUsageByRole(addUsageByRole(map, 'judge', a), 'judge', a);
    expect(twice).toEqual({ judge: { calls: 2, promptTokens: 4, completionTokens: 6 } });
    expect(map).toEqual({}); // the argument is left alone
  });
});
