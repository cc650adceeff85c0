import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { excerptOf, readLines, type RawLine } from '../../../layers/core/src/input/lines';
import { normalizeLine } from '../../../layers/core/src/input/formats';

const bytes = (...parts: (string | number[])[]): Uint8Array =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

async function* chunked(data: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

async function* fromChunks(chunks: (string | number[] | Uint8Array)[]): AsyncGenerator<Uint8Array> {
  for (const c of chunks) yield c instanceof Uint8Array ? c : bytes(c);
}

async function collect(body: AsyncIterable<Uint8Array>, opts?: Parameters<typeof readLines>[1]): Promise<RawLine[]> {
  const out: RawLine[] = [];
  for await (const l of readLines(body, opts)) out.push(l);
  return out;
}

const linesOf = (text: string | Uint8Array, chunkSize = 1 << 16, opts?: Parameters<typeof readLines>[1]) =>
  collect(chunked(typeof text === 'string' ? bytes(text) : text, chunkSize), opts);

describe('readLines: splitting', () => {
  it('splits on \\n and numbers lines from 1', async () => {
    expect(await linesOf('a\nb\nc\n')).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: 'b' },
      { line: 3, text: 'c' },
    ]);
  });

  it('strips the \\r of CRLF, also when \\r and \\n arrive in different chunks, but keeps a \\r inside a line', async () => {
    expect(await linesOf('a\r\nb\r\nc\r\n')).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: 'b' },
      { line: 3, text: 'c' },
    ]);
    expect(await collect(fromChunks(['one\r', '\ntwo\r', '\n']))).toEqual([
      { line: 1, text: 'one' },
      { line: 2, text: 'two' },
    ]);
    expect(await linesOf('x\ry\r\n')).toEqual([{ line: 1, text: 'x\ry' }]);
  });

  it('counts a final line without a newline, and adds no empty line after a final newline', async () => {
    expect(await linesOf('a\nb')).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: 'b' },
    ]);
    expect(await linesOf('a\r\nb\r')).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: 'b' },
    ]);
    expect(await linesOf('a\n')).toEqual([{ line: 1, text: 'a' }]);
  });

  it('keeps empty lines (they are reported later) and yields nothing for an empty body', async () => {
    expect(await linesOf('a\n\n\r\nb\n\n')).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: '' },
      { line: 3, text: '' },
      { line: 4, text: 'b' },
      { line: 5, text: '' },
    ]);
    expect(await linesOf('')).toEqual([]);
    expect(await collect(fromChunks([[], [], []]))).toEqual([]);
    expect(await linesOf('\n')).toEqual([{ line: 1, text: '' }]);
  });

  it('reassembles lines split into 1-byte chunks, and many lines in one chunk', async () => {
    const text = '{"prompt":"héllo"}\r\n{"prompt":"wörld 🌍"}\nlast';
    const expected = [
      { line: 1, text: '{"prompt":"héllo"}' },
      { line: 2, text: '{"prompt":"wörld 🌍"}' },
      { line: 3, text: 'last' },
    ];
    expect(await linesOf(text, 1)).toEqual(expected);
    expect(await linesOf(text, 3)).toEqual(expected);
    expect(await linesOf(text, 1 << 20)).toEqual(expected);
  });

  it('numbers lines from firstLine (a byte-range chunk of a larger object)', async () => {
    expect(await linesOf('a\nb\n', 4, { firstLine: 1001 })).toEqual([
      { line: 1001, text: 'a' },
      { line: 1002, text: 'b' },
    ]);
  });

  it('reads a Node Readable', async () => {
    const body = Readable.from([Buffer.from('{"prompt":"a"}\n{"pro'), Buffer.from('mpt":"b"}\n')]);
    expect(await collect(body)).toEqual([
      { line: 1, text: '{"prompt":"a"}' },
      { line: 2, text: '{"prompt":"b"}' },
    ]);
  });

  it('copies the bytes it keeps: a caller may reuse its chunk buffer', async () => {
    const shared = new Uint8Array(4);
    async function* reusing(): AsyncGenerator<Uint8Array> {
      for (const part of ['abcd', 'ef\ngh', 'ij\n']) {
        const b = bytes(part);
        const view = b.length <= shared.length ? shared.subarray(0, b.length) : new Uint8Array(b.length);
        view.set(b);
        yield view;
        view.fill(0x3f); // '?': scribble over the chunk once the reader has moved on
      }
    }
    expect(await collect(reusing())).toEqual([
      { line: 1, text: 'abcdef' },
      { line: 2, text: 'ghij' },
    ]);
  });

  it('pulls the body lazily: a line comes out before the next chunk is read', async () => {
    const pulled: number[] = [];
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let i = 0; i < 3; i++) {
        pulled.push(i);
        yield bytes(`line ${i}\n`);
      }
    }
    const it = readLines(body());
    expect((await it.next()).value).toEqual({ line: 1, text: 'line 0' });
    expect(pulled).toEqual([0]);
    await it.return(undefined);
  });

  it('rejects nonsensical options', async () => {
    await expect(linesOf('a', 1, { maxLineBytes: 0 })).rejects.toThrow(RangeError);
    await expect(linesOf('a', 1, { firstLine: 0 })).rejects.toThrow(RangeError);
  });
});

