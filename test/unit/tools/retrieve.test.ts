import { Readable } from 'node:stream';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseRunConfig } from '../../../layers/core/src/config';
import type { BlobStore } from '../../../layers/core/src/ports';
import { ToolRegistry, type ToolServices } from '../../../layers/core/src/tools/registry';
import {
  buildIndex,
  clearRetrieveCache,
  MAX_PASSAGE_CHARS,
  MAX_PASSAGES,
  parseJsonl,
  retrieveTool,
  search,
  splitMarkdown,
  splitText,
  tokenize,
} from '../../../layers/core/src/tools/retrieve';

/** The part of a BlobStore that retrieve uses, in memory, counting list/head/get calls; sizes can be faked per key. */
class CountingBlobs implements Pick<BlobStore, 'put' | 'getText' | 'getTextIfExists' | 'getStream' | 'head' | 'list'> {
  readonly objects = new Map<string, string>();
  readonly fakeSizes = new Map<string, number>();
  calls = { list: 0, head: 0, get: 0 };
  /** When set, getText waits for this before answering. */
  gate: Promise<void> | undefined;

  async put(bucket: string, key: string, body: string | Uint8Array) {
    this.objects.set(`${bucket}/${key}`, typeof body === 'string' ? body : Buffer.from(body).toString('utf8'));
  }
  async getText(bucket: string, key: string) {
    this.calls.get++;
    if (this.gate) await this.gate;
    const v = this.objects.get(`${bucket}/${key}`);
    if (v === undefined) throw new Error(`NoSuchKey ${key}`);
    return v;
  }
  async getTextIfExists(bucket: string, key: string) {
    return this.objects.get(`${bucket}/${key}`);
  }
  async getStream(bucket: string, key: string) {
    return Readable.from([await this.getText(bucket, key)]);
  }
  async head(bucket: string, key: string) {
    this.calls.head++;
    const v = this.objects.get(`${bucket}/${key}`);
    if (v === undefined) return undefined;
    return { size: this.fakeSizes.get(key) ?? Buffer.byteLength(v), etag: `"${v.length}"` };
  }
  async list(bucket: string, prefix: string) {
    this.calls.list++;
    return [...this.objects.keys()].filter((k) => k.startsWith(`${bucket}/${prefix}`)).map((k) => k.slice(bucket.length + 1));
  }
}

const GUIDE_MD = `---
title: Guide
---
# Pool maintenance

General notes about keeping a pool clean.

## Chlorine

Keep free chlorine between 1 and 3 ppm. Shock the pool weekly in summer.

## pH

The ideal pH for a swimming pool is 7.4 to 7.6; lower it with muriatic acid.

\`\`\`
# not a heading: a comment in code

still code
\`\`\`
`;

const NOTES_TXT = `Filters should be backwashed when the pressure rises 8-10 psi above clean.

Sand filters last five to seven years before the sand needs replacing.`;

const FAQ_JSONL = [
  JSON.stringify({ id: 'q1', title: 'Algae', text: 'Green water usually means algae; brush the walls and shock.', source: 'https://example.org/algae' }),
  JSON.stringify({ id: 7, content: 'Cyanuric acid stabilises chlorine against sunlight.' }),
  'not json',
  JSON.stringify({ title: 'no text field' }),
  '',
].join('\n');

function setup(over: { prefix?: string; topK?: number } = {}) {
  const blobs = new CountingBlobs();
  const services: ToolServices = {
    blobs: blobs as unknown as BlobStore,
    buckets: { input: 'in', output: 'out' },
    secret: async () => undefined,
    invokeLambda: async () => {
      throw new Error('not used');
    },
    fetch: async () => {
      throw new Error('not used');
    },
    lookup: async () => [],
  };
  const settings = parseRunConfig({ tools: { retrieve: over } }).tools;
  const registry = new ToolRegistry([retrieveTool]);
  const call = (args: unknown, runId: string | undefined = 'run-1') =>
    registry.run({ id: 'c', name: 'retrieve', arguments: JSON.stringify(args) }, { runId, settings, services }, 1);
  return { blobs, services, settings, call };
}

async function seed(blobs: CountingBlobs) {
  await blobs.put('in', 'knowledge/guide.md', GUIDE_MD);
  await blobs.put('in', 'knowledge/notes/filters.txt', NOTES_TXT);
  await blobs.put('in', 'knowledge/faq.jsonl', FAQ_JSONL);
  await blobs.put('in', 'knowledge/manual.pdf', '%PDF-1.7 ph chlorine');
  await blobs.put('in', 'prompts.jsonl', '{"prompt":"chlorine?"}');
}

beforeEach(() => clearRetrieveCache());

describe('tokenize', () => {
  it('lower-cases Unicode words and drops stopwords', () => {
    expect(tokenize('The pH of a Pool is 7.4 — Größe, café!')).toEqual(['ph', 'pool', '7', '4', 'größe', 'café']);
    expect(tokenize('what is the')).toEqual([]);
  });
});

