// Streaming line splitter for input objects (an S3 object body, a local file stream).
//
// Memory is bounded by `maxLineBytes` plus the chunk being scanned: complete lines are decoded
// straight out of the chunk, only the unfinished tail of a line is copied, and a line that grows
// past the limit is dropped on the spot and counted (not buffered) until its newline.

/** One line of the source: its text, or why it cannot be used. Line numbers are 1-based. */
export type RawLine = { line: number; text: string } | { line: number; error: string; excerpt: string };

export interface ReadLinesOptions {
  /** Longest accepted line in bytes, not counting its `\n` / `\r\n` terminator. Default 1 MiB. */
  maxLineBytes?: number;
  /** Number of the first line in `body` (a byte-range chunk of a larger object). Default 1. */
  firstLine?: number;
}

export const DEFAULT_MAX_LINE_BYTES = 1_048_576;
/** Longest excerpt, in characters. */
export const EXCERPT_CHARS = 200;
/** Bytes kept from the start of an over-long line: enough for a full excerpt (4 bytes a character at most). */
const EXCERPT_BYTES = EXCERPT_CHARS * 4;

const LF = 0x0a;
const CR = 0x0d;
const EMPTY: Buffer = Buffer.alloc(0);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * Split a byte stream into lines: `\n` separated, a trailing `\r` stripped, a final line without
 * newline included, no extra empty line after a final newline, a UTF-8 BOM on line 1 stripped.
 * Over-long lines, lines with a NUL byte and lines that are not valid UTF-8 come out as errors
 * with an excerpt; the lines after them are unaffected.
 */
export async function* readLines(
  body: AsyncIterable<Uint8Array>,
  opts: ReadLinesOptions = {},
): AsyncGenerator<RawLine> {
  const maxLineBytes = opts.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
  const firstLine = opts.firstLine ?? 1;
  if (!Number.isSafeInteger(maxLineBytes) || maxLineBytes < 1) {
    throw new RangeError(`maxLineBytes must be a positive integer, got ${maxLineBytes}`);
  }
  if (!Number.isSafeInteger(firstLine) || firstLine < 1) {
    throw new RangeError(`firstLine must be a positive integer, got ${firstLine}`);
  }
  // A line may be held with one extra byte: a `\r` that the `\n` of the next chunk will strip.
  const holdLimit = maxLineBytes + 1;

  let line = firstLine;
  /** The start of the current line when it spans chunks (a copy: callers may reuse chunk buffers). */
  let pending = EMPTY;
  let held = 0;
  /** Set while the current line is over the limit: its bytes are counted, not kept. */
  let skipping = false;
  let skippedBytes = 0;
  let skippedHead = EMPTY;
  let skippedLast = 0;

  const hold = (segment: Buffer) => {
    const need = held + segment.length;
    if (need > pending.length) {
      const grown = Buffer.allocUnsafe(Math.min(holdLimit, Math.max(need, pending.length * 2, 4096)));
      pending.copy(grown, 0, 0, held);
      pending = grown;
    }
    segment.copy(pending, held);
    held = need;
  };

  /** The current line, `segment` included, is over the limit: keep its first bytes for the excerpt. */
  const startSkipping = (segment: Buffer) => {
    const fromPending = Math.min(held, EXCERPT_BYTES);
    const fromSegment = Math.min(segment.length, EXCERPT_BYTES - fromPending);
    skippedHead = Buffer.concat([pending.subarray(0, fromPending), segment.subarray(0, fromSegment)]);
    skippedBytes = held + segment.length;
    skippedLast = segment.length > 0 ? segment[segment.length - 1]! : pending[held - 1]!;
    skipping = true;
    held = 0;
  };

  /** The current line ends with `tail` (a part of the current chunk): turn it into a RawLine. */
  const finish = (tail: Buffer): RawLine => {
    const n = line++;
    if (skipping) {
      skipping = false;
      const size = skippedLast === CR ? skippedBytes - 1 : skippedBytes;
      // The kept head is the whole line when the line is short (a tiny limit): drop its `\r` too.
      return tooLong(n, size, maxLineBytes, skippedHead.subarray(0, size));
    }
    let bytes = tail;
    if (held > 0) {
      hold(tail);
      bytes = pending.subarray(0, held);
      held = 0;
    }
    if (bytes.length > 0 && bytes[bytes.length - 1] === CR) bytes = bytes.subarray(0, -1);
    if (n === 1 && bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf) {
      bytes = bytes.subarray(3);
    }
    if (bytes.length > maxLineBytes) return tooLong(n, bytes.length, maxLineBytes, bytes);
    return decodeLine(n, bytes);
  };

  for await (const raw of body) {
    const chunk = toBuffer(raw);
    let pos = 0;
    while (pos < chunk.length) {
      const nl = chunk.indexOf(LF, pos);
      const end = nl === -1 ? chunk.length : nl;
      const segment = chunk.subarray(pos, end);
      if (skipping) {
        skippedBytes += segment.length;
        if (segment.length > 0) skippedLast = segment[segment.length - 1]!;
      } else if (held + segment.length > holdLimit) {
        startSkipping(segment);
      } else if (nl === -1) {
        hold(segment);
      }
      if (nl === -1) break;
      yield finish(skipping ? EMPTY : segment);
      pos = nl + 1;
    }
  }
  if (skipping || held > 0) yield finish(EMPTY);
}

