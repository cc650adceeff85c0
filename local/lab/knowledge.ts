// What the offline model lab (a simulation) knows: GSM8K problems with their gold answers and worked
// solutions, indexed by normalized question text. Only the simulated target and reward model consult
// it; the simulated judge learns answers only through its tools.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { evaluateTokens, findEquations, formatNumber, parseNumber, sameNumber, tokenize, tokensToText, type Token } from './arith';

export const DEFAULT_DATA_FILES: readonly string[] = [
  fileURLToPath(new URL('../../examples/data/gsm8k-test.jsonl', import.meta.url)),
];

/** One piece of a solution line: prose, or a calculation shown as `expression = result`. */
export type Segment =
  | { kind: 'text'; text: string }
  | { kind: 'equation'; tokens: Token[]; result: number; suffix: string }
  /** A calculation whose annotation could not be rendered as a clean equation: only its result shows. */
  | { kind: 'value'; result: number; suffix: string };

export interface Problem {
  question: string;
  gold: number;
  /** Solution lines (without the `####` line). */
  lines: Segment[][];
  /** Calculator annotations in the gold solution: the item's difficulty. */
  steps: number;
}

export interface Knowledge {
  lookup(question: string): Problem | undefined;
  readonly size: number;
}

/** Lowercase, unify quotes, collapse whitespace. */
export function normalizeQuestion(text: string): string {
  return text
    .normalize('NFKC')
    .replace(/[\u2018\u2019\u201b\u2032]/g, "'")
    .replace(/[\u201c\u201d\u201f\u2033]/g, '"')
    .toLowerCase()
    .replace(/\s+/g, ' ')
    .trim();
}

// Optional visible left side (`16 - 3 - 4 = `, `$`), the annotation, and the visible result after it.
const ANNOTATION_RE = /(?:[\d$(][\d.,$%\s+\-*/x×÷()]*=\s*)?\$?<<([^<>]*)>>(-?[\d.,]*\d)?/g;

// A visible left side written with units ("540 pounds / ", "150 pounds - 20 pounds = ") just before an
// annotation: dropped, since the annotation is rendered as the whole equation.
const VISIBLE_LHS_RE =
  /(?:\$?\d[\d.,]*%?[a-zA-Z]*(?:\s+[a-zA-Z']+){0,2}\s*[-+*/x×÷]\s*)+(?:\$?\d[\d.,]*%?[a-zA-Z]*(?:\s+[a-zA-Z']+){0,2}\s*=\s*\$?)?$/;

export function parseSolutionLine(line: string): Segment[] {
  const segments: Segment[] = [];
  let last = 0;
  for (const m of line.matchAll(ANNOTATION_RE)) {
    const start = m.index;
    if (start > last) segments.push({ kind: 'text', text: line.slice(last, start).replace(VISIBLE_LHS_RE, '') });
    last = start + m[0].length;
    const [lhs, rhs] = splitAnnotation(m[1]!);
    const result = rhs !== undefined ? parseNumber(rhs) : undefined;
    const tokens = lhs !== undefined ? tokenize(lhs) : undefined;
    const value = tokens ? evaluateTokens(tokens) : undefined;
    if (result === undefined) {
      // Unreadable annotation: keep the visible result (if any) as prose.
      segments.push({ kind: 'text', text: m[2] ?? '' });
    } else if (tokens && value !== undefined && sameNumber(value, result) && tokens.some((t) => t.kind === 'op')) {
      segments.push({ kind: 'equation', tokens, result, suffix: '' });
    } else {
      segments.push({ kind: 'value', result, suffix: '' });
    }
  }
  if (last < line.length) segments.push({ kind: 'text', text: line.slice(last) });
  return segments.flatMap((s) => (s.kind === 'text' ? proseEquations(s.text) : [s]));
}

/** Turns true equations written in prose (without annotations) into equation segments. */
function proseEquations(text: string): Segment[] {
  const out: Segment[] = [];
  let last = 0;
  for (const eq of findEquations(text)) {
    if (eq.text.includes('%') || !sameNumber(evaluateTokens(eq.tokens)!, eq.claimed)) continue;
    if (eq.index > last) out.push({ kind: 'text', text: text.slice(last, eq.index) });
    out.push({ kind: 'equation', tokens: eq.tokens, result: eq.claimed, suffix: '' });
    last = eq.index + eq.text.length;
  }
  if (last < text.length) out.push({ kind: 'text', text: text.slice(last) });
  return out;
}

function splitAnnotation(body: string): [string | undefined, string | undefined] {
  const eq = body.lastIndexOf('=');
  if (eq < 0) return [undefined, undefined];
  return [body.slice(0, eq), body.slice(eq + 1)];
}

export function renderSegments(segments: readonly Segment[]): string {
  let out = '';
  for (const s of segments) {
    if (s.kind === 'text') out += s.text;
    else {
      const shown = s.kind === 'equation' ? `${tokensToText(s.tokens)} = ${formatNumber(s.result)}` : formatNumber(s.result);
      out = out.replace(/\$\s*$/, '');
      out += `${out && !/[\s(]$/.test(out) ? ' ' : ''}${shown}${s.suffix}`;
    }
  }
  return out.replace(/[ \t]{2,}/g, ' ').trim();
}

export function parseProblem(question: string, answer: string): Problem | undefined {
  const marker = answer.lastIndexOf('####');
  if (marker < 0) return undefined;
  const gold = parseNumber(answer.slice(marker + 4).trim());
  if (gold === undefined) return undefined;
  const body = answer.slice(0, marker);
  const lines = body
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map(parseSolutionLine);
  const steps = [...body.matchAll(/<<[^<>]*>>/g)].length;
  return { question, gold, lines, steps };
}

const cache = new Map<string, Map<string, Problem>>();

function loadFile(path: string): Map<string, Problem> {
  const hit = cache.get(path);
  if (hit) return hit;
  const map = new Map<string, Problem>();
  for (const raw of readFileSync(path, 'utf8').split('\n')) {
    if (!raw.trim()) continue;
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch {
      continue;
    }
    if (typeof row !== 'object' || row === null) continue;
    const { question, answer } = row as { question?: unknown; answer?: unknown };
    if (typeof question !== 'string' || typeof answer !== 'string') continue;
    const problem = parseProblem(question, answer);
    if (problem) map.set(normalizeQuestion(question), problem);
  }
  cache.set(path, map);
  return map;
}

/** Loads GSM8K-format files (`question`, `answer` ending in `#### <n>`); other lines are ignored. */
export function loadKnowledge(files: readonly string[] = DEFAULT_DATA_FILES): Knowledge {
  const index = new Map<string, Problem>();
  for (const file of files) for (const [k, v] of loadFile(file)) index.set(k, v);
  return {
    size: index.size,
    lookup(question) {
      const direct = index.get(normalizeQuestion(question));
      if (direct) return direct;
      // A multi-turn task rendered as "[user] ...\n\n[assistant] ...": try its last user turn.
      const turns = question.split(/\n\n(?=\[(?:user|assistant|system)\] )/);
      for (let i = turns.length - 1; i >= 0; i--) {
        const m = /^\[user\] ([\s\S]*)$/.exec(turns[i]!);
        if (m) return index.get(normalizeQuestion(m[1]!));
      }
      return undefined;
    },
  };
}
