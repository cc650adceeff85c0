// `anyprefer pull RUN`: downloads datasets/<RUN>/ from the output bucket (streamed to files),
// then checks the manifest against what arrived: the counts add up to the input's lines and each
// JSON Lines file has the rows the manifest says.
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { GetObjectCommand, paginateListObjectsV2, type S3Client } from '@aws-sdk/client-s3';
import { DATASET_PREFIX, DynamoStateStore, OUTPUT_FILES, type DatasetSummary } from '@anyprefer/core';
import {
  CommandError,
  CONNECTION_USAGE,
  connect,
  connectionFlags,
  defaultIo,
  parseCommandArgs,
  runCommand,
  UsageError,
  type CommandIo,
} from './options';

export const PULL_USAGE = `usage: anyprefer pull RUN (--stack NAME | --resources FILE) [--out DIR] [--partial] [--json]

Downloads the run's dataset (datasets/RUN/ in the output bucket) and checks its manifest.
  --out DIR      where the files go (default out/RUN)
  --partial      download what exists even if the run is not complete (no checks)
  --json         print the summary as JSON
${CONNECTION_USAGE}`;

/** Run ids as ingest makes them; anything else cannot name a dataset (and must not name a path). */
const RUN_ID = /^[a-z0-9][a-z0-9-]{2,62}$/;

/** Rows each JSON Lines file must have, from the manifest's counts. */
export function expectedRows(counts: DatasetSummary['counts']): Record<string, number> {
  return {
    [OUTPUT_FILES.trl]: counts.accepted,
    [OUTPUT_FILES.openai]: counts.accepted,
    [OUTPUT_FILES.full]: counts.accepted,
    [OUTPUT_FILES.rejected]: counts.rejected + counts.deadLettered,
    [OUTPUT_FILES.invalid]: counts.invalid,
  };
}

/**
 * What is wrong with a downloaded dataset, as sentences (empty: all good). `rows` are the
 * non-empty line counts of the downloaded files, by file name.
 */
export function verifyManifest(manifest: unknown, rows: Record<string, number>, runId: string): string[] {
  const problems: string[] = [];
  const m = manifest as Partial<DatasetSummary> | undefined;
  if (!m || typeof m !== 'object') return ['manifest.json is not a JSON object'];
  if (m.runId !== runId) problems.push(`manifest.json is for run ${String(m.runId)}, not ${runId}`);
  if (m.status !== 'complete') problems.push(`manifest.json says status ${String(m.status)}, not complete`);
  const c = m.counts;
  const names = ['lines', 'accepted', 'rejected', 'invalid', 'deadLettered'] as const;
  if (!c || names.some((k) => !Number.isInteger(c[k]) || c[k] < 0)) {
    problems.push(`manifest.json counts are missing or not non-negative integers: ${JSON.stringify(c)}`);
    return problems;
  }
  const sum = c.accepted + c.rejected + c.invalid + c.deadLettered;
  if (c.lines !== sum) {
    problems.push(
      `counts do not add up: lines ${c.lines} ≠ accepted ${c.accepted} + rejected ${c.rejected} + invalid ${c.invalid} + dead-lettered ${c.deadLettered} (= ${sum})`,
    );
  }
  const expected = expectedRows(c);
  const required = new Set([...Object.keys(expected), ...(m.files ?? [])]);
  for (const file of required) if (!(file in rows)) problems.push(`${file} is missing`);
  for (const [file, want] of Object.entries(expected)) {
    const got = rows[file];
    if (got !== undefined && got !== want) problems.push(`${file} has ${got} row(s), the manifest says ${want}`);
  }
  return problems;
}

/** Counts non-empty lines of a byte stream as it passes through. */
export class LineCounter extends Transform {
  lines = 0;
  private inLine = false;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (b === 0x0a) {
        if (this.inLine) this.lines++;
        this.inLine = false;
      } else if (b !== 0x0d) this.inLine = true;
    }
    done(null, chunk);
  }
  override _flush(done: () => void): void {
    if (this.inLine) this.lines++;
    this.inLine = false;
    done();
  }
}

/** Non-empty lines of a file (streamed). */
export async function countLines(path: string): Promise<number> {
  const counter = new LineCounter();
  await pipeline(createReadStream(path), counter, async function* (source) {
    for await (const _ of source) {
      // drain
    }
  });
  return counter.lines;
}

export interface PullResult {
  runId: string;
  status: string;
  outDir: string;
  files: { name: string; bytes: number; rows: number }[];
  verified: boolean;
  problems: string[];
  manifest?: DatasetSummary;
}

