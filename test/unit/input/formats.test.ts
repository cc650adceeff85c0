import { createReadStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { normalizeLine } from '../../../layers/core/src/input/formats';
import { readLines } from '../../../layers/core/src/input/lines';
import type { NormalizedInput } from '../../../layers/core/src/types';

const DATASETS = fileURLToPath(new URL('../../../examples/data/', import.meta.url));

/** The first `n` lines of a shared data set, read the way ingest reads an object. */
async function firstLines(file: string, n: number): Promise<{ line: number; text: string }[]> {
  const out: { line: number; text: string }[] = [];
  for await (const l of readLines(createReadStream(`${DATASETS}${file}`))) {
    if ('error' in l) throw new Error(`line ${l.line}: ${l.error}`);
    out.push(l);
    if (out.length === n) break;
  }
  return out;
}

const ok = (value: unknown, line = 1): NormalizedInput => {
  const r = normalizeLine(typeof value === 'string' ? value : JSON.stringify(value), line);
  if (!r.ok) throw new Error(`expected a valid line, got: ${r.invalid.reason}`);
  return r.input;
};

const reason = (value: unknown, line = 1): string => {
  const r = normalizeLine(typeof value === 'string' ? value : JSON.stringify(value), line);
  if (r.ok) throw new Error(`expected an invalid line, got format ${r.input.format}`);
  expect(r.invalid.line).toBe(line);
  return r.invalid.reason;
};

const user = (content: string) => ({ role: 'user', content });

describe('real data sets', () => {
  it('reads GSM8K lines as question-answer with the #### number as the reference', async () => {
    const lines = await firstLines('gsm8k-test.jsonl', 3);
    const inputs = lines.map((l) => ok(l.text, l.line));
    expect(inputs.map((i) => [i.id, i.line, i.format, i.reference])).toEqual([
      ['line-1', 1, 'question-answer', '18'],
      ['line-2', 2, 'question-answer', '3'],
      ['line-3', 3, 'question-answer', '70000'],
    ]);
    expect(inputs[0]!.messages).toEqual([
      user(
        'Janet’s ducks lay 16 eggs per day. She eats three for breakfast every morning and bakes muffins for her friends every day with four. She sells the remainder at the farmers\' market daily for $2 per fresh duck egg. How much in dollars does she make every day at the farmers\' market?',
      ),
    ]);
    for (const [i, input] of inputs.entries()) {
      const raw = JSON.parse(lines[i]!.text) as { question: string; answer: string };
      expect(input.messages).toEqual([user(raw.question)]);
      expect(input.metadata).toEqual({ solution: raw.answer });
      expect(input.domain).toBeUndefined();
    }
    expect(inputs[2]!.metadata!.solution).toMatch(/\n#### 70000$/);
  });

  it('reads MT-Bench lines with the first turn as the prompt and the rest in metadata', async () => {
    const lines = await firstLines('mt-bench-questions.jsonl', 3);
    const inputs = lines.map((l) => ok(l.text, l.line));
    expect(inputs.map((i) => [i.id, i.line, i.format, i.domain, i.reference])).toEqual([
      ['81', 1, 'mt-bench', 'writing', undefined],
      ['82', 2, 'mt-bench', 'writing', undefined],
      ['83', 3, 'mt-bench', 'writing', undefined],
    ]);
    expect(inputs[0]).toEqual({
      id: '81',
      line: 1,
      format: 'mt-bench',
      messages: [
        user(
          'Compose an engaging travel blog post about a recent trip to Hawaii, highlighting cultural experiences and must-see attractions.',
        ),
      ],
      domain: 'writing',
      metadata: { turns: ['Rewrite your previous response. Start every sentence with the letter A.'] },
    });
    for (const [i, input] of inputs.entries()) {
      const raw = JSON.parse(lines[i]!.text) as { turns: string[] };
      expect(input.messages).toEqual([user(raw.turns[0]!)]);
      expect(input.metadata).toEqual({ turns: raw.turns.slice(1) });
    }
  });
});

describe('openai-chat', () => {
  it('keeps the conversation and takes a trailing assistant message as the reference', () => {
    expect(
      ok({
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'What is 2+2?' },
          { role: 'assistant', content: '4' },
        ],
      }),
    ).toEqual({
      id: 'line-1',
      line: 1,
      format: 'openai-chat',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'What is 2+2?' },
      ],
      reference: '4',
    });
  });

  it('keeps earlier assistant turns and has no reference when the chat ends with the user', () => {
    const input = ok({
      messages: [
        { role: 'user', content: 'Hi' },
        { role: 'assistant', content: 'Hello!' },
        { role: 'user', content: 'Tell me a joke' },
      ],
    });
    expect(input.messages).toEqual([user('Hi'), { role: 'assistant', content: 'Hello!' }, user('Tell me a joke')]);
    expect(input.reference).toBeUndefined();
  });

  it('joins text content parts', () => {
    const input = ok({
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Part one.' }, { type: 'text', text: 'Part two.' }] }],
    });
    expect(input.messages).toEqual([user('Part one.\nPart two.')]);
  });

  it('prefers an explicit reference to the trailing assistant message, which is removed either way', () => {
    const input = ok({
      messages: [user('Q'), { role: 'assistant', content: 'draft' }],
      reference: 'gold',
    });
    expect(input.messages).toEqual([user('Q')]);
    expect(input.reference).toBe('gold');
  });

  it('rejects malformed messages with the field and the problem', () => {
    expect(reason({ messages: 'hi' })).toBe('field "messages" must be an array, got string');
    expect(reason({ messages: [] })).toBe('field "messages" is empty');
    expect(reason({ messages: ['hi'] })).toBe('field "messages[0]" must be an object, got string');
    expect(reason({ messages: [{ content: 'x' }] })).toBe('field "messages[0].role" is missing');
    expect(reason({ messages: [{ role: 'user' }] })).toBe('field "messages[0].content" is missing');
    expect(reason({ messages: [{ role: 'tool', content: 'x' }] })).toBe(
      'field "messages[0].role" must be one of system, user, assistant, got "tool"',
    );
    expect(reason({ messages: [{ role: 7, content: 'x' }] })).toBe(
      'field "messages[0].role" must be one of system, user, assistant, got number',
    );
    expect(reason({ messages: [user('a'), { role: 'assistant', content: null }] })).toBe(
      'field "messages[1].content" must be a string or an array of text parts, got null',
    );
    expect(reason({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] })).toBe(
      'field "messages[0].content[0].image_url.url" must be an s3://bucket/key, https:// or data:image/...;base64 URL, got "x"',
    );
    expect(reason({ messages: [{ role: 'user', content: [{ type: 'input_audio', data: 'x' }] }] })).toBe(
      'field "messages[0].content[0]" has type "input_audio": only text and image_url parts are supported',
    );
    expect(reason({ messages: [{ role: 'user', content: [{ type: 'text', text: 1 }] }] })).toBe(
      'field "messages[0].content[0].text" must be a string, got number',
    );
    expect(reason({ messages: [{ role: 'user', content: ['plain'] }] })).toBe(
      'field "messages[0].content[0]" must be a text part object, got string',
    );
  });

  it('requires the conversation to end with a non-empty user message', () => {
    expect(reason({ messages: [{ role: 'system', content: 'S' }, { role: 'assistant', content: 'A' }] })).toBe(
      'field "messages" must end with a user message (then optionally an assistant reference), but ends with a system message',
    );
    expect(reason({ messages: [user('Q'), { role: 'assistant', content: 'A' }, { role: 'assistant', content: 'B' }] })).toBe(
      'field "messages" must end with a user message (then optionally an assistant reference), but ends with an assistant message',
    );
    expect(reason({ messages: [{ role: 'assistant', content: 'A' }] })).toBe(
      'field "messages" must end with a user message (then optionally an assistant reference), but has no user message',
    );
    expect(reason({ messages: [user('  \n ')] })).toBe('field "messages[0].content" is empty');
  });

  it('enforces the message count and content size limits', () => {
    const many = Array.from({ length: 201 }, (_, i) => user(`m${i}`));
    expect(reason({ messages: many })).toBe('field "messages" has 201 messages, over the 200-message limit');
    expect(ok({ messages: many.slice(0, 200) }).messages).toHaveLength(200);
    expect(reason({ messages: [user('x'.repeat(200_001))] })).toBe(
      'field "messages[0].content" is 200001 characters, over the 200000-character limit',
    );
    expect(ok({ messages: [user('x'.repeat(200_000))] }).messages[0]!.content).toHaveLength(200_000);
  });
});