describe('buildIndex / search', () => {
  const docs = [
    { source: 'a', text: 'cats purr and sleep a lot' },
    { source: 'b', text: 'dogs bark; dogs fetch; dogs run' },
    { source: 'c', text: 'a long text about birds '.repeat(20) + 'dogs' },
    { source: 'd', text: 'nothing relevant here' },
  ];
  const index = buildIndex(docs);

  it('ranks the passage with the query terms first and leaves out non-matches', () => {
    const hits = search(index, 'dogs', 10);
    expect(hits.map((h) => h.doc.source)).toEqual(['b', 'c']);
    expect(hits[0]!.score).toBeGreaterThan(hits[1]!.score);
  });

  it('sums over query terms, rare terms weigh more, and k bounds the hits', () => {
    expect(search(index, 'cats dogs', 1).map((h) => h.doc.source)).toEqual(['a']);
    expect(search(index, 'zebra', 5)).toEqual([]);
    expect(search(index, 'dogs', 0)).toEqual([]);
    expect(search(buildIndex([]), 'dogs', 3)).toEqual([]);
  });

  it('indexes the title too', () => {
    const titled = buildIndex([
      { source: 'x', title: 'Chlorine', text: 'keep it between 1 and 3' },
      { source: 'y', text: 'unrelated words' },
    ]);
    expect(search(titled, 'chlorine', 3).map((h) => h.doc.source)).toEqual(['x']);
  });
});

describe('passages', () => {
  it('splits Markdown by section with the heading path, keeping code fences whole and skipping front matter', () => {
    const parts = splitMarkdown(GUIDE_MD);
    expect(parts.map((p) => p.heading)).toEqual(['Pool maintenance', 'Pool maintenance › Chlorine', 'Pool maintenance › pH']);
    expect(parts[2]!.text).toContain('# not a heading: a comment in code\n\nstill code');
    expect(parts.some((p) => p.text.includes('title: Guide'))).toBe(false);
  });

  it('packs paragraphs and cuts long ones at sentence ends, never over the limit', () => {
    const sentence = 'This sentence is about pool chemistry and water balance. ';
    const text = `${sentence.repeat(60)}\n\nshort one\n\nshort two`;
    const parts = splitText(text);
    expect(parts.length).toBeGreaterThan(2);
    for (const p of parts) expect(p.length).toBeLessThanOrEqual(MAX_PASSAGE_CHARS);
    expect(parts[0]!.endsWith('balance.')).toBe(true);
    expect(parts.at(-1)).toMatch(/short one\n\nshort two$/);
    expect(splitText('x'.repeat(3000)).map((p) => p.length)).toEqual([1200, 1200, 600]);
  });

  it('reads JSONL documents and counts unusable lines', () => {
    const { docs, badLines } = parseJsonl('knowledge/faq.jsonl', FAQ_JSONL);
    expect(badLines).toBe(2);
    expect(docs).toEqual([
      { source: 'knowledge/faq.jsonl#q1', title: 'Algae', origin: 'https://example.org/algae', text: 'Green water usually means algae; brush the walls and shock.' },
      { source: 'knowledge/faq.jsonl#7', title: undefined, origin: undefined, text: 'Cyanuric acid stabilises chlorine against sunlight.' },
    ]);
  });
});

