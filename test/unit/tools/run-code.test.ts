import { afterEach, describe, expect, it, vi } from 'vitest';
import { ToolRegistry, type ToolContext } from '../../../layers/core/src/tools/registry';
import {
  MAX_CODE_CHARS,
  runCodeTool,
  runInSandbox,
  sandboxStats,
  type SandboxOptions,
} from '../../../layers/core/src/tools/run-code';

const opts: SandboxOptions = { timeoutMs: 300, memoryMb: 16, maxOutputChars: 2_000 };
const run = (code: string, extra: Partial<SandboxOptions> = {}) => runInSandbox(code, { ...opts, ...extra });

const toolCtx = (runCode = { timeoutMs: 300, memoryMb: 16 }): ToolContext => ({
  signal: new AbortController().signal,
  settings: { runCode } as ToolContext['settings'],
});
const execute = async (args: unknown) => JSON.parse(await runCodeTool.execute(args, toolCtx())) as Record<string, unknown>;

const ECMASCRIPT_GLOBALS = new Set(
  (
    'globalThis Infinity NaN undefined eval isFinite isNaN parseFloat parseInt decodeURI decodeURIComponent encodeURI ' +
    'encodeURIComponent escape unescape AggregateError Array ArrayBuffer BigInt BigInt64Array BigUint64Array Boolean ' +
    'DataView Date Error EvalError FinalizationRegistry Float16Array Float32Array Float64Array Function Int8Array ' +
    'Int16Array Int32Array Iterator Map Number Object Promise Proxy RangeError ReferenceError RegExp Set ' +
    'SharedArrayBuffer String Symbol SyntaxError TypeError Uint8Array Uint8ClampedArray Uint16Array Uint32Array ' +
    'URIError WeakMap WeakRef WeakSet Atomics JSON Math Reflect'
  ).split(' '),
);

afterEach(() => {
  vi.restoreAllMocks();
});