describe('readLines: BOM', () => {
  it('strips a UTF-8 BOM on line 1, even split across chunks', async () => {
    const data = bytes([0xef, 0xbb, 0xbf], '{"prompt":"x"}\nb\n');
    for (const size of [1, 2, 64]) {
      expect(await linesOf(data, size)).toEqual([
        { line: 1, text: '{"prompt":"x"}' },
        { line: 2, text: 'b' },
      ]);
    }
  });

  it('keeps U+FEFF on other lines and in a chunk that does not start the file', async () => {
    expect(await linesOf(bytes('a\n', [0xef, 0xbb, 0xbf], 'b\n'))).toEqual([
      { line: 1, text: 'a' },
      { line: 2, text: '\ufeffb' },
    ]);
    expect(await linesOf(bytes([0xef, 0xbb, 0xbf], 'b\n'), 64, { firstLine: 7 })).toEqual([
      { line: 7, text: '\ufeffb' },
    ]);
  });

  it('gives an empty line for a file that is only a BOM', async () => {
    expect(await linesOf(bytes([0xef, 0xbb, 0xbf]))).toEqual([{ line: 1, text: '' }]);
  });
});

describe('readLines: long lines', () => {
  const MiB = 1_048_576;

  it('reports a 2 MB line in the middle with its line number and real size, and the next line still parses', async () => {
    const long = `{"prompt":"${'x'.repeat(2 * MiB - 13)}"}`;
    expect(Buffer.byteLength(long)).toBe(2 * MiB);
    const data = bytes('{"prompt":"first"}\n', long, '\n{"prompt":"after"}\n');
    const lines = await linesOf(data, 64 * 1024);
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({ line: 1, text: '{"prompt":"first"}' });
    expect(lines[1]).toEqual({
      line: 2,
      error: 'line is 2097152 bytes, over the 1048576-byte limit',
      excerpt: `{"prompt":"${'x'.repeat(188)}…`,
    });
    expect(lines[2]).toEqual({ line: 3, text: '{"prompt":"after"}' });
    const after = normalizeLine((lines[2] as { text: string }).text, 3);
    expect(after).toMatchObject({ ok: true, input: { id: 'line-3', messages: [{ role: 'user', content: 'after' }] } });
  });

  it('never keeps more than maxLineBytes plus one chunk of an over-long line', async () => {
    // The excerpt is made from what the reader kept of the line: with a 10-byte limit and 7-byte
    // chunks it can only have seen the first 10 + 7 bytes of this 1000-byte line (+ 1: a byte that
    // could be the `\r` of a CRLF is held before the limit counts).
    const line = Array.from({ length: 1000 }, (_, i) => String.fromCharCode(97 + (i % 26))).join('');
    const lines = await linesOf(`ok\n${line}\nnext\n`, 7, { maxLineBytes: 10 });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toEqual({ line: 1, text: 'ok' });
    const err = lines[1] as { line: number; error: string; excerpt: string };
    expect(err.line).toBe(2);
    expect(err.error).toBe('line is 1000 bytes, over the 10-byte limit');
    expect(err.excerpt.length).toBeGreaterThanOrEqual(10);
    expect(err.excerpt.length).toBeLessThanOrEqual(10 + 1 + 7);
    expect(line.startsWith(err.excerpt)).toBe(true);
    expect(lines[2]).toEqual({ line: 3, text: 'next' });
  });

  it('does not buffer a 256 MiB line: memory stays near the 1 MiB limit', async () => {
    const chunk = new Uint8Array(64 * 1024).fill(0x61); // one buffer, yielded over and over
    const total = 256 * MiB;
    const before = process.memoryUsage().arrayBuffers;
    let peak = before;
    async function* body(): AsyncGenerator<Uint8Array> {
      yield bytes('{"prompt":"a"}\n');
      for (let sent = 0; sent < total; sent += chunk.length) {
        yield chunk;
        if ((sent / chunk.length) % 64 === 0) peak = Math.max(peak, process.memoryUsage().arrayBuffers);
      }
      yield bytes('\n{"prompt":"b"}');
    }
    const lines = await collect(body());
    peak = Math.max(peak, process.memoryUsage().arrayBuffers);
    expect(lines.map((l) => ('error' in l ? l.error : l.text))).toEqual([
      '{"prompt":"a"}',
      `line is ${total} bytes, over the 1048576-byte limit`,
      '{"prompt":"b"}',
    ]);
    expect(peak - before).toBeLessThan(16 * MiB);
  });

  it('measures the limit without the line terminator', async () => {
    const lines = await linesOf('12345\r\n123456\r\n1234\n12345', 2, { maxLineBytes: 5 });
    expect(lines).toEqual([
      { line: 1, text: '12345' },
      { line: 2, error: 'line is 6 bytes, over the 5-byte limit', excerpt: '123456' },
      { line: 3, text: '1234' },
      { line: 4, text: '12345' },
    ]);
  });

  it('reports an over-long last line without a newline', async () => {
    expect(await linesOf('ok\n0123456789abc', 4, { maxLineBytes: 8 })).toEqual([
      { line: 1, text: 'ok' },
      { line: 2, error: 'line is 13 bytes, over the 8-byte limit', excerpt: '0123456789abc' },
    ]);
  });

  it('reports an over-long line that arrives in a single chunk', async () => {
    const lines = await linesOf('a\nabcdefghijklmnop\nb\n', 1 << 16, { maxLineBytes: 8 });
    expect(lines).toEqual([
      { line: 1, text: 'a' },
      { line: 2, error: 'line is 16 bytes, over the 8-byte limit', excerpt: 'abcdefghijklmnop' },
      { line: 3, text: 'b' },
    ]);
  });
});

