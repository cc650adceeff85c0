// Search over the user's own corpus: BM25 over passages of the .md, .txt and .jsonl files under
// `tools.retrieve.prefix` (default `knowledge/`) in the input bucket.
//
// The index is built once and kept in module memory, so a warm Lambda container reuses it:
//   - per (run, bucket, prefix): the first call of a run lists the corpus and builds (concurrent first
//     calls share one build); later calls of that run reuse it without touching storage. A run sees
//     the corpus as it was at its first search.
//   - per corpus listing (keys, sizes, etags): a new run over an unchanged corpus lists it again but
//     does not read or index it again.
import { createHash } from 'node:crypto';
import type { BlobStore } from '../ports';
import { requireServices } from './http-tool';
import type { Tool } from './registry';

export const K1 = 1.2;
export const B = 0.75;
/** Longest passage, in characters. */
export const MAX_PASSAGE_CHARS = 1_200;
/** Larger files are skipped (and named in the result). */
export const MAX_FILE_BYTES = 20 * 1024 * 1024;
/** Passages indexed at most; the rest of the corpus is not searched (the result says so). */
export const MAX_PASSAGES = 50_000;
export const DEFAULT_PREFIX = 'knowledge/';
export const MAX_TOP_K = 20;
const DEFAULT_TOP_K = 4;
/** Indexes kept per container; runs and corpora beyond these are rebuilt when searched again. */
const MAX_CACHED_INDEXES = 4;
const MAX_CACHED_RUNS = 16;
/** Storage requests in flight while loading a corpus. */
const READ_CONCURRENCY = 8;

const STOPWORDS = new Set(
  (
    'a about an and are as at be been but by can could did do does for from had has have he her his how i if in into is it its ' +
    'me my no not of on or our she so than that the their them then there these they this those to was we were what when ' +
    'where which who whom why will with would you your'
  ).split(' '),
);

/** Lower-case words of Unicode letters, marks and digits, without common English stopwords. */
export function tokenize(text: string): string[] {
  const out: string[] = [];
  for (const m of text.normalize('NFKC').toLowerCase().matchAll(/[\p{L}\p{M}\p{N}]+/gu)) {
    if (!STOPWORDS.has(m[0])) out.push(m[0]);
  }
  return out;
}

/** One searchable unit: a passage of a file, or a JSONL document (or a piece of a long one). */
export interface Doc {
  /** Where it came from: the object key, with `#id` or `:line` for JSONL documents. */
  source: string;
  /** The heading path of a Markdown passage, or a JSONL document's title (indexed too). */
  title?: string;
  /** A JSONL document's own `source` field (a URL, a citation). */
  origin?: string;
  text: string;
}

export interface Bm25Index {
  docs: Doc[];
  /** Token count per doc. */
  lengths: Uint32Array;
  avgLength: number;
  /** term → [doc index, term frequency] pairs, doc indexes ascending. */
  postings: Map<string, { docs: number[]; tfs: number[] }>;
}

export interface Hit {
  doc: Doc;
  score: number;
}

export function buildIndex(docs: Doc[]): Bm25Index {
  const lengths = new Uint32Array(docs.length);
  const postings = new Map<string, { docs: number[]; tfs: number[] }>();
  let total = 0;
  docs.forEach((doc, i) => {
    const tokens = tokenize(doc.title ? `${doc.title}\n${doc.text}` : doc.text);
    lengths[i] = tokens.length;
    total += tokens.length;
    const tf = new Map<string, number>();
    for (const t of tokens) tf.set(t, (tf.get(t) ?? 0) + 1);
    for (const [term, n] of tf) {
      let p = postings.get(term);
      if (!p) postings.set(term, (p = { docs: [], tfs: [] }));
      p.docs.push(i);
      p.tfs.push(n);
    }
  });
  return { docs, lengths, avgLength: docs.length > 0 ? total / docs.length : 0, postings };
}