describe('run_code: results', () => {
  it('returns console output and the last value', async () => {
    const result = await run(`
      const xs = [3, 1, 2].sort();
      console.log('sorted', xs, { n: xs.length });
      console.error('careful');
      xs.reduce((a, b) => a + b, 0) * 7`);
    expect(result).toMatchObject({ status: 'ok', value: '42', consoleTruncated: false });
    expect(result.console).toBe('sorted [ 1, 2, 3 ] { n: 3 }\n[error] careful\n');
    expect(result.error).toBeUndefined();
  });

  it('renders values like console.log, quoting strings and marking cycles', async () => {
    expect((await run('"42"')).value).toBe('"42"');
    expect((await run('undefined')).value).toBe('undefined');
    expect((await run('const o = { a: [1, "x"], m: new Map([[1, 2]]) }; o.self = o; o')).value).toBe(
      '{ a: [ 1, "x" ], m: Map(1) { 1 => 2 }, self: [Circular] }',
    );
    expect((await run('"y".repeat(5000)')).value!.length).toBeLessThanOrEqual(1_010);
  });

  it('awaits a promise as the last value', async () => {
    expect(await run('(async () => { await null; return 5 })()')).toMatchObject({ status: 'ok', value: '5' });
    expect(await run('Promise.reject(new RangeError("nope"))')).toMatchObject({
      status: 'error',
      error: { name: 'RangeError', message: 'nope' },
    });
    expect((await run('new Promise(() => {})')).value).toMatch(/^Promise \{ <pending> \}/);
  });

  it('checks a candidate function with tests: pass', async () => {
    const result = await run('function add(a, b) { return a + b }', {
      tests: 'assert.equal(add(2, 3), 5); assert.deepEqual([add(1, 1)], [2]); assert(add(0, 0) === 0, "zero"); "all passed"',
    });
    expect(result).toMatchObject({ status: 'ok', value: '"all passed"' });
  });

  it('checks a candidate function with tests: a wrong implementation fails an assertion', async () => {
    const result = await run('function add(a, b) { return a - b }', { tests: 'assert.equal(add(2, 3), 5, "add(2, 3)")' });
    expect(result.status).toBe('error');
    expect(result.error).toMatchObject({ name: 'AssertionError', message: 'add(2, 3): expected 5, got -1', phase: 'tests' });
    expect(result.error!.stack).toContain('tests.js:1');
    expect(result.error!.stack).not.toContain('prelude'); // assert's own frames are noise to the judge

    const report = await execute({ code: 'const sq = (x) => x + x;', tests: 'assert.deepEqual([1, 2, 3].map(sq), [1, 4, 9])' });
    expect(report).toMatchObject({ status: 'error', failedIn: 'tests' });
    expect(report.error).toBe('AssertionError: expected [ 1, 4, 9 ], got [ 2, 4, 6 ]');
  });

  it('reports syntax errors in the code or in the tests', async () => {
    const inCode = await run('const x = ;');
    expect(inCode).toMatchObject({ status: 'error', error: { name: 'SyntaxError', phase: 'code' } });
    expect(inCode.error!.stack).toContain('code.js:1');

    const inTests = await run('console.log("code ran")', { tests: 'assert.equal(1,' });
    expect(inTests).toMatchObject({ status: 'error', error: { name: 'SyntaxError', phase: 'tests' }, console: 'code ran\n' });
  });

  it('reports a thrown error with its location, and a thrown non-error', async () => {
    const thrown = await run('function f() {\n  throw new TypeError("bad input");\n}\nf();');
    expect(thrown).toMatchObject({ status: 'error', error: { name: 'TypeError', message: 'bad input', phase: 'code' } });
    expect(thrown.error!.stack).toMatch(/at f \(code\.js:2/);

    expect(await run('throw 42')).toMatchObject({ status: 'error', error: { name: 'thrown value', message: '42' } });
    expect(await run('throw null')).toMatchObject({ status: 'error', error: { name: 'thrown value', message: 'null' } });
  });

  it('does not run the tests when the code fails', async () => {
    const result = await run('throw new Error("setup failed")', { tests: 'console.log("tests ran")' });
    expect(result).toMatchObject({ status: 'error', console: '', error: { message: 'setup failed', phase: 'code' } });
  });
});

describe('run_code: isolation', () => {
  it('exposes no host capabilities', async () => {
    const result = await run(
      '[typeof std, typeof os, typeof require, typeof fetch, typeof process, typeof XMLHttpRequest, typeof setTimeout, typeof WebAssembly, typeof scriptArgs].join()',
    );
    expect(result.value).toBe(`"${Array(9).fill('undefined').join()}"`);
    // Every global is an ECMAScript built-in (or QuickJS's InternalError), except the three the sandbox adds.
    const globals = await run('Object.getOwnPropertyNames(globalThis).join(" ")');
    const names = (JSON.parse(globals.value!) as string).split(' ');
    const extra = names.filter((name) => !ECMASCRIPT_GLOBALS.has(name));
    expect(extra.sort()).toEqual(['AssertionError', 'InternalError', 'assert', 'console']);
  });

  it.each([
    ["require('fs').readFileSync('/etc/passwd', 'utf8')", 'ReferenceError'],
    ["import('fs').then((fs) => fs.readFileSync('/etc/passwd', 'utf8'))", 'ReferenceError'],
    ["import fs from 'fs'; fs.readFileSync('/etc/passwd')", 'SyntaxError'],
    ["std.loadFile('/etc/passwd')", 'ReferenceError'],
    ["os.exec(['ls'])", 'ReferenceError'],
    ["fetch('http://127.0.0.1')", 'ReferenceError'],
    ["const x = new XMLHttpRequest(); x.open('GET', 'http://127.0.0.1'); x.send()", 'ReferenceError'],
    ['process.exit(1)', 'ReferenceError'],
    ["globalThis.constructor.constructor('return process')().exit(1)", 'ReferenceError'],
    ["(function () { return this })().process.mainModule.require('fs')", 'TypeError'],
    ["console.log.constructor('return this')().process.exit(1)", 'TypeError'],
  ])('blocks %s', async (code, errorName) => {
    const hostFetch = vi.spyOn(globalThis, 'fetch');
    const hostExit = vi.spyOn(process, 'exit').mockImplementation((() => undefined) as never);
    const result = await run(code);
    expect(result.status).toBe('error');
    expect(result.error!.name).toBe(errorName);
    expect(hostFetch).not.toHaveBeenCalled();
    expect(hostExit).not.toHaveBeenCalled();
  });

  it('starts every call from a fresh global scope', async () => {
    await run('globalThis.leak = 1; Array.prototype.push = null; var declared = 2');
    expect((await run('[typeof leak, typeof declared, typeof [].push].join()')).value).toBe('"undefined,undefined,function"');
  });

  it('keeps reporting when the code tampers with built-ins the printer uses', async () => {
    const result = await run(
      'JSON.stringify = null; Object.keys = null; Array.prototype.join = null; String.prototype.slice = null; console.log({ a: [1] }); ({ b: 2 })',
    );
    expect(result).toMatchObject({ status: 'ok', value: '{ b: 2 }', console: '{ a: [ 1 ] }\n' });
  });
});

describe('run_code: limits', () => {
  it('stops an infinite loop at the time limit, even when the code catches', async () => {
    for (const code of ['while (true) {}', 'for (;;) { try { while (true) {} } catch (e) {} }']) {
      const started = performance.now();
      const result = await run(code);
      const took = performance.now() - started;
      expect(result).toMatchObject({ status: 'timeout', error: { name: 'TimeoutError', message: 'timed out after 300 ms' } });
      expect(took).toBeGreaterThanOrEqual(290);
      expect(took).toBeLessThan(300 + 500);
    }
  });

  it('stops an endless chain of promise jobs', async () => {
    const result = await run('function again() { Promise.resolve().then(again) } again(); "queued"');
    expect(result.status).toBe('timeout');
  });

  it.each([
    ['fill', 'const a = new Array(1e6).fill(0); for (;;) a.fill(1)'],
    ['indexOf', 'const a = Array.from({ length: 1e6 }, (_, i) => i); for (;;) a.indexOf(-1)'],
    ['JSON.stringify', 'const a = Array.from({ length: 2e4 }, (_, i) => ({ i })); for (;;) JSON.stringify(a)'],
  ])('stops a loop whose body is one slow built-in call (%s) near the time limit', async (_label, code) => {
    await run('1', { memoryMb: 64 }); // load the instance for this memory setting
    expect(sandboxStats().find((s) => s.memoryMb === 64)).toMatchObject({ tunedPolling: true }); // it found the counter
    const started = performance.now();
    const result = await run(code, { memoryMb: 64 });
    expect(result).toMatchObject({ status: 'timeout', error: { message: 'timed out after 300 ms' } });
    expect(performance.now() - started).toBeLessThan(300 + 700);
  });

  it.each([
    ['an array bomb', 'let a = []; while (true) a.push(new Array(1e6).fill(1))'],
    ['string doubling', 'let s = "ab"; while (true) { s += s; s.indexOf("z") }'],
    ['many small objects', 'const a = []; for (let i = 0; ; i++) a.push({ i, s: "s" + i })'],
    ['a single huge allocation', 'new ArrayBuffer(1e9)'],
    ['a caught and retried bomb', 'const keep = []; for (;;) { try { keep.push(new Array(1e6).fill(1)) } catch (e) {} }'],
  ])('reports the memory limit for %s, and the next call works', async (_label, code) => {
    const result = await run(code);
    expect(result).toMatchObject({ status: 'memory', error: { name: 'MemoryLimitError', message: 'memory limit of 16 MB exceeded' } });
    expect(await run('6 * 7')).toMatchObject({ status: 'ok', value: '42' });
    // The heap is bounded (base 16 MB + limit + headroom) and a full instance has been replaced.
    const instance = sandboxStats().find((s) => s.memoryMb === 16)!;
    expect(instance.wasmBytes).toBeLessThan(16 * 1024 * 1024 + 16 * 1024 * 1024);
  });

  it('doubling a string without touching it fails fast (QuickJS builds ropes up to its length cap)', async () => {
    const result = await run('let s = "x"; while (true) s += s');
    expect(result).toMatchObject({ status: 'error', error: { name: 'InternalError', message: 'string too long' } });
  });

  it('reports a stack overflow for deep recursion, and allows ordinary depth', async () => {
    const deep = await run('function down(n) { return down(n + 1) + 1 } down(0)');
    expect(deep).toMatchObject({ status: 'error', error: { name: 'InternalError' } });
    expect(deep.error!.message).toMatch(/stack overflow/);
    expect(deep.error!.stack!.split('\n').length).toBeLessThanOrEqual(9); // repeated frames are folded
    expect((await run('function sum(n) { return n === 0 ? 0 : n + sum(n - 1) } sum(500)')).value).toBe('125250');
  });

  it('survives nesting that exhausts the native stack before QuickJS notices', async () => {
    const result = await run('eval("[".repeat(9000) + "]".repeat(9000))');
    expect(result.status).toBe('error');
    expect(result.error!.message).toMatch(/stack overflow/);
    expect(await run('1 + 1')).toMatchObject({ status: 'ok', value: '2' });
  });

  it('truncates oversize console output with a marker', async () => {
    const many = await run('for (let i = 0; i < 10000; i++) console.log("line", i); "done"', { maxOutputChars: 200 });
    expect(many).toMatchObject({ status: 'ok', value: '"done"', consoleTruncated: true });
    expect(many.console.startsWith('line 0\nline 1\n')).toBe(true);
    expect(many.console).toMatch(/…\[console output truncated at 200 chars\]$/);
    expect(many.console.length).toBeLessThan(260);

    const huge = await run('console.log("x".repeat(5e6)); console.log({ big: "y".repeat(5e6) }); 1', { maxOutputChars: 100 });
    expect(huge).toMatchObject({ status: 'ok', consoleTruncated: true });
    expect(huge.console.length).toBeLessThan(160);

    const report = await runCodeTool.execute({ code: 'for (let i = 0; i < 1e5; i++) console.log("\\u0001".repeat(50))' }, toolCtx());
    expect(report.length).toBeLessThanOrEqual(runCodeTool.limits.maxOutputChars);
    expect(JSON.parse(report)).toMatchObject({ status: 'ok' });
  });
});

describe('run_code: abort', () => {
  it('does not start when the signal is already aborted', async () => {
    const controller = new AbortController();
    controller.abort();
    const result = await run('console.log("ran"); while (true) {}', { signal: controller.signal });
    expect(result).toMatchObject({ status: 'aborted', console: '', error: { name: 'AbortError' } });
  });

  it('stops when the signal aborts after the call started', async () => {
    const controller = new AbortController();
    const started = performance.now();
    const pending = run('while (true) {}', { timeoutMs: 2_000, signal: controller.signal });
    controller.abort();
    expect(await pending).toMatchObject({ status: 'aborted' });
    expect(performance.now() - started).toBeLessThan(500);
  });

  it('polls the signal while code runs', async () => {
    // The run holds the thread, so only a signal flipped by other means (another thread, a host
    // callback) can change mid-run; simulate one whose state flips after 100 ms.
    const controller = new AbortController();
    const flipAt = performance.now() + 100;
    Object.defineProperty(controller.signal, 'aborted', { get: () => performance.now() >= flipAt });
    const started = performance.now();
    const result = await run('while (true) {}', { timeoutMs: 2_000, signal: controller.signal });
    expect(result).toMatchObject({ status: 'aborted', error: { message: 'the run was aborted' } });
    expect(performance.now() - started).toBeLessThan(600);
  });
});

describe('run_code: the tool', () => {
  it('describes itself for the judge', () => {
    expect(runCodeTool.name).toBe('run_code');
    expect(runCodeTool.description).toMatch(
      /^Runs JavaScript \(ES2023, no I\/O\) in an isolated sandbox to check a candidate's code against tests; returns console output, the last value, or the error\./,
    );
    expect(runCodeTool.limits).toEqual({ timeoutMs: 10_000, maxOutputChars: 8_000 });
    expect(runCodeTool.parameters).toMatchObject({ required: ['code'], properties: { code: { maxLength: MAX_CODE_CHARS } } });
  });

  it('returns a JSON report, using the run settings for the limits', async () => {
    expect(await execute({ code: 'console.log("hi"); 2 + 2' })).toMatchObject({ status: 'ok', value: '4', console: 'hi\n' });
    const slow = JSON.parse(await runCodeTool.execute({ code: 'while (true) {}' }, toolCtx({ timeoutMs: 150, memoryMb: 16 })));
    expect(slow).toMatchObject({ status: 'timeout', error: 'TimeoutError: timed out after 150 ms', failedIn: 'code' });
  });

  it('rejects bad arguments with clear errors', async () => {
    const ctx = toolCtx();
    await expect(runCodeTool.execute({}, ctx)).rejects.toThrow('missing required argument "code"');
    await expect(runCodeTool.execute(null, ctx)).rejects.toThrow(/arguments must be an object/);
    await expect(runCodeTool.execute({ code: 42 }, ctx)).rejects.toThrow('argument "code" must be a string, got number');
    await expect(runCodeTool.execute({ code: 'x'.repeat(MAX_CODE_CHARS + 1) }, ctx)).rejects.toThrow(/longer than 20000 characters/);
    await expect(runCodeTool.execute({ code: '1', tests: ['assert(true)'] }, ctx)).rejects.toThrow('argument "tests" must be a string');
    await expect(runInSandbox(undefined as unknown as string, opts)).rejects.toThrow('code must be a string');
    await expect(runInSandbox('1', { ...opts, timeoutMs: 0 })).rejects.toThrow('timeoutMs must be a positive number');
  });

  it('gives the judge failing code as successful evidence through the registry', async () => {
    const registry = new ToolRegistry([runCodeTool]);
    const call = (args: unknown) => ({ id: 'c1', name: 'run_code', arguments: JSON.stringify(args) });
    const settings = toolCtx().settings;
    const failing = await registry.run(call({ code: 'function f() { return 1 }', tests: 'assert.equal(f(), 2)' }), { settings }, 1);
    expect(failing.ok).toBe(true);
    expect(JSON.parse(failing.output)).toMatchObject({ status: 'error', error: 'AssertionError: expected 2, got 1' });
    const invalid = await registry.run(call({ tests: 'assert(true)' }), { settings }, 1);
    expect(invalid).toMatchObject({ ok: false, output: 'invalid arguments for run_code: missing required argument: code' });
  });
});

describe('run_code: resources', () => {
  it('runs 200 calls in sequence without leaking handles or growing the heap', async () => {
    await run('1'); // load
    const before = sandboxStats().find((s) => s.memoryMb === 16)!;
    const heapBefore = process.memoryUsage().heapUsed;
    const codes = [
      'console.log("x", [1, 2]); ({ a: 1 })',
      'throw new Error("e")',
      'Promise.resolve(1).then((x) => x + 1)',
      'Promise.reject(2)',
      'const s = new Set([1]); s',
      'x = ;',
    ];
    const started = performance.now();
    for (let i = 0; i < 200; i++) {
      const result = await run(codes[i % codes.length]!, i % 2 ? { tests: 'assert(true)' } : {});
      expect(['ok', 'error']).toContain(result.status);
    }
    const perCall = (performance.now() - started) / 200;
    // A leaked handle would abort QuickJS's leak assertion at dispose and retire the instance,
    // so the same instance must still be there, with its memory where it was.
    expect(sandboxStats().find((s) => s.memoryMb === 16)).toEqual(before);
    expect(process.memoryUsage().heapUsed - heapBefore).toBeLessThan(50 * 1024 * 1024);
    expect(perCall).toBeLessThan(25);
  });
});
