// submit's object names and run ids, and that a bad config fails before anything is uploaded.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptObjectKey, submitCommand } from '../../../bin/commands/submit';
import { newRunId, runIdFor } from '../../../layers/core/src/stages/ingest';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (t: string) => out.push(t), err: (t: string) => err.push(t) }, out, err };
}

describe('promptObjectKey', () => {
  it('puts the file under prompts/ by its own name', () => {
    expect(promptObjectKey('data/mixed ü ñ 数学.jsonl')).toBe('prompts/mixed ü ñ 数学.jsonl');
    expect(promptObjectKey('/tmp/gsm8k.NDJSON')).toBe('prompts/gsm8k.NDJSON');
  });

  it('takes --name, adding the file extension when the name has none', () => {
    expect(promptObjectKey('a.jsonl', 'maths/gsm8k')).toBe('prompts/maths/gsm8k.jsonl');
    expect(promptObjectKey('a.json', 'gsm8k')).toBe('prompts/gsm8k.json');
    expect(promptObjectKey('a.txt', 'gsm8k')).toBe('prompts/gsm8k.jsonl');
    expect(promptObjectKey('a.jsonl', 'prompts/x.ndjson')).toBe('prompts/x.ndjson');
  });

  it('refuses names ingest would ignore, and path tricks', () => {
    expect(() => promptObjectKey('notes.txt')).toThrow('does not end in .jsonl, .ndjson or .json');
    expect(() => promptObjectKey('run.config.json')).toThrow('is a config file name');
    expect(() => promptObjectKey('a.jsonl', '../x')).toThrow('invalid object name');
    expect(() => promptObjectKey('a.jsonl', 'a//b')).toThrow('invalid object name');
  });
});

describe('newRunId', () => {
  it('is <slug>-<base36 time><2 random>, and ingest accepts it as the run id', () => {
    const now = Date.UTC(2026, 0, 2);
    const id = newRunId('prompts/maths/GSM8K sample.jsonl', now, () => 0.5);
    expect(id).toBe(`gsm8k-sample-${now.toString(36)}i0`);
    expect(runIdFor({ bucket: 'b', key: 'prompts/maths/GSM8K sample.jsonl' }, id)).toBe(id);
  });

  it('keeps ids valid for names without ASCII letters and for long names', () => {
    for (const key of ['prompts/数学.jsonl', `prompts/${'x'.repeat(300)}.jsonl`, 'prompts/-- a --.jsonl', `prompts/${'ab-'.repeat(20)}.jsonl`]) {
      const id = newRunId(key);
      expect(runIdFor({ bucket: 'b', key }, id), key).toBe(id);
    }
    expect(newRunId('prompts/数学.jsonl').startsWith('run-')).toBe(true);
  });
});

describe('submitCommand', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'anyprefer-submit-'));
    await writeFile(join(dir, 'p.jsonl'), '{"prompt": "hi"}\n');
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  // The resources file does not exist: reaching the connection step would fail with that instead.
  const flags = () => ['--resources', join(dir, 'missing-outputs.json')];

  it('rejects a config with a typo before connecting or uploading', async () => {
    await writeFile(join(dir, 'typo.json'), JSON.stringify({ candidatesPerPromt: 3 }));
    const c = capture();
    expect(await submitCommand([join(dir, 'p.jsonl'), '--config', join(dir, 'typo.json'), ...flags()], c.io)).toBe(1);
    expect(c.err.join('\n')).toMatch(/^anyprefer submit: --config .*typo\.json: invalid run config: .*candidatesPerPromt/);
  });

  it('rejects a config that is not JSON, and a missing prompt file', async () => {
    await writeFile(join(dir, 'bad.json'), '{');
    let c = capture();
    expect(await submitCommand([join(dir, 'p.jsonl'), '--config', join(dir, 'bad.json'), ...flags()], c.io)).toBe(1);
    expect(c.err.join('\n')).toContain('bad.json is not JSON');
    c = capture();
    expect(await submitCommand([join(dir, 'nope.jsonl'), ...flags()], c.io)).toBe(1);
    expect(c.err.join('\n')).toContain('no such file');
  });

  it('usage errors exit 2; --help exits 0', async () => {
    let c = capture();
    expect(await submitCommand(flags(), c.io)).toBe(2);
    expect(c.err.join('\n')).toContain('expected exactly one prompt file');
    c = capture();
    expect(await submitCommand(['p.jsonl', '--bogus', ...flags()], c.io)).toBe(2);
    c = capture();
    expect(await submitCommand(['--help'], c.io)).toBe(0);
    expect(c.out.join('\n')).toMatch(/^usage: anyprefer submit FILE/);
  });
});
