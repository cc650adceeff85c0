// The stage logic end to end over in-memory ports and scripted models: the state machine,
// tool rounds, feedback, exhaustion, permanent failures, dead-lettering, duplicates.
import { describe, expect, it } from 'vitest';
import { runFinalize, runIngest, runItemStage, type ChatRequest, type ItemMessage, type StageName } from '@anyprefer/core';
import { ModelCallError } from '../../../layers/core/src/models/gateway';
import { memoryPipeline, reply, ScriptedModels, type MemoryPipeline } from '../../support/memory';

const LINE = JSON.stringify({ question: 'Janet has 16 eggs, eats 3 and bakes 4. She sells the rest at $2. How much?', answer: '16-3-4=9, 9*2=18\n#### 18' });
const RIGHT = 'She has 16 - 3 - 4 = 9 eggs; 9 * 2 = 18. The answer is 18.';
const WRONG = 'She has 16 - 3 - 4 = 9 eggs; 9 * 2 = 20. The answer is 20. Let me explain at much greater length why that is so.';

function s3Event(key: string) {
  return JSON.stringify({ Records: [{ eventName: 'ObjectCreated:Put', s3: { bucket: { name: 'in' }, object: { key: encodeURIComponent(key).replace(/%20/g, '+'), eTag: 'e1', sequencer: '01' } } }] });
}

/** Delivers queued messages to their stages until the queues are empty (bounded). */
async function drain(p: MemoryPipeline, opts: { duplicate?: boolean } = {}) {
  for (let round = 0; round < 200; round++) {
    const next = p.queues.sent.shift();
    if (!next) return;
    const body = JSON.stringify(next.message);
    const deliveries = opts.duplicate ? 2 : 1;
    for (let d = 0; d < deliveries; d++) {
      if (next.queue === 'finalize') await runFinalize(p.deps, body);
      else await runItemStage(next.queue as StageName, p.deps, body, 1);
    }
  }
  throw new Error('queues did not drain');
}

async function start(p: MemoryPipeline, lines: string[], config: unknown = {}) {
  await p.blobs.put('in', 'prompts/my file.jsonl', lines.join('\n') + '\n');
  await p.blobs.put('in', 'prompts/my file.config.json', JSON.stringify(config));
  await runIngest(p.deps, s3Event('prompts/my file.jsonl'));
  const runId = [...p.state.runs.keys()][0]!;
  return runId;
}

const manifest = async (p: MemoryPipeline, runId: string) => JSON.parse(await p.blobs.getText('out', `datasets/${runId}/manifest.json`));
const jsonl = async (p: MemoryPipeline, runId: string, file: string) =>
  (await p.blobs.getText('out', `datasets/${runId}/${file}`)).split('\n').filter(Boolean).map((l) => JSON.parse(l));

/** A judge that asks for the reference once, then scores by whether a candidate says the reference. */
const referenceJudge = (request: ChatRequest) => {
  const toolResult = request.messages.find((m) => m.role === 'tool');
  if (!toolResult && request.tools?.some((t) => t.name === 'reference')) return reply('', [{ id: 'c1', name: 'reference', arguments: '{}' }]);
  const content = request.messages.find((m) => m.role === 'user')!.content!;
  const user = typeof content === 'string' ? content : content.map((p) => (p.type === 'text' ? p.text : '')).join('');
  const shown = [...user.matchAll(/<candidate index="(\d+)">\n([\s\S]*?)\n<\/candidate>/g)];
  const ref = toolResult && 'content' in toolResult ? String(toolResult.content) : '';
  return reply(JSON.stringify({ scores: shown.map((m) => ({ candidate: Number(m[1]), score: ref && m[2]!.includes(`answer is ${ref}`) ? 9 : 2, rationale: 'checked against the reference' })) }));
};