/** The `k` best docs for the query by BM25 (ties keep corpus order); docs sharing no term are left out. */
export function search(index: Bm25Index, query: string, k: number): Hit[] {
  const n = index.docs.length;
  if (n === 0 || k <= 0) return [];
  const scores = new Float64Array(n);
  const touched: number[] = [];
  for (const term of new Set(tokenize(query))) {
    const p = index.postings.get(term);
    if (!p) continue;
    const df = p.docs.length;
    const idf = Math.log(1 + (n - df + 0.5) / (df + 0.5));
    for (let j = 0; j < df; j++) {
      const d = p.docs[j]!;
      const tf = p.tfs[j]!;
      const norm = K1 * (1 - B + (B * index.lengths[d]!) / (index.avgLength || 1));
      if (scores[d] === 0) touched.push(d);
      scores[d]! += (idf * tf * (K1 + 1)) / (tf + norm);
    }
  }
  return touched
    .filter((d) => scores[d]! > 0)
    .sort((a, b) => scores[b]! - scores[a]! || a - b)
    .slice(0, k)
    .map((d) => ({ doc: index.docs[d]!, score: scores[d]! }));
}

// ---------- passages ----------

/** Cuts a long block at sentence ends (or spaces) into pieces of at most `max` characters. */
function chunk(block: string, max = MAX_PASSAGE_CHARS): string[] {
  const out: string[] = [];
  let rest = block.trim();
  while (rest.length > max) {
    const window = rest.slice(0, max + 1);
    let cut = Math.max(window.lastIndexOf('. '), window.lastIndexOf('? '), window.lastIndexOf('! '), window.lastIndexOf('\n'));
    if (cut < max / 2) cut = window.lastIndexOf(' ');
    if (cut < max / 2) cut = max - 1;
    out.push(rest.slice(0, cut + 1).trim());
    rest = rest.slice(cut + 1).trim();
  }
  if (rest) out.push(rest);
  return out;
}

/** Joins consecutive paragraphs into passages of at most MAX_PASSAGE_CHARS (long ones are cut). */
function pack(paragraphs: string[]): string[] {
  const out: string[] = [];
  let current = '';
  for (const p of paragraphs.flatMap((x) => chunk(x))) {
    if (current && current.length + 2 + p.length > MAX_PASSAGE_CHARS) {
      out.push(current);
      current = '';
    }
    current = current ? `${current}\n\n${p}` : p;
  }
  if (current) out.push(current);
  return out;
}

/** Plain text: paragraphs (blank-line separated) packed into passages. */
export function splitText(text: string): string[] {
  return pack(text.replace(/\r\n?/g, '\n').split(/\n\s*\n/).map((p) => p.trim()).filter(Boolean));
}

/** Markdown: passages per section, each with its heading path ("Setup › Linux"); code fences kept whole. */
export function splitMarkdown(text: string): { heading?: string; text: string }[] {
  let src = text.replace(/\r\n?/g, '\n');
  const front = /^---\n[\s\S]*?\n---\n/.exec(src); // YAML front matter
  if (front) src = src.slice(front[0].length);
  const out: { heading?: string; text: string }[] = [];
  const stack: string[] = [];
  let paragraphs: string[] = [];
  let para: string[] = [];
  let fence: string | undefined;
  const endParagraph = () => {
    const p = para.join('\n').trim();
    if (p) paragraphs.push(p);
    para = [];
  };
  const endSection = () => {
    endParagraph();
    const heading = stack.filter(Boolean).join(' › ') || undefined;
    for (const passage of pack(paragraphs)) out.push({ heading, text: passage });
    paragraphs = [];
  };
  for (const line of src.split('\n')) {
    const fenceMark = /^\s{0,3}(```|~~~)/.exec(line)?.[1];
    if (fence) {
      para.push(line);
      if (fenceMark === fence) fence = undefined;
      continue;
    }
    if (fenceMark) {
      fence = fenceMark;
      para.push(line);
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      endSection();
      const level = heading[1]!.length;
      stack.length = Math.min(stack.length, level - 1);
      while (stack.length < level - 1) stack.push('');
      stack.push(heading[2]!);
      continue;
    }
    if (line.trim() === '') endParagraph();
    else para.push(line);
  }
  endSection();
  return out;
}

/** JSONL: one document per line (`text` or `content`, optional `title`, `id`, `source`). */
export function parseJsonl(key: string, text: string): { docs: Doc[]; badLines: number } {
  const docs: Doc[] = [];
  let badLines = 0;
  text.split('\n').forEach((raw, i) => {
    const line = raw.trim();
    if (!line) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      badLines++;
      return;
    }
    const r = (value ?? {}) as Record<string, unknown>;
    const body = typeof r.text === 'string' ? r.text : typeof r.content === 'string' ? r.content : undefined;
    if (typeof value !== 'object' || Array.isArray(value) || body === undefined || !body.trim()) {
      badLines++;
      return;
    }
    const id = typeof r.id === 'string' || typeof r.id === 'number' ? `#${r.id}` : `:${i + 1}`;
    const title = typeof r.title === 'string' && r.title.trim() ? r.title.trim() : undefined;
    const origin = typeof r.source === 'string' && r.source.trim() ? r.source.trim() : undefined;
    for (const piece of chunk(body)) docs.push({ source: `${key}${id}`, title, origin, text: piece });
  });
  return { docs, badLines };
}