function tooLong(line: number, size: number, limit: number, head: Uint8Array): RawLine {
  return {
    line,
    error: `line is ${size} bytes, over the ${limit}-byte limit`,
    excerpt: excerptOf(head.subarray(0, EXCERPT_BYTES)),
  };
}

function decodeLine(line: number, bytes: Buffer): RawLine {
  if (bytes.indexOf(0) !== -1) {
    return { line, error: 'line contains binary data (NUL byte)', excerpt: excerptOf(bytes) };
  }
  try {
    return { line, text: utf8.decode(bytes) };
  } catch {
    return { line, error: 'line is not valid UTF-8', excerpt: excerptOf(bytes) };
  }
}

function toBuffer(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8');
  return Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
}

/**
 * The start of a line for a report: at most 200 characters, on one line. Control and other
 * invisible characters are escaped (`\x00`, `\n`, `\u200b`), bytes that are not valid UTF-8 are
 * shown as `\xff`; a cut excerpt ends with `…`. Backslashes are left alone, so JSON escapes stay
 * readable.
 */
export function excerptOf(input: Uint8Array | string): string {
  // The piece generators stop after EXCERPT_CHARS + 1 pieces, so this stays small for any input.
  const pieces = [...(typeof input === 'string' ? stringPieces(input) : bytePieces(input))];
  // Widths in UTF-16 code units, so that `excerpt.length <= 200` holds too.
  const total = pieces.reduce((sum, p) => sum + p.length, 0);
  if (total <= EXCERPT_CHARS) return pieces.join('');
  let out = '';
  for (const piece of pieces) {
    if (out.length + piece.length > EXCERPT_CHARS - 1) break; // an escape is never cut in half
    out += piece;
  }
  return `${out}…`;
}

function escapeCodePoint(cp: number): string | undefined {
  switch (cp) {
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
  }
  if (cp < 0x20 || cp === 0x7f) return `\\x${cp.toString(16).padStart(2, '0')}`;
  if (
    (cp >= 0x80 && cp <= 0x9f) || // C1 controls
    cp === 0xad || // soft hyphen
    (cp >= 0x200b && cp <= 0x200f) || // zero-width characters, direction marks
    (cp >= 0x2028 && cp <= 0x202e) || // line/paragraph separators, bidi embedding
    (cp >= 0x2060 && cp <= 0x206f) || // word joiner, bidi isolates
    cp === 0xfeff || // BOM / zero-width no-break space
    (cp >= 0xd800 && cp <= 0xdfff) // lone surrogate (only possible from a string)
  ) {
    return `\\u${cp.toString(16).padStart(4, '0')}`;
  }
  return undefined;
}

/** Code points of a string, escaped where needed; stops once an excerpt is surely full. */
function* stringPieces(s: string): Generator<string> {
  let count = 0;
  for (let i = 0; i < s.length && count <= EXCERPT_CHARS; count++) {
    const cp = s.codePointAt(i)!;
    const ch = String.fromCodePoint(cp);
    i += ch.length;
    yield escapeCodePoint(cp) ?? ch;
  }
}

/** Decode bytes leniently: valid UTF-8 sequences as characters, every other byte as `\xNN`. */
function* bytePieces(bytes: Uint8Array): Generator<string> {
  let count = 0;
  for (let i = 0; i < bytes.length && count <= EXCERPT_CHARS; count++) {
    const len = utf8SequenceLength(bytes, i);
    if (len === 0) {
      yield `\\x${bytes[i]!.toString(16).padStart(2, '0')}`;
      i += 1;
      continue;
    }
    const cp = decodeSequence(bytes, i, len);
    i += len;
    yield escapeCodePoint(cp) ?? String.fromCodePoint(cp);
  }
}

/** Length of the valid UTF-8 sequence starting at `i`, or 0 when the byte there does not start one. */
function utf8SequenceLength(b: Uint8Array, i: number): number {
  const b0 = b[i]!;
  if (b0 < 0x80) return 1;
  const cont = (k: number, lo = 0x80, hi = 0xbf) => {
    const x = b[i + k];
    return x !== undefined && x >= lo && x <= hi;
  };
  if (b0 >= 0xc2 && b0 <= 0xdf) return cont(1) ? 2 : 0;
  if (b0 === 0xe0) return cont(1, 0xa0) && cont(2) ? 3 : 0;
  if (b0 === 0xed) return cont(1, 0x80, 0x9f) && cont(2) ? 3 : 0; // no surrogates
  if (b0 >= 0xe1 && b0 <= 0xef) return cont(1) && cont(2) ? 3 : 0;
  if (b0 === 0xf0) return cont(1, 0x90) && cont(2) && cont(3) ? 4 : 0;
  if (b0 >= 0xf1 && b0 <= 0xf3) return cont(1) && cont(2) && cont(3) ? 4 : 0;
  if (b0 === 0xf4) return cont(1, 0x80, 0x8f) && cont(2) && cont(3) ? 4 : 0;
  return 0;
}

function decodeSequence(b: Uint8Array, i: number, len: number): number {
  const b0 = b[i]!;
  if (len === 1) return b0;
  let cp = b0 & (len === 2 ? 0x1f : len === 3 ? 0x0f : 0x07);
  for (let k = 1; k < len; k++) cp = (cp << 6) | (b[i + k]! & 0x3f);
  return cp;
}