describe('readLines: binary and invalid UTF-8', () => {
  it('reports a line with a NUL byte and carries on', async () => {
    expect(await linesOf(bytes('a\n', 'x', [0], 'y\n', 'b\n'))).toEqual([
      { line: 1, text: 'a' },
      { line: 2, error: 'line contains binary data (NUL byte)', excerpt: 'x\\x00y' },
      { line: 3, text: 'b' },
    ]);
  });

  it('reports a UTF-16 file as binary, BOM and all escaped', async () => {
    const utf16 = Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('{"prompt":"hi"}\n', 'utf16le')]);
    const lines = await linesOf(utf16);
    expect(lines).toEqual([
      { line: 1, error: 'line contains binary data (NUL byte)', excerpt: '\\xff\\xfe{\\x00"\\x00p\\x00r\\x00o\\x00m\\x00p\\x00t\\x00"\\x00:\\x00"\\x00h\\x00i\\x00"\\x00}\\x00' },
      // The last NUL of the UTF-16 newline starts a line of its own.
      { line: 2, error: 'line contains binary data (NUL byte)', excerpt: '\\x00' },
    ]);
  });

  it('reports invalid UTF-8 and carries on', async () => {
    expect(await linesOf(bytes('a\n', 'caf', [0xe9], '\n', 'b'))).toEqual([
      { line: 1, text: 'a' },
      { line: 2, error: 'line is not valid UTF-8', excerpt: 'caf\\xe9' },
      { line: 3, text: 'b' },
    ]);
  });

  it('rejects overlong encodings and UTF-16 surrogates encoded in UTF-8', async () => {
    const lines = await linesOf(bytes([0xc0, 0xaf], '\n', [0xed, 0xa0, 0x80], '\n'));
    expect(lines).toEqual([
      { line: 1, error: 'line is not valid UTF-8', excerpt: '\\xc0\\xaf' },
      { line: 2, error: 'line is not valid UTF-8', excerpt: '\\xed\\xa0\\x80' },
    ]);
  });

  it('decodes a multi-byte character split across chunks, at every split point', async () => {
    for (const ch of ['é', '€', '🌍']) {
      const data = bytes(`{"prompt":"${ch}"}\n`);
      const width = Buffer.byteLength(ch);
      for (let cut = 12; cut < 12 + width; cut++) {
        const lines = await collect(fromChunks([data.subarray(0, cut), data.subarray(cut)]));
        expect(lines).toEqual([{ line: 1, text: `{"prompt":"${ch}"}` }]);
      }
    }
  });

  it('reports a truncated multi-byte sequence split across chunks', async () => {
    // € is e2 82 ac: the first two bytes end chunk 1, and chunk 2 goes on with ASCII instead.
    const lines = await collect(fromChunks([bytes('ab', [0xe2, 0x82]), bytes('c\nok\n')]));
    expect(lines).toEqual([
      { line: 1, error: 'line is not valid UTF-8', excerpt: 'ab\\xe2\\x82c' },
      { line: 2, text: 'ok' },
    ]);
  });

  it('reports a truncated multi-byte sequence at the end of the body', async () => {
    expect(await collect(fromChunks([bytes('ab', [0xf0, 0x9f, 0x8c])]))).toEqual([
      { line: 1, error: 'line is not valid UTF-8', excerpt: 'ab\\xf0\\x9f\\x8c' },
    ]);
  });
});