// ---------- corpus ----------

const SUPPORTED = /\.(md|markdown|txt|jsonl)$/i;

export interface CorpusIndex {
  index: Bm25Index;
  files: number;
  /** Notes for the result: files skipped, lines unreadable, truncation. */
  notes: string[];
}

interface Listed {
  key: string;
  size: number;
  etag?: string;
}

async function mapPool<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Insertion-ordered map trimmed to `max` entries (oldest first out). */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  while (map.size > max) map.delete(map.keys().next().value!);
}

const byRun = new Map<string, Promise<CorpusIndex>>();
const byListing = new Map<string, Promise<CorpusIndex>>();

/** Forgets every cached index (tests). */
export function clearRetrieveCache(): void {
  byRun.clear();
  byListing.clear();
}

async function readCorpus(blobs: BlobStore, bucket: string, files: Listed[]): Promise<CorpusIndex> {
  const docs: Doc[] = [];
  const tooLarge: string[] = [];
  let badLines = 0;
  let truncated = false;
  let read = 0;
  for (let start = 0; start < files.length && !truncated; start += READ_CONCURRENCY) {
    const batch = files.slice(start, start + READ_CONCURRENCY);
    const texts = await Promise.all(
      batch.map((f) => (f.size > MAX_FILE_BYTES ? Promise.resolve(undefined) : blobs.getText(bucket, f.key))),
    );
    for (let i = 0; i < batch.length && !truncated; i++) {
      const { key } = batch[i]!;
      const text = texts[i];
      if (text === undefined) {
        tooLarge.push(key);
        continue;
      }
      read++;
      let found: Doc[];
      if (/\.jsonl$/i.test(key)) {
        const parsed = parseJsonl(key, text);
        found = parsed.docs;
        badLines += parsed.badLines;
      } else if (/\.txt$/i.test(key)) {
        found = splitText(text).map((t) => ({ source: key, text: t }));
      } else {
        found = splitMarkdown(text).map((p) => ({ source: key, title: p.heading, text: p.text }));
      }
      for (const doc of found) {
        if (docs.length >= MAX_PASSAGES) {
          truncated = true;
          break;
        }
        docs.push(doc);
      }
    }
  }
  const notes: string[] = [];
  if (truncated) {
    notes.push(`the corpus is larger than ${MAX_PASSAGES.toLocaleString('en-US')} passages: only the first ones (in key order) are searched`);
  }
  if (tooLarge.length > 0) {
    const names = tooLarge.slice(0, 3).join(', ') + (tooLarge.length > 3 ? `, and ${tooLarge.length - 3} more` : '');
    notes.push(`skipped ${tooLarge.length} file${tooLarge.length > 1 ? 's' : ''} over ${MAX_FILE_BYTES / 1024 / 1024} MB: ${names}`);
  }
  if (badLines > 0) notes.push(`skipped ${badLines} JSONL line${badLines > 1 ? 's' : ''} without a "text" or "content" string`);
  return { index: buildIndex(docs), files: read, notes };
}