export function pullCommand(args: string[], io: CommandIo = defaultIo): Promise<number> {
  return runCommand('pull', PULL_USAGE, io, args, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      out: { type: 'string' },
      partial: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one run id');
    const runId = positionals[0]!;
    if (!RUN_ID.test(runId)) throw new UsageError(`"${runId}" is not a run id (lower-case letters, digits and -)`);

    const stack = await connect(values);
    try {
      const state = new DynamoStateStore(stack.clients.dynamo, stack.outputs.table);
      const run = await state.getRun(runId);
      if (!run) throw new CommandError(`run ${runId} not found in ${stack.source}`);
      const flags = connectionFlags(values);
      if (run.status !== 'complete' && !values.partial) {
        if (run.status === 'failed') {
          throw new CommandError(
            `run ${runId} failed: ${run.error ?? 'no reason recorded'}; pass --partial to download its manifest anyway`,
          );
        }
        const terminal = await state.terminalCounts(runId);
        throw new CommandError(
          `run ${runId} is not complete yet (${run.status}; ${terminal.total} of ${run.items ?? '?'} items done). ` +
            `Wait for it (anyprefer status ${runId} ${flags} --watch) or pass --partial to download what exists`,
        );
      }

      const outDir = values.out ?? join('out', runId);
      const prefix = run.outputPrefix || `${DATASET_PREFIX}${runId}/`;
      const keys = await listKeys(stack.clients.s3, stack.outputs.outputBucket, prefix);
      if (keys.length === 0 && run.status === 'complete') {
        throw new CommandError(`run ${runId} is complete but s3://${stack.outputs.outputBucket}/${prefix} is empty`);
      }
      await mkdir(outDir, { recursive: true });
      const files: PullResult['files'] = [];
      for (const key of keys) {
        const name = key.slice(prefix.length);
        const target = resolve(outDir, name);
        // Keys are S3's, not ours: never write outside DIR.
        if (!name || relative(resolve(outDir), target).startsWith('..') || name.split('/').includes('..')) {
          throw new CommandError(`refusing to write object ${key} outside ${outDir}`);
        }
        files.push({ name, ...(await download(stack.clients.s3, stack.outputs.outputBucket, key, target)) });
      }

      const rows = Object.fromEntries(files.map((f) => [f.name, f.rows]));
      let manifest: DatasetSummary | undefined;
      let problems: string[] = [];
      let verified = false;
      if (run.status === 'complete') {
        if (!(OUTPUT_FILES.manifest in rows)) problems.push(`${OUTPUT_FILES.manifest} is missing`);
        else {
          try {
            manifest = JSON.parse(await readFile(join(outDir, OUTPUT_FILES.manifest), 'utf8')) as DatasetSummary;
            problems = verifyManifest(manifest, rows, runId);
          } catch (err) {
            problems.push(`${OUTPUT_FILES.manifest} is not JSON: ${(err as Error).message}`);
          }
        }
        verified = problems.length === 0;
      }

      const result: PullResult = { runId, status: run.status, outDir, files, verified, problems, ...(manifest ? { manifest } : {}) };
      if (values.json) io.out(JSON.stringify(result, null, 2));
      else io.out(formatPull(result));
      if (problems.length > 0) {
        if (!values.json) io.err(`anyprefer pull: the dataset does not match its manifest:\n  ${problems.join('\n  ')}`);
        return 1;
      }
      return 0;
    } finally {
      stack.close();
    }
  });
}

async function listKeys(s3: S3Client, bucket: string, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const page of paginateListObjectsV2({ client: s3 }, { Bucket: bucket, Prefix: prefix })) {
    for (const o of page.Contents ?? []) if (o.Key && !o.Key.endsWith('/')) keys.push(o.Key);
  }
  return keys.sort();
}

/** Streams one object to `target` (via a temporary name, so a failed download leaves no partial file). */
async function download(s3: S3Client, bucket: string, key: string, target: string): Promise<{ bytes: number; rows: number }> {
  await mkdir(dirname(target), { recursive: true });
  const res = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
  const body = res.Body;
  const source =
    body === undefined
      ? Readable.from([])
      : body instanceof Readable
        ? body
        : Readable.fromWeb(body.transformToWebStream() as Parameters<typeof Readable.fromWeb>[0]);
  const counter = new LineCounter();
  let bytes = 0;
  const meter = new Transform({
    transform(chunk: Buffer, _enc, done) {
      bytes += chunk.length;
      done(null, chunk);
    },
  });
  const partial = `${target}.part`;
  try {
    await pipeline(source, meter, counter, createWriteStream(partial));
    await rename(partial, target);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return { bytes, rows: counter.lines };
}

function formatPull(r: PullResult): string {
  const lines: string[] = [];
  const m = r.manifest;
  if (m?.simulation) lines.push('SIMULATION: models were the offline model lab, not real models.');
  lines.push(`run ${r.runId} (${r.status}): ${r.files.length} file(s) in ${r.outDir}${sep}`);
  for (const f of r.files) lines.push(`  ${f.name.padEnd(20)} ${String(f.bytes).padStart(10)} bytes${f.name.endsWith('.jsonl') ? `  ${f.rows} rows` : ''}`);
  if (m?.counts) {
    const c = m.counts;
    lines.push(`  lines ${c.lines}: accepted ${c.accepted}, rejected ${c.rejected}, invalid ${c.invalid}, dead-lettered ${c.deadLettered}`);
    const tokens = m.usage.total.promptTokens + m.usage.total.completionTokens;
    lines.push(
      `  model calls ${m.usage.total.calls} (${m.usage.perAcceptedPair.calls ?? 'n/a'} per accepted pair), tokens ${tokens} (${m.usage.perAcceptedPair.tokens ?? 'n/a'} per accepted pair)`,
    );
  }
  if (r.verified) lines.push('  checked: the counts add up and every file has the rows manifest.json says');
  else if (r.status !== 'complete') lines.push(`  not checked: the run is ${r.status} (--partial)`);
  return lines.join('\n');
}
