import { describe, expect, it } from 'vitest';
import { calculatorTool, evaluate, formatNumber } from '../../../layers/core/src/tools/calculator';

const calc = (expression: string) => formatNumber(evaluate(expression));

describe('calculator', () => {
  it('respects precedence', () => {
    expect(evaluate('1 + 2 * 3')).toBe(7);
    expect(evaluate('(1 + 2) * 3')).toBe(9);
    expect(evaluate('10 - 4 / 2')).toBe(8);
    expect(evaluate('2 * 3 ^ 2')).toBe(18);
    expect(evaluate('7 % 4 + 1')).toBe(4);
    expect(evaluate('-2 ^ 2')).toBe(-4);
    expect(evaluate('(-2) ^ 2')).toBe(4);
    expect(evaluate('2 ^ -1')).toBe(0.5);
    expect(evaluate('--3')).toBe(3);
    expect(evaluate('3 - -3')).toBe(6);
  });

  it('is left-associative for - / and right-associative for ^ and **', () => {
    expect(evaluate('10 - 3 - 2')).toBe(5);
    expect(evaluate('100 / 10 / 5')).toBe(2);
    expect(evaluate('2 ^ 3 ^ 2')).toBe(512);
    expect(evaluate('2 ** 3 ** 2')).toBe(512);
    expect(evaluate('2 ** 10')).toBe(1024);
  });

  it('reads numbers', () => {
    expect(evaluate('.5 + 1.25')).toBe(1.75);
    expect(evaluate('1.5e3')).toBe(1500);
    expect(evaluate('2E-2')).toBe(0.02);
  });

  it('knows functions and constants', () => {
    expect(evaluate('sqrt(16)')).toBe(4);
    expect(evaluate('abs(-3.5)')).toBe(3.5);
    expect(evaluate('round(2.5) + floor(2.7) + ceil(2.1)')).toBe(8);
    expect(evaluate('min(3, 1, 2) + max(3, 1, 2)')).toBe(4);
    expect(evaluate('log(e)')).toBe(1);
    expect(calc('log(1000, 10)')).toBe('3');
    expect(evaluate('exp(0)')).toBe(1);
    expect(calc('2 * pi')).toBe('6.28318530718');
    expect(calc('sqrt(2) ^ 2')).toBe('2');
  });

  it('formats without float noise', () => {
    expect(calc('0.1 + 0.2')).toBe('0.3');
    expect(calc('1 / 3')).toBe('0.333333333333');
    expect(calc('-0 * 5')).toBe('0');
    expect(calc('48 / 2 * (9 + 3)')).toBe('288');
  });

  it.each([
    ['1 / 0', /division by zero/],
    ['5 % 0', /division by zero/],
    ['1 / (2 - 2)', /division by zero/],
    ['x + 1', /unknown identifier 'x'/],
    ['(1 + 2', /unbalanced parentheses: missing '\)'/],
    ['1 + 2)', /unbalanced parentheses: unexpected '\)'/],
    ['1 2', /trailing input/],
    ['2pi', /trailing input/],
    ['1,234', /unexpected ','/],
    ['1_000', /unexpected character '_'/],
    ['10 ^ 400', /not a finite number/],
    ['sqrt(-1)', /not a finite number/],
    ['', /empty expression/],
    ['1 +', /operand is missing/],
    ['sqrt', /is a function/],
    ['sqrt(1, 2)', /takes 1 argument/],
    ['pi(2)', /constant/],
    ['1..2', /malformed number/],
    ['1.2.3', /malformed number/],
    ['x'.repeat(501), /longer than 500/],
  ])('rejects %s', (expression, message) => {
    expect(() => evaluate(expression)).toThrow(message);
  });

  it('limits nesting depth to 100', () => {
    expect(evaluate('('.repeat(100) + '1' + ')'.repeat(100))).toBe(1);
    expect(() => evaluate('('.repeat(101) + '1' + ')'.repeat(101))).toThrow(/nested too deeply/);
    expect(() => evaluate('-'.repeat(101) + '1')).toThrow(/nested too deeply/);
    expect(() => evaluate(Array(102).fill('2').join('^'))).toThrow(/nested too deeply/);
  });

  it('is a tool returning the formatted result', async () => {
    const ctx = { signal: new AbortController().signal };
    await expect(calculatorTool.execute({ expression: '0.1 + 0.2' }, ctx)).resolves.toBe('0.3');
    await expect(calculatorTool.execute({}, ctx)).rejects.toThrow(/expression/);
  });
});