describe('retrieveTool', () => {
  it('returns the best passages with source, score and text', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    const ev = await call({ query: 'ideal pH swimming pool', top_k: 2 });
    expect(ev.ok).toBe(true);
    expect(ev.output).toMatch(/^1\. knowledge\/guide\.md › Pool maintenance › pH \[score \d+\.\d{3}\]\nThe ideal pH/m);
    expect(ev.output).toMatch(/^2\. /m);
    expect(ev.output).toContain('(note: skipped 2 JSONL lines without a "text" or "content" string)');
    expect(ev.output).not.toContain('manual.pdf');
  });

  it('finds text and JSONL passages, with the JSONL source field', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    expect((await call({ query: 'sand filter replacing' })).output).toMatch(/^[\s\S]*?1\. knowledge\/notes\/filters\.txt \[score/);
    expect((await call({ query: 'green algae' })).output).toMatch(
      /1\. knowledge\/faq\.jsonl#q1 › Algae \(source: https:\/\/example\.org\/algae\) \[score \d+\.\d{3}\]\nGreen water/,
    );
  });

  it('builds the index once per run: later calls do not list or read again', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    await call({ query: 'chlorine' });
    const after = { ...blobs.calls };
    expect(after.list).toBe(1);
    expect(after.get).toBe(3);
    await call({ query: 'filters' });
    await call({ query: 'algae', top_k: 1 });
    expect(blobs.calls).toEqual(after);
  });

  it('shares one build between concurrent first calls', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    let open!: () => void;
    blobs.gate = new Promise<void>((resolve) => (open = resolve));
    const pending = Promise.all([call({ query: 'chlorine' }), call({ query: 'ph' }), call({ query: 'algae' })]);
    await new Promise((resolve) => setTimeout(resolve, 20));
    open();
    const evs = await pending;
    expect(evs.every((e) => e.ok)).toBe(true);
    expect(blobs.calls.list).toBe(1);
    expect(blobs.calls.get).toBe(3);
  });

  it('reuses the index of an unchanged corpus in a new run, and rebuilds when the corpus changes', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    await call({ query: 'chlorine' }, 'run-1');
    await call({ query: 'chlorine' }, 'run-2');
    expect(blobs.calls.list).toBe(2); // listed again…
    expect(blobs.calls.get).toBe(3); // …but not read again
    await blobs.put('in', 'knowledge/extra.md', '# Heaters\n\nHeat pumps warm the water efficiently.');
    const ev = await call({ query: 'heat pumps' }, 'run-3');
    expect(ev.output).toMatch(/^1\. knowledge\/extra\.md › Heaters/m);
    expect(blobs.calls.get).toBe(7);
  });

  it('uses the configured prefix and topK', async () => {
    const { blobs, call } = setup({ prefix: 'kb/', topK: 1 });
    await blobs.put('in', 'kb/a.txt', 'alpha beta\n\nbeta gamma\n\ngamma beta delta');
    const ev = await call({ query: 'beta' });
    expect(ev.output.match(/^\d+\. /gm)).toHaveLength(1);
    expect(ev.output).toMatch(/^1\. kb\/a\.txt \[score/);
  });

  it('fails clearly when there is no corpus', async () => {
    const { blobs, call } = setup();
    const ev = await call({ query: 'chlorine' });
    expect(ev).toMatchObject({ ok: false, output: 'no knowledge corpus under s3://in/knowledge/ (upload .md, .txt or .jsonl files there)' });
    await blobs.put('in', 'knowledge/scan.pdf', '%PDF');
    expect((await call({ query: 'chlorine' })).output).toMatch(/^no knowledge corpus under s3:\/\/in\/knowledge\/: none of its 1 files/);
    // the failure is not cached: once a corpus exists the same run finds it
    await blobs.put('in', 'knowledge/a.txt', 'chlorine levels');
    expect((await call({ query: 'chlorine' })).ok).toBe(true);
  });

  it('rejects bad arguments', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    expect((await call({})).output).toMatch(/missing required argument: query/);
    expect((await call({ query: 3 })).output).toMatch(/"query" must be string/);
    expect((await call({ query: 'pool', top_k: 0 })).output).toMatch(/"top_k" must be an integer from 1 to 20/);
    expect((await call({ query: 'pool', top_k: 2.5 })).output).toMatch(/"top_k" must be integer/);
    expect((await call({ query: 'what is the' })).output).toMatch(/no searchable words/);
    expect((await call({ query: '   ' })).output).toMatch(/non-empty/);
  });

  it('says when nothing matches', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    const ev = await call({ query: 'volcano' });
    expect(ev.ok).toBe(true);
    expect(ev.output).toMatch(/no passages match "volcano" in 3 files/);
  });

  it('skips files over 20 MB and says so', async () => {
    const { blobs, call } = setup();
    await seed(blobs);
    await blobs.put('in', 'knowledge/huge.txt', 'chlorine everywhere');
    blobs.fakeSizes.set('knowledge/huge.txt', 21 * 1024 * 1024);
    const ev = await call({ query: 'chlorine' });
    expect(ev.output).toContain('(note: skipped 1 file over 20 MB: knowledge/huge.txt)');
    expect(ev.output).not.toMatch(/\d\. knowledge\/huge\.txt/);
    expect(blobs.calls.get).toBe(3);
  });

  it('stops at the passage limit and says the corpus was truncated', async () => {
    const { blobs, call } = setup();
    const lines = Array.from({ length: MAX_PASSAGES + 5 }, (_, i) => JSON.stringify({ id: i, text: `doc ${i} ${i === 0 ? 'needle' : 'hay'}` }));
    await blobs.put('in', 'knowledge/a.jsonl', lines.join('\n'));
    await blobs.put('in', 'knowledge/b.md', 'needle in a later file');
    const ev = await call({ query: 'needle' });
    expect(ev.output).toMatch(/^\(note: the corpus is larger than 50,000 passages: only the first ones \(in key order\) are searched\)/);
    expect(ev.output).toContain('1. knowledge/a.jsonl#0');
    expect(ev.output).not.toContain('b.md');
  });

  it('stops waiting when the call is cancelled, leaving the build for later calls', async () => {
    const { blobs, services, settings } = setup();
    await seed(blobs);
    blobs.gate = new Promise<void>(() => {}); // storage never answers
    const started = performance.now();
    await expect(
      retrieveTool.execute({ query: 'chlorine' }, { runId: 'slow', settings, services, signal: AbortSignal.timeout(100) }),
    ).rejects.toThrow(/cancelled/);
    expect(performance.now() - started).toBeLessThan(3_000);
  });

  it('fails clearly without tool services', async () => {
    const ev = await new ToolRegistry([retrieveTool]).run({ id: 'c', name: 'retrieve', arguments: '{"query":"x"}' }, {}, 1);
    expect(ev.output).toMatch(/no tool services/);
  });
});
