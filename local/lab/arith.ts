// Arithmetic helpers of the offline model lab (a simulation): a tiny expression evaluator, number
// formatting, and the readers the simulated judge and reward model use on answer text.

export type Token = { kind: 'num'; value: number; text: string } | { kind: 'op'; text: '+' | '-' | '*' | '/' } | { kind: 'paren'; text: '(' | ')' };

/** Tokens of an arithmetic expression, or undefined when it holds anything else. */
export function tokenize(expr: string): Token[] | undefined {
  const tokens: Token[] = [];
  const src = expr.replace(/[×x]/g, '*').replace(/÷/g, '/').replace(/,(?=\d{3}\b)/g, '');
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const num = /^(\d+(?:\.\d+)?|\.\d+)/.exec(src.slice(i));
    if (num) {
      const text = num[1]!;
      i += text.length;
      if (src[i] === '%') {
        // A percentage is its value over 100: `50%` reads as 0.5.
        const value = Number(text) / 100;
        tokens.push({ kind: 'num', value, text: formatNumber(value) });
        i++;
      } else {
        tokens.push({ kind: 'num', value: Number(text), text: text.startsWith('.') ? `0${text}` : text });
      }
      continue;
    }
    if (ch === '+' || ch === '-' || ch === '*' || ch === '/') tokens.push({ kind: 'op', text: ch });
    else if (ch === '(' || ch === ')') tokens.push({ kind: 'paren', text: ch });
    else return undefined;
    i++;
  }
  return tokens.length > 0 ? tokens : undefined;
}

/** Evaluates + - * / with parentheses and unary minus; undefined when malformed or not finite. */
export function evaluateTokens(tokens: readonly Token[]): number | undefined {
  let pos = 0;
  const peek = () => tokens[pos];
  const expr = (): number | undefined => {
    let left = term();
    while (left !== undefined) {
      const t = peek();
      if (t?.kind !== 'op' || (t.text !== '+' && t.text !== '-')) break;
      pos++;
      const right = term();
      if (right === undefined) return undefined;
      left = t.text === '+' ? left + right : left - right;
    }
    return left;
  };
  const term = (): number | undefined => {
    let left = factor();
    while (left !== undefined) {
      const t = peek();
      if (t?.kind !== 'op' || (t.text !== '*' && t.text !== '/')) break;
      pos++;
      const right = factor();
      if (right === undefined) return undefined;
      left = t.text === '*' ? left * right : left / right;
    }
    return left;
  };
  const factor = (): number | undefined => {
    const t = peek();
    if (!t) return undefined;
    if (t.kind === 'op' && t.text === '-') {
      pos++;
      const v = factor();
      return v === undefined ? undefined : -v;
    }
    if (t.kind === 'num') {
      pos++;
      return t.value;
    }
    if (t.kind === 'paren' && t.text === '(') {
      pos++;
      const v = expr();
      if (peek()?.text !== ')') return undefined;
      pos++;
      return v;
    }
    return undefined;
  };
  const value = expr();
  if (pos !== tokens.length || value === undefined || !Number.isFinite(value)) return undefined;
  return value;
}

export function evaluate(expr: string): number | undefined {
  const tokens = tokenize(expr);
  return tokens ? evaluateTokens(tokens) : undefined;
}

/** Canonical text of tokens: `16 - 3 - 4`, `(3 + 4) * 2`. */
export function tokensToText(tokens: readonly Token[]): string {
  let out = '';
  let prev: Token | undefined;
  for (const t of tokens) {
    const unary = t.kind === 'op' && t.text === '-' && (!prev || prev.kind === 'op' || prev.text === '(');
    if (t.kind === 'op' && !unary) out += ` ${t.text} `;
    else out += t.text;
    prev = t;
  }
  return out.trim();
}

/** A number as a model would write it: integers plainly, others with up to 4 decimals. */
export function formatNumber(n: number): string {
  if (Number.isInteger(n)) return String(n);
  return String(Number(n.toFixed(4)));
}

export function sameNumber(a: number, b: number): boolean {
  return Math.abs(a - b) <= 1e-6 * Math.max(1, Math.abs(a), Math.abs(b));
}

/** Parses `1,234.5`, `$18`, `-3` into a number. */
export function parseNumber(text: string): number | undefined {
  const cleaned = text.replace(/[$,\s]/g, '').replace(/\.$/, '');
  if (!/^-?(\d+(\.\d+)?|\.\d+)$/.test(cleaned)) return undefined;
  return Number(cleaned);
}

const NUMBER = String.raw`-?\$?\d[\d,]*(?:\.\d+)?`;

/** The final number an answer commits to: "The answer is 18.", "#### 18", \boxed{18}, else the last number. */
export function finalNumber(text: string): number | undefined {
  const patterns = [
    new RegExp(String.raw`answer is[:\s]*\**\s*(${NUMBER})`, 'gi'),
    new RegExp(String.raw`####\s*(${NUMBER})`, 'g'),
    new RegExp(String.raw`\\boxed\{\s*(${NUMBER})\s*\}`, 'g'),
  ];
  for (const re of patterns) {
    const all = [...text.matchAll(re)];
    const last = all[all.length - 1];
    if (last) return parseNumber(last[1]!);
  }
  const all = [...text.matchAll(new RegExp(`(?<![\\w.])${NUMBER}`, 'g'))];
  const last = all[all.length - 1];
  return last ? parseNumber(last[0]) : undefined;
}

const OPERAND = String.raw`\(*[ \t]*-?(?:\d+(?:\.\d+)?|\.\d+)%?[ \t]*\)*`;
// Strict on both ends so that fragments of prose arithmetic ("$400 000 x 3/100", "3 / 2 = 1 1/2",
// "a = b = c") are not misread as false equations.
const EQUATION_RE = new RegExp(
  String.raw`(?<![\w.,/)])(?<![\d)/][ \t])(?<![-+*/×÷][ \t]?)(${OPERAND}(?:[ \t]*[-+*/×÷][ \t]*${OPERAND})+)[ \t]*=[ \t]*(-?\$?(?:\d[\d,]*(?:\.\d+)?|\.\d+))(%?)(?![ \t]?\d|[/.,]\d|[ \t]*[-+*/×÷(=][ \t]*\(?\$?\d)`,
  'g',
);

export interface Equation {
  /** Canonical left-hand side, e.g. `9 * 2`. */
  expression: string;
  tokens: Token[];
  /** The result the text claims. */
  claimed: number;
  /** The equation as written, and where it is in the text. */
  text: string;
  index: number;
}

/** The equations `a op b = c` written in a text (left side with at least one operator). */
export function findEquations(text: string): Equation[] {
  const out: Equation[] = [];
  for (const m of text.matchAll(EQUATION_RE)) {
    const tokens = tokenize(m[1]!);
    const value = parseNumber(m[2]!);
    const lhs = tokens ? evaluateTokens(tokens) : undefined;
    if (!tokens || value === undefined || lhs === undefined) continue;
    // `18 / 450 * 100 = 4%` states the percentage itself; `3 / 6 = 50%` states the fraction.
    const claimed = m[3] === '%' && !sameNumber(lhs, value) ? value / 100 : value;
    const lead = m[0].length - m[0].trimStart().length;
    out.push({ expression: tokensToText(tokens), tokens, claimed, text: m[0].trim(), index: m.index + lead });
  }
  return out;
}

/** Canonical form of an expression for matching a calculator call to an equation. */
export function canonicalExpression(expr: string): string | undefined {
  const tokens = tokenize(expr);
  return tokens ? tokensToText(tokens) : undefined;
}
