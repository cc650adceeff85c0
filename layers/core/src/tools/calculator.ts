// Arithmetic for the judge: a recursive-descent parser over a small grammar, never eval.
//
//   expr    := term (('+' | '-') term)*
//   term    := unary (('*' | '/' | '%') unary)*
//   unary   := ('-' | '+') unary | power
//   power   := primary (('^' | '**') unary)?          right-associative; -2^2 = -4, 2^-1 = 0.5
//   primary := number | constant | name '(' expr (',' expr)* ')' | '(' expr ')'
import type { Tool } from './registry';

export const MAX_EXPRESSION_CHARS = 500;
export const MAX_DEPTH = 100;

export class CalculatorError extends Error {
  override name = 'CalculatorError';
}

type Token =
  | { kind: 'num'; value: number; pos: number; text: string }
  | { kind: 'id'; name: string; pos: number }
  | { kind: 'op'; op: '+' | '-' | '*' | '/' | '%' | '^'; pos: number; text: string }
  | { kind: '(' | ')' | ','; pos: number }
  | { kind: 'end'; pos: number };

const CONSTANTS: Record<string, number> = { pi: Math.PI, e: Math.E };

const FUNCTIONS: Record<string, { min: number; max: number; fn: (...xs: number[]) => number }> = {
  sqrt: { min: 1, max: 1, fn: Math.sqrt },
  abs: { min: 1, max: 1, fn: Math.abs },
  round: { min: 1, max: 1, fn: Math.round },
  floor: { min: 1, max: 1, fn: Math.floor },
  ceil: { min: 1, max: 1, fn: Math.ceil },
  min: { min: 1, max: Infinity, fn: Math.min },
  max: { min: 1, max: Infinity, fn: Math.max },
  /** Natural logarithm; log(x, b) is the logarithm in base b. */
  log: { min: 1, max: 2, fn: (x, b) => (b === undefined ? Math.log(x) : Math.log(x) / Math.log(b)) },
  exp: { min: 1, max: 1, fn: Math.exp },
};

function tokenize(src: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < src.length) {
    const ch = src[i]!;
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const start = i;
    if (/[0-9.]/.test(ch)) {
      while (i < src.length && /[0-9]/.test(src[i]!)) i++;
      if (src[i] === '.') {
        i++;
        while (i < src.length && /[0-9]/.test(src[i]!)) i++;
      }
      const mantissa = src.slice(start, i);
      if (mantissa === '.' || (mantissa.match(/\./g) ?? []).length > 1) {
        throw new CalculatorError(`malformed number at position ${start + 1}`);
      }
      // Exponent only when digits follow (`2e3`, `1.5E-2`); otherwise `e` is left for the lexer.
      const exp = /^[eE][+-]?[0-9]+/.exec(src.slice(i));
      if (exp) i += exp[0].length;
      if (src[i] === '.') throw new CalculatorError(`malformed number at position ${start + 1}`);
      const text = src.slice(start, i);
      tokens.push({ kind: 'num', value: Number(text), pos: start, text });
      continue;
    }
    if (/[A-Za-z]/.test(ch)) {
      while (i < src.length && /[A-Za-z0-9]/.test(src[i]!)) i++;
      tokens.push({ kind: 'id', name: src.slice(start, i), pos: start });
      continue;
    }
    if (ch === '*' && src[i + 1] === '*') {
      tokens.push({ kind: 'op', op: '^', pos: start, text: '**' });
      i += 2;
      continue;
    }
    if ('+-*/%^'.includes(ch)) {
      tokens.push({ kind: 'op', op: ch as '+' | '-' | '*' | '/' | '%' | '^', pos: start, text: ch });
      i++;
      continue;
    }
    if (ch === '(' || ch === ')' || ch === ',') {
      tokens.push({ kind: ch, pos: start });
      i++;
      continue;
    }
    throw new CalculatorError(`unexpected character '${ch}' at position ${start + 1}`);
  }
  tokens.push({ kind: 'end', pos: src.length });
  return tokens;
}

const describeToken = (t: Token): string => {
  switch (t.kind) {
    case 'num':
      return `number ${t.text}`;
    case 'id':
      return `'${t.name}'`;
    case 'op':
      return `'${t.text}'`;
    case 'end':
      return 'end of expression';
    default:
      return `'${t.kind}'`;
  }
};

class Parser {
  private i = 0;
  private depth = 0;
  private parenDepth = 0;

  constructor(private readonly tokens: Token[]) {}

  private peek(): Token {
    return this.tokens[this.i]!;
  }

  private next(): Token {
    return this.tokens[this.i++]!;
  }

  private enter(): void {
    if (++this.depth > MAX_DEPTH) throw new CalculatorError(`expression is nested too deeply (more than ${MAX_DEPTH} levels)`);
  }

  parse(): number {
    if (this.peek().kind === 'end') throw new CalculatorError('empty expression');
    const value = this.expr();
    const t = this.peek();
    if (t.kind === ')') throw new CalculatorError(`unbalanced parentheses: unexpected ')' at position ${t.pos + 1}`);
    if (t.kind === ',') {
      throw new CalculatorError(
        `unexpected ',' at position ${t.pos + 1} (commas only separate function arguments; write 1234, not 1,234)`,
      );
    }
    if (t.kind !== 'end') throw new CalculatorError(`unexpected trailing input at position ${t.pos + 1}: ${describeToken(t)}`);
    return value;
  }

