// pull's check of a downloaded dataset against its manifest, on a fixture dataset.
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { countLines, expectedRows, LineCounter, verifyManifest } from '../../../bin/commands/pull';
import type { DatasetSummary } from '../../../layers/core/src/output/records';

const FIXTURE = join(import.meta.dirname, 'fixtures', 'dataset');
const RUN = 'fixture-m4x2k9ab7q';

async function fixture(): Promise<{ manifest: DatasetSummary; rows: Record<string, number> }> {
  const manifest = JSON.parse(await readFile(join(FIXTURE, 'manifest.json'), 'utf8')) as DatasetSummary;
  const rows: Record<string, number> = {};
  for (const name of await readdir(FIXTURE)) rows[name] = await countLines(join(FIXTURE, name));
  return { manifest, rows };
}

describe('verifyManifest', () => {
  it('accepts the fixture: counts add up and every file has its rows', async () => {
    const { manifest, rows } = await fixture();
    expect(rows).toMatchObject({ 'pairs.trl.jsonl': 2, 'pairs.openai.jsonl': 2, 'pairs.full.jsonl': 2, 'rejected.jsonl': 2, 'invalid.jsonl': 1 });
    expect(verifyManifest(manifest, rows, RUN)).toEqual([]);
  });

  it('reports counts that do not add up to the lines', async () => {
    const { manifest, rows } = await fixture();
    manifest.counts.lines = 6;
    expect(verifyManifest(manifest, rows, RUN)).toEqual([
      'counts do not add up: lines 6 ≠ accepted 2 + rejected 1 + invalid 1 + dead-lettered 1 (= 5)',
    ]);
  });

  it('reports a file whose rows disagree with the manifest', async () => {
    const { manifest, rows } = await fixture();
    expect(verifyManifest(manifest, { ...rows, 'pairs.openai.jsonl': 1 }, RUN)).toEqual([
      'pairs.openai.jsonl has 1 row(s), the manifest says 2',
    ]);
    // rejected.jsonl holds rejected and dead-lettered items
    expect(verifyManifest(manifest, { ...rows, 'rejected.jsonl': 1 }, RUN)).toEqual(['rejected.jsonl has 1 row(s), the manifest says 2']);
  });

  it('reports missing files, those of the manifest list included', async () => {
    const { manifest, rows } = await fixture();
    const { 'invalid.jsonl': _i, 'README.md': _r, ...rest } = rows;
    expect(verifyManifest(manifest, rest, RUN)).toEqual(['invalid.jsonl is missing', 'README.md is missing']);
  });

  it('reports a manifest of another run, an unfinished run or without counts', async () => {
    const { manifest, rows } = await fixture();
    expect(verifyManifest(manifest, rows, 'other-run-1')).toEqual([`manifest.json is for run ${RUN}, not other-run-1`]);
    expect(verifyManifest({ ...manifest, status: 'failed' }, rows, RUN)).toEqual(['manifest.json says status failed, not complete']);
    expect(verifyManifest({ ...manifest, counts: { ...manifest.counts, accepted: -1 } }, rows, RUN)[0]).toMatch(/counts are missing or not/);
    expect(verifyManifest(null, rows, RUN)).toEqual(['manifest.json is not a JSON object']);
  });

  it('expects accepted rows in the three pair files', () => {
    expect(expectedRows({ lines: 10, accepted: 4, rejected: 3, invalid: 2, deadLettered: 1 })).toEqual({
      'pairs.trl.jsonl': 4,
      'pairs.openai.jsonl': 4,
      'pairs.full.jsonl': 4,
      'rejected.jsonl': 4,
      'invalid.jsonl': 2,
    });
  });
});

describe('LineCounter', () => {
  const count = async (chunks: string[]) => {
    const counter = new LineCounter();
    await pipeline(Readable.from(chunks.map((c) => Buffer.from(c))), counter, async function* (source) {
      for await (const _ of source) {
        // drain
      }
    });
    return counter.lines;
  };

  it('counts non-empty lines across chunks, with or without a final newline', async () => {
    expect(await count([])).toBe(0);
    expect(await count(['{"a":1}\n{"b":2}\n'])).toBe(2);
    expect(await count(['{"a":1}\n{"b"', ':2}'])).toBe(2);
    expect(await count(['{"a":1}\r\n\r\n', '\n{"b":2}\r\n'])).toBe(2);
    expect(await count(['\n\n'])).toBe(0);
  });
});