describe('excerptOf', () => {
  it('returns short text unchanged', () => {
    expect(excerptOf('{"prompt":"héllo 🌍"}')).toBe('{"prompt":"héllo 🌍"}');
    expect(excerptOf(bytes('{"prompt":"héllo 🌍"}'))).toBe('{"prompt":"héllo 🌍"}');
    expect(excerptOf('')).toBe('');
  });

  it('cuts at 200 characters, marking the cut', () => {
    expect(excerptOf('a'.repeat(200))).toBe('a'.repeat(200));
    expect(excerptOf('a'.repeat(201))).toBe(`${'a'.repeat(199)}…`);
    expect(excerptOf(bytes('b'.repeat(5000)))).toBe(`${'b'.repeat(199)}…`);
  });

  it('escapes control and invisible characters, keeps backslashes as they are', () => {
    expect(excerptOf('a\tb\nc\rd\u0000e\u001bf\u007fg')).toBe('a\\tb\\nc\\rd\\x00e\\x1bf\\x7fg');
    expect(excerptOf('x\u200by\u202ez\ufeff\u0085')).toBe('x\\u200by\\u202ez\\ufeff\\u0085');
    expect(excerptOf('{"a":"line\\nbreak \\"q\\""}')).toBe('{"a":"line\\nbreak \\"q\\""}');
    expect(excerptOf('lone \ud800 surrogate')).toBe('lone \\ud800 surrogate');
  });

  it('shows bytes that are not UTF-8 as \\xNN and decodes the rest', () => {
    expect(excerptOf(bytes('ok ', [0xff], ' € ', [0x80, 0xe2, 0x82]))).toBe('ok \\xff € \\x80\\xe2\\x82');
  });

  it('never cuts an escape or a surrogate pair in half', () => {
    const nul = excerptOf(new Uint8Array(300));
    expect(nul).toBe(`${'\\x00'.repeat(49)}…`);
    const emoji = excerptOf('🌍'.repeat(150));
    expect(emoji.length).toBeLessThanOrEqual(200);
    expect(emoji).toBe(`${'🌍'.repeat(99)}…`);
  });
});