  private expr(): number {
    let left = this.term();
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || (t.op !== '+' && t.op !== '-')) return left;
      this.next();
      const right = this.term();
      left = finite(t.op === '+' ? left + right : left - right);
    }
  }

  private term(): number {
    let left = this.unary();
    for (;;) {
      const t = this.peek();
      if (t.kind !== 'op' || (t.op !== '*' && t.op !== '/' && t.op !== '%')) return left;
      this.next();
      const right = this.unary();
      if (t.op === '*') left = finite(left * right);
      else if (right === 0) throw new CalculatorError(t.op === '/' ? 'division by zero' : 'division by zero (modulo by 0)');
      else left = finite(t.op === '/' ? left / right : left % right);
    }
  }

  private unary(): number {
    const t = this.peek();
    if (t.kind === 'op' && (t.op === '-' || t.op === '+')) {
      this.next();
      this.enter();
      const value = this.unary();
      this.depth--;
      return t.op === '-' ? -value : value;
    }
    return this.power();
  }

  private power(): number {
    const base = this.primary();
    const t = this.peek();
    if (t.kind !== 'op' || t.op !== '^') return base;
    this.next();
    this.enter();
    const exponent = this.unary(); // right-associative: 2^3^2 = 2^(3^2)
    this.depth--;
    return finite(base ** exponent);
  }

  private primary(): number {
    const t = this.next();
    switch (t.kind) {
      case 'num':
        return finite(t.value);
      case '(': {
        this.enter();
        this.parenDepth++;
        const value = this.expr();
        this.expect(')');
        this.parenDepth--;
        this.depth--;
        return value;
      }
      case 'id':
        return this.identifier(t.name);
      case 'end':
        if (this.parenDepth > 0) throw new CalculatorError("unbalanced parentheses: missing ')'");
        throw new CalculatorError('unexpected end of expression: an operand is missing');
      case ')':
        throw new CalculatorError(`unexpected ')' at position ${t.pos + 1}: an operand is missing`);
      default:
        throw new CalculatorError(`unexpected ${describeToken(t)} at position ${t.pos + 1}`);
    }
  }

  private identifier(name: string): number {
    const key = name.toLowerCase();
    const fn = FUNCTIONS[key];
    if (fn) {
      if (this.peek().kind !== '(') throw new CalculatorError(`${key} is a function: call it like ${key}(x)`);
      this.next();
      this.enter();
      this.parenDepth++;
      const args = [this.expr()];
      while (this.peek().kind === ',') {
        this.next();
        args.push(this.expr());
      }
      this.expect(')');
      this.parenDepth--;
      this.depth--;
      if (args.length < fn.min || args.length > fn.max) {
        const arity = fn.max === Infinity ? `at least ${fn.min}` : fn.min === fn.max ? `${fn.min}` : `${fn.min} or ${fn.max}`;
        throw new CalculatorError(`${key} takes ${arity} argument${arity === '1' ? '' : 's'}, got ${args.length}`);
      }
      return finite(fn.fn(...args), `${key}(${args.join(', ')})`);
    }
    const constant = CONSTANTS[key];
    if (constant !== undefined) {
      if (this.peek().kind === '(') throw new CalculatorError(`${key} is a constant, not a function`);
      return constant;
    }
    throw new CalculatorError(
      `unknown identifier '${name}' (known: ${[...Object.keys(FUNCTIONS), ...Object.keys(CONSTANTS)].join(', ')})`,
    );
  }

  private expect(kind: ')'): void {
    const t = this.next();
    if (t.kind === kind) return;
    if (t.kind === 'end') throw new CalculatorError("unbalanced parentheses: missing ')'");
    if (t.kind === ',') throw new CalculatorError(`unexpected ',' at position ${t.pos + 1} (commas only separate function arguments)`);
    throw new CalculatorError(`expected ')' at position ${t.pos + 1}, got ${describeToken(t)}`);
  }
}

function finite(value: number, what?: string): number {
  if (!Number.isFinite(value)) {
    throw new CalculatorError(`the result${what ? ` of ${what}` : ''} is not a finite number`);
  }
  return value;
}

/** Evaluates an arithmetic expression; throws CalculatorError with a clear message. */
export function evaluate(expression: string): number {
  if (expression.length > MAX_EXPRESSION_CHARS) {
    throw new CalculatorError(`expression is longer than ${MAX_EXPRESSION_CHARS} characters`);
  }
  const value = new Parser(tokenize(expression)).parse();
  return finite(value);
}

/** A result without float noise: 0.1+0.2 → "0.3". */
export function formatNumber(value: number): string {
  const rounded = Number(value.toPrecision(12));
  return String(Object.is(rounded, -0) ? 0 : rounded);
}

export const calculatorTool: Tool = {
  name: 'calculator',
  description:
    'Evaluates an arithmetic expression exactly as written and returns the number. Supports + - * / % ^ (or **, power), ' +
    'unary minus, parentheses, the functions sqrt, abs, round, floor, ceil, min, max, log (natural log; log(x, base)), exp, ' +
    'and the constants pi and e. Write plain numbers without thousands separators (1234, not 1,234).',
  parameters: {
    type: 'object',
    properties: {
      expression: { type: 'string', description: 'The expression, e.g. "(12.5 * 4) / 3 - 2^3"', maxLength: MAX_EXPRESSION_CHARS },
    },
    required: ['expression'],
    additionalProperties: false,
  },
  limits: { timeoutMs: 1_000, maxOutputChars: 200 },
  async execute(args) {
    const expression = (args as { expression?: unknown } | null)?.expression;
    if (typeof expression !== 'string') throw new CalculatorError('argument "expression" must be a string');
    return formatNumber(evaluate(expression));
  },
};