describe('pipeline stages over in-memory ports', () => {
  it('accepts a pair judged with the reference tool, and writes every output', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG, RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: 9, failure: 'none', critique: 'good pair' })),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE]);
    await drain(p);

    const m = await manifest(p, runId);
    expect(m.counts).toEqual({ lines: 1, accepted: 1, rejected: 0, invalid: 0, deadLettered: 0 });
    const [trl] = await jsonl(p, runId, 'pairs.trl.jsonl');
    expect(trl.chosen[0].content).toBe(RIGHT);
    expect(trl.rejected[0].content).toBe(WRONG);
    expect(trl.prompt).toEqual([{ role: 'user', content: expect.stringContaining('Janet') }]);
    const [full] = await jsonl(p, runId, 'pairs.full.jsonl');
    expect(full.reference).toBe('18');
    expect(full.evidence).toEqual([expect.objectContaining({ tool: 'reference', ok: true, output: '18' })]);
    expect(full.usage.target).toEqual({ calls: 1, promptTokens: 10, completionTokens: 5 });
    // The target never sees the reference.
    const targetRequests = models.requests.filter((r) => r.role === 'target');
    expect(JSON.stringify(targetRequests)).not.toContain('#### 18');
    expect(targetRequests[0]!.request.n).toBe(4);
  });

  it('sends a low-reward pair through feedback with revised prompts, then accepts it', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: (_r, call) => reply(JSON.stringify(call === 1 ? { score: 3, failure: 'judge_bias', critique: 'verify with tools' } : { score: 8, failure: 'none', critique: 'ok' })),
      optimizer: () => reply(JSON.stringify({ target_prompt: 'Reason step by step.', judge_prompt: 'Use the reference tool.', rationale: 'critique' })),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE]);
    await drain(p);
    const [full] = await jsonl(p, runId, 'pairs.full.jsonl');
    expect(full.iteration).toBe(2);
    expect(full.prompts.target).toMatchObject({ text: 'Reason step by step.', parent: 'initial', critique: 'verify with tools' });
    expect(full.prompts.judge.text).toBe('Use the reference tool.');
    const secondTarget = models.requests.filter((r) => r.role === 'target')[1]!;
    expect(secondTarget.request.messages[0]).toEqual({ role: 'system', content: 'Reason step by step.' });
    expect((await manifest(p, runId)).acceptedByIteration).toEqual({ 2: 1 });
  });

  it('rejects an item after maxIterations with its best attempt', async () => {
    let call = 0;
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: [2, 5, 3][call++]!, failure: 'no_contrast', critique: 'weak' })),
      optimizer: (r) => reply(JSON.stringify({ target_prompt: 'T', judge_prompt: 'J', rationale: String(r.messages.length) })),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE], { maxIterations: 3 });
    await drain(p);
    const [rejected] = await jsonl(p, runId, 'rejected.jsonl');
    expect(rejected).toMatchObject({ status: 'rejected', iterations: 3, best: { iteration: 2, reward: { score: 5 } } });
    expect(models.requests.filter((r) => r.role === 'optimizer')).toHaveLength(2);
    expect((await manifest(p, runId)).counts).toMatchObject({ accepted: 0, rejected: 1 });
  });

  it('rejects an item at once when the judge output cannot be parsed after one repair', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: () => reply('I think candidate 1 is best.'),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE], { tools: { enabled: [] } });
    await drain(p);
    const [rejected] = await jsonl(p, runId, 'rejected.jsonl');
    expect(rejected.reason).toMatch(/^judge failed: .*judge/);
    expect(models.requests.filter((r) => r.role === 'judge')).toHaveLength(2); // the answer and one repair
  });

  it('dead-letters an item on its last delivery and still finishes the run', async () => {
    const models = new ScriptedModels({
      target: () => {
        throw new ModelCallError({ role: 'target', model: 'm', status: 503, attempts: 5, retryable: true, detail: 'unavailable', usage: { calls: 5, promptTokens: 0, completionTokens: 0 } });
      },
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE, LINE.replace('Janet', 'Jane')]);
    const messages = p.queues.take('generate') as ItemMessage[];
    for (const receive of [1, 2]) await expect(runItemStage('generate', p.deps, JSON.stringify(messages[0]), receive)).rejects.toThrow(/503/);
    expect((await p.state.getItem(runId, messages[0]!.itemId))!.state).toBe('generate');
    await expect(runItemStage('generate', p.deps, JSON.stringify(messages[0]), 3)).rejects.toThrow(/503/);
    expect((await p.state.getItem(runId, messages[0]!.itemId))!.state).toBe('deadLettered');
    await expect(runItemStage('generate', p.deps, JSON.stringify(messages[1]), 3)).rejects.toThrow();
    await drain(p);
    const m = await manifest(p, runId);
    expect(m.counts).toEqual({ lines: 2, accepted: 0, rejected: 0, invalid: 0, deadLettered: 2 });
    expect(await jsonl(p, runId, 'rejected.jsonl')).toEqual([
      expect.objectContaining({ line: 1, status: 'deadLettered', reason: expect.stringContaining('failed 3 times') }),
      expect.objectContaining({ line: 2, status: 'deadLettered' }),
    ]);
  });

  it('processes each transition once when every message is delivered twice', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: 9, failure: 'none', critique: 'good' })),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE, 'not json', '']);
    await drain(p, { duplicate: true });
    expect(models.requests.filter((r) => r.role === 'target')).toHaveLength(1);
    expect(models.requests.filter((r) => r.role === 'reward')).toHaveLength(1);
    expect((await manifest(p, runId)).counts).toEqual({ lines: 3, accepted: 1, rejected: 0, invalid: 2, deadLettered: 0 });
    expect(await jsonl(p, runId, 'pairs.trl.jsonl')).toHaveLength(1);
    const invalid = await jsonl(p, runId, 'invalid.jsonl');
    expect(invalid.map((i: { line: number }) => i.line)).toEqual([2, 3]);
  });

  it('starts one run for duplicate S3 events and ignores files that are not prompt files', async () => {
    const models = new ScriptedModels({});
    const p = memoryPipeline(models);
    await start(p, [LINE]);
    await runIngest(p.deps, s3Event('prompts/my file.jsonl'));
    await runIngest(p.deps, s3Event('prompts/my file.config.json'));
    await runIngest(p.deps, s3Event('other/notes.txt'));
    await runIngest(p.deps, JSON.stringify({ Service: 'Amazon S3', Event: 's3:TestEvent', Bucket: 'in' }));
    expect(p.state.runs.size).toBe(1);
    expect(p.state.items.size).toBe(1);
  });

  it('fails a run whose config file is invalid, naming the field', async () => {
    const p = memoryPipeline(new ScriptedModels({}));
    const runId = await start(p, [LINE], { candidatesPerPrompt: 'four' });
    const m = await manifest(p, runId);
    expect(m.status).toBe('failed');
    expect(m.error).toMatch(/candidatesPerPrompt/);
  });

  it('gives target and judge the images as content parts, S3 images as presigned URLs', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: 9, failure: 'none', critique: 'good' })),
    });
    const p = memoryPipeline(models);
    await start(p, [JSON.stringify({ ...JSON.parse(LINE), images: ['s3://bucket-a/img/x.png', 'https://e.com/y.png'] })]);
    await drain(p);
    for (const role of ['target', 'judge'] as const) {
      const user = models.requests.find((r) => r.role === role)!.request.messages.find((m) => m.role === 'user')!;
      expect(user.content).toEqual([
        { type: 'text', text: expect.stringContaining('Janet') },
        { type: 'image_url', image_url: { url: 'https://bucket-a.s3.example/img%2Fx.png?signed' } },
        { type: 'image_url', image_url: { url: 'https://e.com/y.png' } },
      ]);
    }
  });

  it('fails a run at once when its models cannot be reached from here', async () => {
    const p = memoryPipeline(new ScriptedModels({}));
    p.deps.models = () => {
      throw new Error('the target model "lab-target" is the offline model lab, which exists only in the embedded runtime');
    };
    const runId = await start(p, [LINE]);
    const m = await manifest(p, runId);
    expect(m).toMatchObject({ status: 'failed', error: expect.stringContaining('offline model lab') });
    expect(p.state.items.size).toBe(0);
  });

  it('never publishes header values or URL credentials from the config', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: 9, failure: 'none', critique: 'good' })),
    });
    const p = memoryPipeline(models);
    const config = {
      models: { optimizer: { model: 'm', baseURL: 'https://user:pw@llm.example.com/v1?key=sk-secret-1' } },
      tools: { http: [{ name: 'det', description: 'd', url: 'https://det.example.com/x?token=sk-secret-2', headers: { 'x-api-key': 'sk-secret-3' } }] },
    };
    const runId = await start(p, [LINE], config);
    await drain(p);
    const published = (await p.blobs.getText('out', `datasets/${runId}/manifest.json`)) + (await p.blobs.getText('out', `datasets/${runId}/README.md`));
    expect((await manifest(p, runId)).counts.accepted).toBe(1);
    expect(published).not.toMatch(/sk-secret|pw@/);
    expect(published).toContain('x-api-key');
  });

  it('blocks acceptance when the reward model names a failure, whatever its score', async () => {
    const models = new ScriptedModels({
      target: () => reply([RIGHT, WRONG]),
      judge: referenceJudge,
      reward: () => reply(JSON.stringify({ score: 9, failure: 'chosen_incorrect', critique: 'contradictory' })),
    });
    const p = memoryPipeline(models);
    const runId = await start(p, [LINE], { maxIterations: 1 });
    await drain(p);
    expect((await manifest(p, runId)).counts).toMatchObject({ accepted: 0, rejected: 1 });
  });
});
