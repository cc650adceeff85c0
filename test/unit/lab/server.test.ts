import OpenAI from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_JUDGE_PROMPT, DEFAULT_TARGET_PROMPT } from '../../../layers/core/src/config';
import { judgeMessages, judgeOutputSchema, rewardMessages, rewardOutputSchema, targetMessages } from '../../../layers/core/src/prompts';
import { startLab, type Lab, type LabOptions } from '../../../local/lab/server';
import { rows } from './helpers';

const labs: Lab[] = [];
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.stop()));
});

async function lab(opts: LabOptions = {}): Promise<Lab> {
  const l = await startLab({ log: () => {}, ...opts });
  labs.push(l);
  return l;
}

const client = (l: Lab, maxRetries = 0) => new OpenAI({ baseURL: l.baseURL, apiKey: 'not-needed', maxRetries, timeout: 10_000 });

const targetBody = (question = rows[0]!.question, n = 4) => ({
  model: 'lab-target',
  messages: targetMessages(DEFAULT_TARGET_PROMPT, [{ role: 'user', content: question }]),
  n,
  seed: 1,
  max_tokens: 1024,
});

const post = (l: Lab, body: unknown) =>
  fetch(`${l.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

const rewardBody = () => ({
  model: 'lab-reward',
  messages: rewardMessages({
    conversation: [{ role: 'user', content: rows[0]!.question }],
    chosen: 'The answer is 18.',
    rejected: 'The answer is 19.',
    judgeRationale: 'Candidate 1 is right.',
    evidence: [],
  }),
  response_format: { type: 'json_schema' as const, json_schema: { name: 'reward', schema: {}, strict: true } },
});

describe('lab server (simulation) over HTTP', () => {
  it('answers the openai client in the OpenAI shape, with usage and the simulation markers', async () => {
    const l = await lab();
    expect(l.baseURL).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const { data, response } = await client(l).chat.completions.create(targetBody() as never).withResponse();
    const completion = data as OpenAI.Chat.ChatCompletion;
    expect(response.headers.get('x-anyprefer-lab')).toBe('simulation');
    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe('lab-target');
    expect(completion.system_fingerprint).toBe('anyprefer-lab-simulation');
    expect(completion.choices).toHaveLength(4);
    completion.choices.forEach((c, i) => {
      expect(c.index).toBe(i);
      expect(c.finish_reason).toBe('stop');
      expect(c.message.role).toBe('assistant');
      expect(c.message.content).toMatch(/The answer is -?\d/);
    });
    const usage = completion.usage!;
    expect(usage.prompt_tokens).toBeGreaterThan(0);
    expect(usage.completion_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    const stats = l.stats();
    expect(stats.requests.target).toBe(1);
    expect(stats.tokens.total).toBe(usage.total_tokens);

    const models = await client(l).models.list();
    expect(models.data.map((m) => m.id)).toEqual(['lab-target', 'lab-judge', 'lab-reward', 'lab-optimizer']);
    for (const m of models.data) expect(m.owned_by).toBe('anyprefer-lab (simulation)');
  });

  it('runs a judge tool round trip through the openai client', async () => {
    const l = await lab();
    const prompt = `${DEFAULT_JUDGE_PROMPT}\nVerify each answer against the reference with your tools.`;
    const messages: OpenAI.Chat.ChatCompletionMessageParam[] = judgeMessages(prompt, [{ role: 'user', content: rows[0]!.question }], [
      { index: 0, content: 'Let me think carefully.\n\n16 - 3 - 4 = 9 eggs, and 9 * 2 = 20 dollars.\n\nThe answer is 20.' },
      { index: 1, content: 'The answer is 18.' },
    ]);
    const tools: OpenAI.Chat.ChatCompletionTool[] = ['reference', 'calculator'].map((name) => ({
      type: 'function',
      function: { name, description: name, parameters: { type: 'object', properties: name === 'calculator' ? { expression: { type: 'string' } } : {} } },
    }));
    const response_format = { type: 'json_schema' as const, json_schema: { name: 'judgement', schema: {}, strict: true } };
    const first = await client(l).chat.completions.create({ model: 'lab-judge', messages, tools, response_format });
    const call = first.choices[0]!;
    expect(call.finish_reason).toBe('tool_calls');
    const calls = call.message.tool_calls!.filter((c) => c.type === 'function');
    expect(calls.map((c) => c.function.name)).toEqual(['reference', 'calculator', 'calculator']);
    messages.push(call.message, ...calls.map((c) => ({
      role: 'tool' as const,
      tool_call_id: c.id,
      content: c.function.name === 'reference' ? '18' : String(c.function.arguments.includes('9 * 2') ? 18 : 9),
    })));
    const second = await client(l).chat.completions.create({ model: 'lab-judge', messages, tools, tool_choice: 'none', response_format });
    expect(second.choices[0]!.finish_reason).toBe('stop');
    const scores = judgeOutputSchema.parse(JSON.parse(second.choices[0]!.message.content!)).scores;
    expect(scores[1]!.score).toBeGreaterThan(scores[0]!.score);
    expect(l.stats().requests.judge).toBe(2);
  });

  it('is deterministic per request and seed over HTTP', async () => {
    const a = await lab({ seed: 7 });
    const b = await lab({ seed: 7 });
    const c = await lab({ seed: 8 });
    const ask = async (l: Lab) => (await client(l).chat.completions.create(targetBody(rows[5]!.question, 8) as never)).choices.map((x) => x.message.content);
    const first = await ask(a);
    expect(await ask(a)).toEqual(first);
    expect(await ask(b)).toEqual(first);
    expect(await ask(c)).not.toEqual(first);
  });

  it('returns OpenAI-style errors: 404 for an unknown model, 400 for a bad body', async () => {
    const l = await lab();
    await expect(client(l).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] })).rejects.toMatchObject({
      status: 404,
      code: 'model_not_found',
    });
    for (const body of [{ model: 'lab-target' }, { model: 'lab-target', messages: [{ role: 'wizard', content: 'x' }] }, { model: 'lab-target', messages: [{ role: 'user', content: 'x' }], n: 0 }]) {
      const res = await post(l, body);
      expect(res.status).toBe(400);
      expect(res.headers.get('x-anyprefer-lab')).toBe('simulation');
      const payload = (await res.json()) as { error: { message: string; type: string } };
      expect(payload.error.type).toBe('invalid_request_error');
      expect(payload.error.message).toBeTruthy();
    }
    const broken = await fetch(`${l.baseURL}/chat/completions`, { method: 'POST', body: '{not json' });
    expect(broken.status).toBe(400);
    expect(l.stats().rejected).toEqual({ badRequest: 4, notFound: 1 });
  });

  it('sends 429 with Retry-After, and a retried identical request can succeed', async () => {
    const always = await lab({ faults: { rate429: 1 }, retryAfterSeconds: 3 });
    const err = await client(always).chat.completions.create(targetBody() as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as InstanceType<typeof OpenAI.RateLimitError>).headers.get('retry-after')).toBe('3');
    expect(always.stats().faults.rateLimited).toBe(1);

    // Faults are drawn per (request, attempt): the same sequence for the same seed, and retries get through.
    const statuses = async (l: Lab) => {
      const out: number[] = [];
      for (let i = 0; i < 12; i++) out.push((await post(l, targetBody())).status);
      return out;
    };
    const half = await statuses(await lab({ seed: 3, faults: { rate429: 0.5 } }));
    expect(half).toContain(429);
    expect(half).toContain(200);
    expect(await statuses(await lab({ seed: 3, faults: { rate429: 0.5 } }))).toEqual(half);
    const retried = await client(await lab({ seed: 3, faults: { rate429: 0.5 } }), 10).chat.completions.create(targetBody() as never);
    const clean = await client(await lab({ seed: 3 })).chat.completions.create(targetBody() as never);
    expect(retried.choices).toEqual(clean.choices);
  });

  it('injects 5xx and malformed JSON for the structured-output roles', async () => {
    const l5 = await lab({ faults: { rate5xx: 1 } });
    const err = await client(l5).chat.completions.create(targetBody() as never).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.InternalServerError);

    const l = await lab({ faults: { malformedRate: 1 } });
    const reward = await client(l).chat.completions.create(rewardBody() as never);
    expect(() => JSON.parse(reward.choices[0]!.message.content!)).toThrow();
    const target = await client(l).chat.completions.create(targetBody() as never);
    expect(target.choices[0]!.message.content).toMatch(/The answer is/);
    expect(l.stats().faults.malformed).toBe(1);

    const ok = await client(await lab()).chat.completions.create(rewardBody() as never);
    expect(rewardOutputSchema.parse(JSON.parse(ok.choices[0]!.message.content!)).failure).toBe('none');
  });

  it('hangs under the timeout fault until the client gives up, and stop() ends hung requests', async () => {
    const l = await lab({ faults: { timeoutRate: 1 } });
    const started = Date.now();
    await expect(new OpenAI({ baseURL: l.baseURL, apiKey: 'x', maxRetries: 0, timeout: 300 }).chat.completions.create(targetBody() as never)).rejects.toBeInstanceOf(
      OpenAI.APIConnectionTimeoutError,
    );
    const hung = post(l, targetBody()).then(
      (r) => `status ${r.status}`,
      () => 'connection closed',
    );
    await new Promise((r) => setTimeout(r, 200));
    await l.stop();
    expect(await hung).toBe('connection closed');
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(l.stats().faults.timeout).toBe(2);
  });

  it('adds configured latency', async () => {
    const l = await lab({ latencyMs: [150, 200] });
    const t0 = Date.now();
    await post(l, targetBody());
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);
  });
});