describe('sharegpt', () => {
  it('maps speakers to roles and takes a trailing gpt turn as the reference', () => {
    expect(
      ok(
        {
          id: 'sg-1',
          conversations: [
            { from: 'system', value: 'You are helpful.' },
            { from: 'human', value: 'Hi' },
            { from: 'gpt', value: 'Hello' },
            { from: 'user', value: 'Capital of France?' },
            { from: 'chatgpt', value: 'Paris' },
          ],
        },
        4,
      ),
    ).toEqual({
      id: 'sg-1',
      line: 4,
      format: 'sharegpt',
      messages: [
        { role: 'system', content: 'You are helpful.' },
        user('Hi'),
        { role: 'assistant', content: 'Hello' },
        user('Capital of France?'),
      ],
      reference: 'Paris',
    });
  });

  it('accepts assistant and bing, in any case', () => {
    const input = ok({
      conversations: [
        { from: 'Human', value: 'a' },
        { from: 'bing', value: 'b' },
        { from: 'USER', value: 'c' },
        { from: 'assistant', value: 'd' },
      ],
    });
    expect(input.messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(input.reference).toBe('d');
  });

  it('rejects unknown speakers and missing or non-string values', () => {
    expect(reason({ conversations: [{ from: 'tool', value: 'x' }] })).toBe(
      'field "conversations[0].from" must be one of human, user, gpt, assistant, chatgpt, bing, system, got "tool"',
    );
    expect(reason({ conversations: [{ value: 'x' }] })).toBe('field "conversations[0].from" is missing');
    expect(reason({ conversations: [{ from: 'human' }] })).toBe('field "conversations[0].value" is missing');
    expect(reason({ conversations: [{ from: 'human', value: ['x'] }] })).toBe(
      'field "conversations[0].value" must be a string, got array',
    );
    expect(reason({ conversations: {} })).toBe('field "conversations" must be an array, got object');
    expect(reason({ conversations: [{ from: 'gpt', value: 'only an answer' }] })).toBe(
      'field "conversations" must end with a user message (then optionally an assistant reference), but has no user message',
    );
    expect(reason({ conversations: [{ from: 'human', value: '' }] })).toBe('field "conversations[0].value" is empty');
    expect(reason({ conversations: [{ from: 'human', value: 'y'.repeat(200_001) }] })).toBe(
      'field "conversations[0].value" is 200001 characters, over the 200000-character limit',
    );
  });
});

describe('mt-bench', () => {
  it('uses the first turn, question_id, category and reference[0]', () => {
    expect(
      ok({
        question_id: 101,
        category: 'reasoning',
        turns: ['Who is second?', 'And if last?'],
        reference: ['You are in second place.', 'Uncertain.'],
      }),
    ).toEqual({
      id: '101',
      line: 1,
      format: 'mt-bench',
      messages: [user('Who is second?')],
      reference: 'You are in second place.',
      domain: 'reasoning',
      metadata: { turns: ['And if last?'], turnReferences: ['Uncertain.'] },
    });
  });

  it('takes a single turn without metadata, a string reference, and an explicit id over question_id', () => {
    expect(ok({ id: 'q-7', question_id: 7, turns: ['Only one'], reference: 'ref' }, 2)).toEqual({
      id: 'q-7',
      line: 2,
      format: 'mt-bench',
      messages: [user('Only one')],
      reference: 'ref',
    });
  });

  it('rejects malformed turns and references', () => {
    expect(reason({ turns: 'one' })).toBe('field "turns" must be an array of strings, got string');
    expect(reason({ turns: [] })).toBe('field "turns" is empty');
    expect(reason({ turns: ['a', 2] })).toBe('field "turns[1]" must be a string, got number');
    expect(reason({ turns: [' '] })).toBe('field "turns[0]" is empty');
    expect(reason({ turns: ['a'], question_id: [1] })).toBe('field "question_id" must be a string or a number, got array');
    expect(reason({ turns: ['a'], reference: { a: 1 } })).toBe(
      'field "reference" must be a string or an array of strings, got object',
    );
    expect(reason({ turns: ['a'], reference: ['x', 3] })).toBe('field "reference[1]" must be a string, got number');
    expect(reason({ turns: Array.from({ length: 201 }, () => 't') })).toBe(
      'field "turns" has 201 turns, over the 200-turn limit',
    );
    expect(reason({ turns: ['a', 'z'.repeat(200_001)] })).toBe(
      'field "turns[1]" is 200001 characters, over the 200000-character limit',
    );
  });
});

describe('alpaca', () => {
  it('joins instruction and input, and takes output as the reference', () => {
    expect(ok({ instruction: 'Translate to French.', input: 'Good morning', output: 'Bonjour' })).toEqual({
      id: 'line-1',
      line: 1,
      format: 'alpaca',
      messages: [user('Translate to French.\n\nGood morning')],
      reference: 'Bonjour',
    });
  });

  it('leaves out an empty, blank or null input, and an empty output', () => {
    for (const input of ['', '  ', null, undefined]) {
      const got = ok({ instruction: 'Name a colour.', input, output: '' });
      expect(got.messages).toEqual([user('Name a colour.')]);
      expect(got.reference).toBeUndefined();
    }
  });

  it('rejects wrong types and an empty instruction', () => {
    expect(reason({ instruction: ['x'] })).toBe('field "instruction" must be a string, got array');
    expect(reason({ instruction: '' })).toBe('field "instruction" is empty');
    expect(reason({ instruction: 'x', input: 5 })).toBe('field "input" must be a string, got number');
    expect(reason({ instruction: 'x', input: 'y'.repeat(200_000) })).toBe(
      'field "instruction" + "input" is 200003 characters, over the 200000-character limit',
    );
    expect(reason({ instruction: 'x', output: { text: 'y' } })).toBe(
      'field "output" must be a string or a number, got object',
    );
  });
});

describe('question-answer', () => {
  it('takes the answer as the reference when it has no #### marker', () => {
    expect(ok({ question: 'Capital of Italy?', answer: 'Rome' })).toEqual({
      id: 'line-1',
      line: 1,
      format: 'question-answer',
      messages: [user('Capital of Italy?')],
      reference: 'Rome',
    });
    expect(ok({ question: 'How many legs has a spider?', answer: 8 }).reference).toBe('8');
    expect(ok({ question: 'Open question' }).reference).toBeUndefined();
  });

  it('takes the number after #### (commas removed, sign and decimals kept) and keeps the solution', () => {
    const answer = 'He pays 1,000 + 234 = <<1000+234=1234>>1,234 dollars.\n#### 1,234';
    expect(ok({ question: 'How much?', answer })).toMatchObject({ reference: '1234', metadata: { solution: answer } });
    expect(ok({ question: 'q', answer: 'steps\n#### -10' }).reference).toBe('-10');
    expect(ok({ question: 'q', answer: 'steps\n####  2.5\n' }).reference).toBe('2.5');
    expect(ok({ question: 'q', answer: 'steps\n#### $1,450,000' }).reference).toBe('1450000');
    // `####` without a number is just text.
    expect(ok({ question: 'q', answer: '#### see above' })).toMatchObject({ reference: '#### see above' });
    expect(ok({ question: 'q', answer: '#### see above' }).metadata).toBeUndefined();
  });

  it('rejects wrong types and an empty question', () => {
    expect(reason({ question: 12 })).toBe('field "question" must be a string, got number');
    expect(reason({ question: '\t' })).toBe('field "question" is empty');
    expect(reason({ question: 'q', answer: true })).toBe('field "answer" must be a string or a number, got boolean');
  });
});

describe('prompt', () => {
  it('reads a plain prompt', () => {
    expect(ok({ prompt: 'Write a haiku about rain.' }, 9)).toEqual({
      id: 'line-9',
      line: 9,
      format: 'prompt',
      messages: [user('Write a haiku about rain.')],
    });
  });

  it('reads a prompt given as chat messages like openai-chat', () => {
    expect(
      ok({ prompt: [{ role: 'system', content: 'Terse.' }, user('Why?'), { role: 'assistant', content: 'Because.' }] }),
    ).toEqual({
      id: 'line-1',
      line: 1,
      format: 'prompt',
      messages: [{ role: 'system', content: 'Terse.' }, user('Why?')],
      reference: 'Because.',
    });
    expect(reason({ prompt: [{ role: 'user', content: 3 }] })).toBe(
      'field "prompt[0].content" must be a string or an array of text parts, got number',
    );
  });

  it('rejects a prompt of the wrong type, empty or too long', () => {
    expect(reason({ prompt: 42 })).toBe('field "prompt" must be a string or an array of messages, got number');
    expect(reason({ prompt: null })).toBe('field "prompt" must be a string or an array of messages, got null');
    expect(reason({ prompt: '' })).toBe('field "prompt" is empty');
    expect(reason({ prompt: '   ' })).toBe('field "prompt" is empty');
    expect(reason({ prompt: 'p'.repeat(200_001) })).toBe(
      'field "prompt" is 200001 characters, over the 200000-character limit',
    );
  });
});

describe('format precedence', () => {
  it('picks the first matching format: messages, conversations, turns, instruction, question, prompt', () => {
    const all = {
      messages: [user('m')],
      conversations: [{ from: 'human', value: 'c' }],
      turns: ['t'],
      instruction: 'i',
      question: 'q',
      prompt: 'p',
    };
    const order = ['messages', 'conversations', 'turns', 'instruction', 'question', 'prompt'] as const;
    const formats = order.map((_, i) => {
      const line = Object.fromEntries(order.slice(i).map((k) => [k, all[k]]));
      return ok(line).format;
    });
    expect(formats).toEqual(['openai-chat', 'sharegpt', 'mt-bench', 'alpaca', 'question-answer', 'prompt']);
  });

  it('does not fall through to a later format when the matching one is malformed', () => {
    expect(reason({ messages: 'hi', prompt: 'fine' })).toBe('field "messages" must be an array, got string');
  });
});

describe('common fields', () => {
  it('takes id (string or number), reference, domain or category, and merges metadata', () => {
    expect(
      ok({ id: 42, prompt: 'p', reference: 3.5, category: 'math', metadata: { source: 'unit', tags: ['a'] } }),
    ).toEqual({
      id: '42',
      line: 1,
      format: 'prompt',
      messages: [user('p')],
      reference: '3.5',
      domain: 'math',
      metadata: { source: 'unit', tags: ['a'] },
    });
    expect(ok({ id: ' abc ', prompt: 'p', domain: 'code', category: 'ignored' })).toMatchObject({
      id: 'abc',
      domain: 'code',
    });
  });

  it('adds the fields a format derives to the line\'s own metadata', () => {
    expect(ok({ question: 'q', answer: 'x\n#### 5', metadata: { source: 'gsm8k' } }).metadata).toEqual({
      source: 'gsm8k',
      solution: 'x\n#### 5',
    });
    expect(ok({ turns: ['a', 'b'], metadata: { split: 'test' } }).metadata).toEqual({ split: 'test', turns: ['b'] });
  });

  it('prefers an explicit reference to a derived one', () => {
    expect(ok({ instruction: 'i', output: 'derived', reference: 'explicit' }).reference).toBe('explicit');
    expect(ok({ question: 'q', answer: '#### 5', reference: 'five' }).reference).toBe('five');
  });

  it('treats null and blank optional fields as absent', () => {
    expect(ok({ prompt: 'p', id: null, reference: null, domain: null, category: '  ', metadata: null }, 3)).toEqual({
      id: 'line-3',
      line: 3,
      format: 'prompt',
      messages: [user('p')],
    });
  });

  it('rejects wrong types, naming the field', () => {
    expect(reason({ prompt: 'p', metadata: 'x' })).toBe('field "metadata" must be an object, got string');
    expect(reason({ prompt: 'p', metadata: [1] })).toBe('field "metadata" must be an object, got array');
    expect(reason({ prompt: 'p', id: { a: 1 } })).toBe('field "id" must be a string or a number, got object');
    expect(reason({ prompt: 'p', id: true })).toBe('field "id" must be a string or a number, got boolean');
    expect(reason({ prompt: 'p', id: '  ' })).toBe('field "id" is empty');
    expect(reason({ prompt: 'p', id: 'i'.repeat(257) })).toBe('field "id" is 257 characters, over the 256-character limit');
    expect(reason({ prompt: 'p', reference: ['a'] })).toBe('field "reference" must be a string or a number, got array');
    expect(reason({ prompt: 'p', category: 5 })).toBe('field "category" must be a string, got number');
    expect(reason({ prompt: 'p', domain: false })).toBe('field "domain" must be a string, got boolean');
  });
});

describe('unusable lines', () => {
  it('rejects empty and whitespace-only lines', () => {
    expect(reason('')).toBe('empty line');
    expect(reason(' \t ')).toBe('empty line');
  });

  it('rejects bad JSON with the parser message', () => {
    for (const text of ['{"prompt": "unterminated', 'hello', '{"prompt": "a",}', "{'prompt': 'single quotes'}"]) {
      let message = '';
      try {
        JSON.parse(text);
      } catch (err) {
        message = (err as Error).message;
      }
      expect(message).not.toBe('');
      expect(reason(text)).toBe(`not valid JSON: ${message}`);
    }
  });

  it('rejects JSON that is not an object', () => {
    expect(reason('[{"prompt":"p"}]')).toBe('expected a JSON object, got array');
    expect(reason('"prompt"')).toBe('expected a JSON object, got string');
    expect(reason('42')).toBe('expected a JSON object, got number');
    expect(reason('true')).toBe('expected a JSON object, got boolean');
    expect(reason('null')).toBe('expected a JSON object, got null');
  });

  it('rejects an object of no known format, naming up to 10 of its keys', () => {
    const expected = 'no known format: expected one of prompt, instruction, question, messages, conversations, turns';
    expect(reason({ text: 'hi', label: 1 })).toBe(`${expected}; the line has keys "text", "label"`);
    expect(reason({})).toBe(`${expected}; the object is empty`);
    const twelve = Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`k${i}`, i]));
    expect(reason(twelve)).toBe(
      `${expected}; the line has keys "k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9" and 2 more`,
    );
  });

  it('gives the line number and an escaped excerpt of the raw line', () => {
    const text = `{"text":"${'é'.repeat(300)}\\u0000"}`;
    const r = normalizeLine(text, 17);
    expect(r).toEqual({
      ok: false,
      invalid: {
        line: 17,
        reason: 'no known format: expected one of prompt, instruction, question, messages, conversations, turns; the line has keys "text"',
        excerpt: `{"text":"${'é'.repeat(190)}…`,
      },
    });
    expect(normalizeLine('\u0001{', 2)).toMatchObject({ ok: false, invalid: { line: 2, excerpt: '\\x01{' } });
  });

  it('does not let a __proto__ key in metadata touch prototypes', () => {
    const input = ok('{"prompt":"p","metadata":{"__proto__":{"polluted":true},"a":1}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf(input.metadata)).toBe(Object.prototype);
    expect(input.metadata!.a).toBe(1);
  });
});