/** Lists the corpus and returns its index, reusing one built from the same listing. */
async function loadCorpus(blobs: BlobStore, bucket: string, prefix: string): Promise<CorpusIndex> {
  const where = `s3://${bucket}/${prefix}`;
  const all = (await blobs.list(bucket, prefix)).filter((k) => !k.endsWith('/'));
  const keys = all.filter((k) => SUPPORTED.test(k)).sort();
  if (keys.length === 0) {
    throw new Error(
      all.length === 0
        ? `no knowledge corpus under ${where} (upload .md, .txt or .jsonl files there)`
        : `no knowledge corpus under ${where}: none of its ${all.length} files is .md, .txt or .jsonl`,
    );
  }
  const files = await mapPool(keys, READ_CONCURRENCY * 2, async (key): Promise<Listed> => {
    const head = await blobs.head(bucket, key);
    return { key, size: head?.size ?? 0, etag: head?.etag };
  });
  const fingerprint = createHash('sha256')
    .update(`${bucket}\0${prefix}\0`)
    .update(files.map((f) => `${f.key}\0${f.size}\0${f.etag ?? ''}`).join('\n'))
    .digest('hex');
  let built = byListing.get(fingerprint);
  if (!built) {
    built = readCorpus(blobs, bucket, files);
    remember(byListing, fingerprint, built, MAX_CACHED_INDEXES);
    built.catch(() => {
      if (byListing.get(fingerprint) === built) byListing.delete(fingerprint);
    });
  }
  const result = await built;
  if (result.index.docs.length === 0) throw new Error(`the knowledge corpus under ${where} has no text to search`);
  return result;
}

/** The run's index: built once per run (concurrent first calls share it); failures are not kept. */
function corpusFor(blobs: BlobStore, bucket: string, prefix: string, runId: string | undefined): Promise<CorpusIndex> {
  if (runId === undefined) return loadCorpus(blobs, bucket, prefix);
  const key = `${runId}\0${bucket}\0${prefix}`;
  const cached = byRun.get(key);
  if (cached) return cached;
  const loading = loadCorpus(blobs, bucket, prefix);
  remember(byRun, key, loading, MAX_CACHED_RUNS);
  loading.catch(() => {
    if (byRun.get(key) === loading) byRun.delete(key);
  });
  return loading;
}

/** Waits for `promise` unless `signal` aborts first (the shared build itself goes on). */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new Error('retrieve was cancelled'));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new Error('retrieve was cancelled (the index is still being built for later calls)'));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

export function formatHits(hits: Hit[]): string {
  return hits
    .map(({ doc, score }, i) => {
      const title = doc.title ? ` › ${doc.title}` : '';
      const origin = doc.origin ? ` (source: ${doc.origin})` : '';
      return `${i + 1}. ${doc.source}${title}${origin} [score ${score.toFixed(3)}]\n${doc.text}`;
    })
    .join('\n\n');
}

export const retrieveTool: Tool = {
  name: 'retrieve',
  description:
    "Searches the user's knowledge corpus (their own documents) by keywords and returns the best-matching passages " +
    'with their source and a relevance score. Use it to check facts the task depends on. ' +
    'Write a short keyword query (names, terms, numbers), not a whole question.',
  parameters: {
    type: 'object',
    properties: {
      query: { type: 'string', description: 'Keywords to search for', maxLength: 1000 },
      top_k: { type: 'integer', description: `Passages to return (1-${MAX_TOP_K})`, minimum: 1, maximum: MAX_TOP_K },
    },
    required: ['query'],
    additionalProperties: false,
  },
  limits: { timeoutMs: 30_000, maxOutputChars: 16_000 },
  async execute(args, ctx) {
    const { query, top_k } = (args ?? {}) as { query?: unknown; top_k?: unknown };
    if (typeof query !== 'string' || !query.trim()) throw new Error('argument "query" must be a non-empty string');
    if (tokenize(query).length === 0) throw new Error('the query has no searchable words (only stopwords or punctuation)');
    const k = top_k ?? ctx.settings?.retrieve.topK ?? DEFAULT_TOP_K;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 1 || k > MAX_TOP_K) {
      throw new Error(`argument "top_k" must be an integer from 1 to ${MAX_TOP_K}`);
    }
    const services = requireServices(ctx, 'retrieve');
    const prefix = ctx.settings?.retrieve.prefix ?? DEFAULT_PREFIX;
    const corpus = await untilAborted(corpusFor(services.blobs, services.buckets.input, prefix, ctx.runId), ctx.signal);
    const hits = search(corpus.index, query, k);
    const notes = corpus.notes.map((n) => `(note: ${n})\n`).join('');
    if (hits.length === 0) return `${notes}no passages match "${query}" in ${corpus.files} files`;
    return notes + formatHits(hits);
  },
};