describe('images', () => {
  it('reads an images field and image_url content parts, in order', () => {
    const r = normalizeLine(
      JSON.stringify({
        messages: [{ role: 'user', content: [{ type: 'text', text: 'What is shown?' }, { type: 'image_url', image_url: { url: 'https://example.com/a.png' } }] }],
        images: ['s3://my-bucket/scans/x 1.png'],
      }),
      4,
    );
    expect(r.ok && r.input.images).toEqual(['s3://my-bucket/scans/x 1.png', 'https://example.com/a.png']);
    expect(r.ok && r.input.messages).toEqual([{ role: 'user', content: 'What is shown?' }]);
  });

  it('accepts a single image and data URLs, and rejects other schemes', () => {
    const ok = normalizeLine(JSON.stringify({ prompt: 'Describe.', image: 'data:image/png;base64,iVBORw0KGgo=' }), 1);
    expect(ok.ok && ok.input.images).toEqual(['data:image/png;base64,iVBORw0KGgo=']);
    const bad = normalizeLine(JSON.stringify({ prompt: 'Describe.', images: ['file:///etc/passwd'] }), 2);
    expect(!bad.ok && bad.invalid.reason).toMatch(/^field "images\[0\]" must be an s3:\/\/bucket\/key, https:\/\/ or data:image/);
    const many = normalizeLine(JSON.stringify({ prompt: 'x', images: Array(17).fill('https://e.com/a.png') }), 3);
    expect(!many.ok && many.invalid.reason).toBe('too many images: 17, at most 16');
  });
});
