// run_code: JavaScript in a QuickJS interpreter compiled to WebAssembly, so the judge can run a
// candidate's code against tests and cite what happened.
//
// Isolation. Each call gets a fresh QuickJS runtime and context. The context has the ECMAScript
// built-ins and nothing else: no std/os modules (the release-sync build has none), no module
// loader, no timers, no fetch. The only host function is the console sink, reachable solely from a
// closure in the prelude below; console and assert themselves are plain JavaScript inside the VM.
//
// Limits, and where the obvious settings fall short in this build (all measured):
//   - Time: an interrupt handler (deadline, abort signal, memory watchdog). QuickJS raises an
//     uncatchable "interrupted" error, so try/catch in the sandboxed code cannot swallow it.
//   - Memory: `setMemoryLimit` only refuses single allocations above the limit here, because
//     QuickJS's accounting needs malloc_usable_size, which the Emscripten build lacks; 250 arrays
//     of 8 MB each pass a 32 MB limit. The real bound is the WebAssembly memory itself: each
//     memory setting gets its own module instance whose Memory has a hard `maximum`, and the
//     interrupt handler stops a run once the heap has grown past base + limit (the headroom above
//     that keeps the interpreter able to report the failure). An instance that ends a run that
//     large is replaced, since WebAssembly memory never shrinks.
//   - Stack: QuickJS's stack limit guards the interpreter's own stack, but its C frames also use
//     V8's native stack, and some recursion (the parser on deeply nested literals) exhausts that
//     first, at any QuickJS setting. V8 then throws a RangeError out of the WebAssembly call,
//     which leaves the instance inconsistent: it is dropped, never reused, and the run reports
//     a stack overflow. 192 KiB keeps ordinary recursion (about 1,100 plain calls deep) inside
//     QuickJS's own check; 384 KiB already overflowed Node's default native stack.
//   - Polling: QuickJS calls the interrupt handler once per 10,000 "ticks" (calls and backward
//     jumps), a constant of the build. A loop whose body is one slow built-in call
//     (`for (;;) big.fill(1)`, `for (;;) JSON.stringify(big)`) then overran a 300 ms limit by
//     30 to 150 s. The counter lives in the JSContext; each instance locates it once (a field
//     that QuickJS sets to 10,000 right before every poll, confirmed by the poll rate changing
//     when it is lowered) and the handler then sets the next budget so that polls come about
//     every millisecond (1 to 64 ticks; no measurable cost, 16 cost up to 40%). A loop can still
//     overrun by up to 64 ticks of its slowest built-in call before the rate adapts, and a single
//     built-in call is never interrupted (sorting a few hundred thousand numbers as strings takes
//     seconds). If the field is not found, polling stays at QuickJS's default.
//
// Execution is synchronous on the calling thread: an abort that arrives while code is running is
// seen when the run ends (or by the interrupt handler if the signal is flipped synchronously).
// Only a worker thread that can be terminated would make the time limit and abort hard.
import RELEASE_SYNC from '@jitl/quickjs-wasmfile-release-sync';
import {
  newQuickJSWASMModuleFromVariant,
  newVariant,
  shouldInterruptAfterDeadline,
  type QuickJSContext,
  type QuickJSHandle,
  type QuickJSRuntime,
  type QuickJSWASMModule,
} from 'quickjs-emscripten-core';
import type { Tool } from './registry';

export const MAX_CODE_CHARS = 20_000;
export const MAX_TESTS_CHARS = 20_000;
export const DEFAULT_TIMEOUT_MS = 2_000;
export const DEFAULT_MEMORY_MB = 32;
/** QuickJS's own stack limit (see the header: larger values let V8's native stack overflow first). */
export const MAX_STACK_BYTES = 192 * 1024;

const MIB = 1024 * 1024;
const WASM_PAGE = 64 * 1024;
/** The module's declared minimum memory: static data, the C stack and the allocator's first heap. */
const BASE_BYTES = 16 * MIB;
/** Time allowed after the run for describing the last value and the error (user getters may loop). */
const DESCRIBE_GRACE_MS = 100;
/** Longest rendering of the last value and of an error message in a result. */
const MAX_VALUE_CHARS = 1_000;
const MAX_MESSAGE_CHARS = 1_000;
/** Stack text read from the VM, and the lines kept after dropping prelude frames and repeats. */
const MAX_RAW_STACK_CHARS = 4_000;
const MAX_STACK_LINES = 8;
/** Module instances kept (one per memory setting in use). */
const MAX_INSTANCES = 4;
/** QuickJS's ticks between interrupt polls (JS_INTERRUPT_COUNTER_INIT), and the range the handler tunes it in. */
const QUICKJS_POLL_TICKS = 10_000;
const MAX_POLL_TICKS = 64;
/** Aimed-for time between polls. */
const POLL_INTERVAL_MS = 1;

export class RunCodeError extends Error {
  override name = 'RunCodeError';
}

export type SandboxStatus = 'ok' | 'error' | 'timeout' | 'memory' | 'aborted';

export interface SandboxError {
  /** The error's name (TypeError, AssertionError…), or TimeoutError / MemoryLimitError / AbortError for the limits. */
  name: string;
  message: string;
  /** QuickJS's stack trace ("    at f (code.js:2:9)"), shortened. */
  stack?: string;
  /** Which source was running: the code, the tests, or promise jobs after them (reported as the last source). */
  phase: 'code' | 'tests';
}

export interface SandboxResult {
  status: SandboxStatus;
  /** The last expression's value (awaited if it is a promise), rendered like console.log; only when status is ok. */
  value?: string;
  error?: SandboxError;
  /** What console.log / console.error printed (error lines prefixed "[error] "), ending with a marker when cut. */
  console: string;
  consoleTruncated: boolean;
  durationMs: number;
}

export interface SandboxOptions {
  timeoutMs: number;
  memoryMb: number;
  /** Most console characters kept; the rest is dropped and the output ends with a truncation marker. */
  maxOutputChars: number;
  /** Run after `code`, in the same global scope, when `code` completed. */
  tests?: string;
  signal?: AbortSignal;
}

// ---------------------------------------------------------------------------------------------
// Module instances

/** The parts of WebAssembly the sandbox uses (the project's type libraries do not declare them). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmGlobal {
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  RuntimeError: new (...args: never[]) => Error;
}
const wasm = (globalThis as unknown as { WebAssembly: WasmGlobal }).WebAssembly;

interface Instance {
  module: QuickJSWASMModule;
  memory: WasmMemory;
  memoryMb: number;
  /** Heap size past which a run is stopped for exceeding its memory limit. */
  thresholdBytes: number;
  /** Set when a run left the instance unusable (native stack overflow, a WebAssembly trap, a failed dispose). */
  broken: boolean;
  /** Byte offset of the interrupt counter in a JSContext, when it was found (see the header). */
  counterOffset?: number;
  slot: Slot;
}
interface Slot {
  promise: Promise<Instance>;
}

/** Module instances by memory setting; each promise is created once and kept until the instance is retired. */
const instances = new Map<number, Slot>();
/** The loaded instance of each slot, once its promise has resolved. */
const settled = new WeakMap<Slot, Instance>();

function loadInstance(memoryMb: number): Slot {
  const limitBytes = memoryMb * MIB;
  // Headroom above the threshold: room for the interpreter to raise and report out-of-memory.
  const headroom = 8 * MIB + Math.ceil(limitBytes / 4);
  const slot = {} as Slot;
  slot.promise = (async () => {
    const memory = new wasm.Memory({
      initial: BASE_BYTES / WASM_PAGE,
      maximum: Math.ceil((BASE_BYTES + limitBytes + headroom) / WASM_PAGE),
    });
    const module = await newQuickJSWASMModuleFromVariant(newVariant(RELEASE_SYNC, { wasmMemory: memory }));
    const counterOffset = findInterruptCounter(module, memory);
    const instance: Instance = {
      module,
      memory,
      memoryMb,
      thresholdBytes: BASE_BYTES + limitBytes,
      broken: false,
      ...(counterOffset !== undefined ? { counterOffset } : {}),
      slot,
    };
    settled.set(slot, instance);
    return instance;
  })();
  return slot;
}

/** The JSContext's address in the WebAssembly memory (a protected field of the wrapper). */
function contextAddress(context: QuickJSContext): number | undefined {
  const address = (context as unknown as { ctx?: { value?: unknown } }).ctx?.value;
  return typeof address === 'number' && address > 0 && address % 4 === 0 ? address : undefined;
}

/**
 * Finds the JSContext's interrupt counter: the one field that reads QUICKJS_POLL_TICKS at every
 * poll (QuickJS resets it just before calling the handler), confirmed by polls becoming far more
 * frequent when the handler lowers it. Undefined when not found.
 */
function findInterruptCounter(module: QuickJSWASMModule, memory: WasmMemory): number | undefined {
  const runtime = module.newRuntime();
  const context = runtime.newContext();
  try {
    const base = contextAddress(context);
    if (base === undefined) return undefined;
    const at = (offset: number) => new Int32Array(memory.buffer)[(base + offset) >> 2];
    let candidates: number[] | undefined;
    const countPolls = (onPoll: () => void): number => {
      let polls = 0;
      runtime.setInterruptHandler(() => {
        polls++;
        onPoll();
        return false;
      });
      const result = context.evalCode('for (let i = 0; i < 50000; i++) {}', 'calibrate.js', { type: 'global' });
      (result.error ?? result.value).dispose();
      return polls;
    };
    const baseline = countPolls(() => {
      if (candidates === undefined) {
        candidates = [];
        for (let offset = 0; offset < 1024; offset += 4) if (at(offset) === QUICKJS_POLL_TICKS) candidates.push(offset);
      } else {
        candidates = candidates.filter((offset) => at(offset) === QUICKJS_POLL_TICKS);
      }
    });
    const offset = candidates?.[0];
    if (offset === undefined || candidates?.length !== 1 || baseline < 3) return undefined;
    const lowered = countPolls(() => {
      const heap = new Int32Array(memory.buffer);
      if (heap[(base + offset) >> 2] === QUICKJS_POLL_TICKS) heap[(base + offset) >> 2] = 100;
    });
    return lowered >= baseline * 20 ? offset : undefined;
  } finally {
    runtime.removeInterruptHandler();
    context.dispose();
    runtime.dispose();
  }
}

/**
 * Sets the next poll budget so that polls come about every POLL_INTERVAL_MS: fewer ticks after a
 * slow stretch (slow built-ins), up to twice as many after a fast one. Returns the function to call
 * at each poll; it writes only while the field holds the value QuickJS has just stored there.
 */
function pollTuner(instance: Instance, context: QuickJSContext): () => void {
  const base = contextAddress(context);
  if (instance.counterOffset === undefined || base === undefined) return () => {};
  const index = (base + instance.counterOffset) >> 2;
  const { memory } = instance;
  let heap = new Int32Array(memory.buffer);
  // A fresh context's counter is 0, so QuickJS polls at the first tick and tuning starts there.
  let ticks = 1;
  let last = performance.now();
  return () => {
    const now = performance.now();
    const gap = now - last;
    last = now;
    ticks = gap > POLL_INTERVAL_MS ? Math.max(1, Math.floor((ticks * POLL_INTERVAL_MS) / gap)) : Math.min(MAX_POLL_TICKS, ticks * 2);
    if (heap.buffer !== memory.buffer) heap = new Int32Array(memory.buffer); // the memory grew
    if (heap[index] === QUICKJS_POLL_TICKS) heap[index] = ticks;
  };
}

function retire(instance: Instance): void {
  instance.broken = true;
  if (instances.get(instance.memoryMb) === instance.slot) instances.delete(instance.memoryMb);
}

async function acquire(memoryMb: number): Promise<Instance> {
  for (let attempt = 0; attempt < 3; attempt++) {
    let slot = instances.get(memoryMb);
    if (!slot) {
      if (instances.size >= MAX_INSTANCES) instances.delete(instances.keys().next().value as number);
      slot = loadInstance(memoryMb);
      instances.set(memoryMb, slot);
    }
    let instance: Instance;
    try {
      instance = await slot.promise;
    } catch (error) {
      if (instances.get(memoryMb) === slot) instances.delete(memoryMb); // let a later call retry
      throw new RunCodeError(`the JavaScript sandbox could not be loaded: ${(error as Error)?.message ?? String(error)}`);
    }
    // Replace an instance whose heap a previous run left at the threshold: it would stop at once.
    if (!instance.broken && instance.memory.buffer.byteLength < instance.thresholdBytes) return instance;
    retire(instance);
  }
  throw new RunCodeError('the JavaScript sandbox could not be prepared');
}

export interface SandboxInstanceStats {
  memoryMb: number;
  /** Current size of the instance's WebAssembly memory (it never shrinks). */
  wasmBytes: number;
  /** Whether the instance found QuickJS's interrupt counter and tunes the poll rate. */
  tunedPolling: boolean;
}

/** The loaded module instances (diagnostics and tests). */
export function sandboxStats(): SandboxInstanceStats[] {
  const out: SandboxInstanceStats[] = [];
  for (const slot of instances.values()) {
    const instance = settled.get(slot);
    if (instance) {
      out.push({
        memoryMb: instance.memoryMb,
        wasmBytes: instance.memory.buffer.byteLength,
        tunedPolling: instance.counterOffset !== undefined,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// The prelude: console, assert and the value printer, evaluated in every fresh context.
// It receives the host sink `write(stream, text)` and keeps it in its closure; sandboxed code
// never sees it. Built-ins are captured up front so that code that overwrites them cannot break
// the printer (only its own output).

const PRELUDE = String.raw`(function (write, budget) {
  'use strict';
  const O = Object, A = Array;
  const { keys, getPrototypeOf, getOwnPropertyDescriptor, defineProperty } = O;
  const isArray = A.isArray, stringify = JSON.stringify, toStr = String, isNaNValue = Number.isNaN;
  const ErrorCtor = Error, DateCtor = Date, RegExpCtor = RegExp, MapCtor = Map, SetCtor = Set, ArrayBufferCtor = ArrayBuffer;
  const uncurry = (f) => Function.prototype.call.bind(f);
  const push = uncurry(A.prototype.push), join = uncurry(A.prototype.join), indexOf = uncurry(A.prototype.indexOf);
  const pop = uncurry(A.prototype.pop), sliceStr = uncurry(String.prototype.slice);
  const objectTag = uncurry(O.prototype.toString), fnSource = uncurry(Function.prototype.toString);
  const isoDate = uncurry(DateCtor.prototype.toISOString), dateTime = uncurry(DateCtor.prototype.getTime);
  const regexpText = uncurry(RegExpCtor.prototype.toString), symbolText = uncurry(Symbol.prototype.toString);
  const mapSize = uncurry(getOwnPropertyDescriptor(MapCtor.prototype, 'size').get);
  const setSize = uncurry(getOwnPropertyDescriptor(SetCtor.prototype, 'size').get);
  const mapEntries = uncurry(MapCtor.prototype.entries), setValues = uncurry(SetCtor.prototype.values);
  const mapNext = uncurry(getPrototypeOf(new MapCtor().entries()).next);
  const setNext = uncurry(getPrototypeOf(new SetCtor().values()).next);
  const typedTag = uncurry(getOwnPropertyDescriptor(getPrototypeOf(Uint8Array.prototype), Symbol.toStringTag).get);
  const bufferLength = uncurry(getOwnPropertyDescriptor(ArrayBufferCtor.prototype, 'byteLength').get);
  const MAX_DEPTH = 4, MAX_ITEMS = 50;
  const THREW = {};
  const get = (o, k) => { try { return o[k]; } catch { return THREW; } };
  const IDENT = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
  const identTest = uncurry(RegExpCtor.prototype.test);

  function inspect(value, limit, rawStrings) {
    const parts = [], seen = [];
    let length = 0, full = false;
    const emit = (s) => {
      if (full) return;
      if (length + s.length > limit) { push(parts, sliceStr(s, 0, limit - length) + '…'); length = limit; full = true; return; }
      push(parts, s); length += s.length;
    };
    const quote = (s) => s.length > limit ? stringify(sliceStr(s, 0, limit)) + '…' : stringify(s);
    const list = (open, items, close) => {
      if (items === 0) { emit(open + close); return false; }
      emit(open + ' '); return true;
    };
    const fmt = (v, depth, top) => {
      if (full) return;
      if (v === THREW) { emit('[threw]'); return; }
      switch (typeof v) {
        case 'string': emit(top && rawStrings ? v : quote(v)); return;
        case 'number': emit(v === 0 && 1 / v < 0 ? '-0' : toStr(v)); return;
        case 'bigint': emit(toStr(v) + 'n'); return;
        case 'boolean': emit(v ? 'true' : 'false'); return;
        case 'undefined': emit('undefined'); return;
        case 'symbol': emit(symbolText(v)); return;
        case 'function': {
          let src = ''; try { src = fnSource(v); } catch {}
          const name = get(v, 'name');
          const label = typeof name === 'string' && name ? name : '(anonymous)';
          emit(sliceStr(src, 0, 5) === 'class' ? '[class ' + label + ']' : '[Function: ' + label + ']');
          return;
        }
      }
      if (v === null) { emit('null'); return; }
      if (indexOf(seen, v) !== -1) { emit('[Circular]'); return; }
      const tag = objectTag(v);
      if (v instanceof ErrorCtor) {
        const name = get(v, 'name'), message = get(v, 'message');
        emit(toStr(typeof name === 'string' ? name : 'Error') + (typeof message === 'string' && message ? ': ' + message : ''));
        return;
      }
      if (tag === '[object Date]') { let t = NaN; try { t = dateTime(v); } catch {} emit(isNaNValue(t) ? 'Invalid Date' : isoDate(v)); return; }
      if (tag === '[object RegExp]') { emit(regexpText(v)); return; }
      if (tag === '[object Promise]') { emit('Promise {}'); return; }
      if (tag === '[object WeakMap]' || tag === '[object WeakSet]' || tag === '[object WeakRef]') { emit(sliceStr(tag, 8, -1) + ' {}'); return; }
      if (v instanceof ArrayBufferCtor) { emit('ArrayBuffer { byteLength: ' + bufferLength(v) + ' }'); return; }
      if (depth >= MAX_DEPTH) { emit(isArray(v) ? '[Array]' : '[Object]'); return; }
      push(seen, v);
      const typed = typedTag(v);
      if (isArray(v) || typed !== undefined) {
        const len = typed !== undefined ? v.length : get(v, 'length');
        const n = typeof len === 'number' ? len : 0;
        if (typed !== undefined) emit(typed + '(' + n + ') ');
        if (list('[', n, ']')) {
          for (let i = 0; i < n && i < MAX_ITEMS && !full; i++) { if (i > 0) emit(', '); fmt(get(v, i), depth + 1, false); }
          if (n > MAX_ITEMS) emit(', … ' + (n - MAX_ITEMS) + ' more');
          emit(' ]');
        }
      } else if (v instanceof MapCtor) {
        const n = mapSize(v), it = mapEntries(v);
        emit('Map(' + n + ') ');
        if (list('{', n, '}')) {
          for (let i = 0, r = mapNext(it); !r.done && i < MAX_ITEMS && !full; i++, r = mapNext(it)) {
            if (i > 0) emit(', ');
            fmt(r.value[0], depth + 1, false); emit(' => '); fmt(r.value[1], depth + 1, false);
          }
          if (n > MAX_ITEMS) emit(', … ' + (n - MAX_ITEMS) + ' more');
          emit(' }');
        }
      } else if (v instanceof SetCtor) {
        const n = setSize(v), it = setValues(v);
        emit('Set(' + n + ') ');
        if (list('{', n, '}')) {
          for (let i = 0, r = setNext(it); !r.done && i < MAX_ITEMS && !full; i++, r = setNext(it)) { if (i > 0) emit(', '); fmt(r.value, depth + 1, false); }
          if (n > MAX_ITEMS) emit(', … ' + (n - MAX_ITEMS) + ' more');
          emit(' }');
        }
      } else {
        const proto = getPrototypeOf(v);
        const ctor = proto === null ? undefined : get(proto, 'constructor');
        const cname = typeof ctor === 'function' ? get(ctor, 'name') : undefined;
        if (proto === null) emit('[Object: null prototype] ');
        else if (typeof cname === 'string' && cname && cname !== 'Object') emit(cname + ' ');
        const ks = keys(v);
        if (list('{', ks.length, '}')) {
          for (let i = 0; i < ks.length && i < MAX_ITEMS && !full; i++) {
            if (i > 0) emit(', ');
            const k = ks[i];
            emit((identTest(IDENT, k) ? k : stringify(k)) + ': ');
            fmt(get(v, k), depth + 1, false);
          }
          if (ks.length > MAX_ITEMS) emit(', … ' + (ks.length - MAX_ITEMS) + ' more');
          emit(' }');
        }
      }
      pop(seen);
    };
    try { fmt(value, 0, true); } catch { emit(' [uninspectable]'); }
    return join(parts, '');
  }

  let used = 0, dropped = false;
  const printer = (stream) => function (...args) {
    if (used >= budget) {
      if (!dropped) { dropped = true; write(stream); } // tell the host once that output was cut
      return;
    }
    const parts = [];
    for (let i = 0; i < args.length; i++) {
      const room = budget - used;
      if (room <= 0) break;
      const text = inspect(args[i], room + 1, true);
      push(parts, text); used += text.length + 1;
    }
    write(stream, join(parts, ' '));
  };
  const log = printer(0), error = printer(1);
  const console = { log, info: log, debug: log, error, warn: error };

  class AssertionError extends ErrorCtor {}
  defineProperty(AssertionError.prototype, 'name', { value: 'AssertionError', writable: true, configurable: true });
  const show = (v) => inspect(v, 200, false);
  const fail = (message, detail) => { throw new AssertionError(message === undefined ? detail : toStr(message) + ': ' + detail); };
  const hasOwn = uncurry(O.prototype.hasOwnProperty);
  const same = (a, b) => a === b || (a !== a && b !== b);
  const deepSame = (a, b, depth) => {
    if (same(a, b)) return true;
    if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null || depth > 100) return false;
    if (getPrototypeOf(a) !== getPrototypeOf(b)) return false;
    if (a instanceof DateCtor) return same(dateTime(a), dateTime(b));
    if (isArray(a)) {
      if (a.length !== b.length) return false;
      for (let i = 0; i < a.length; i++) if (!deepSame(a[i], b[i], depth + 1)) return false;
      return true;
    }
    if (a instanceof MapCtor || a instanceof SetCtor) return deepSame([...a], [...b], depth + 1);
    const ka = keys(a), kb = keys(b);
    if (ka.length !== kb.length) return false;
    for (const k of ka) if (!hasOwn(b, k) || !deepSame(a[k], b[k], depth + 1)) return false;
    return true;
  };
  function assert(condition, message) {
    if (!condition) throw new AssertionError(message === undefined ? 'assertion failed' : toStr(message));
  }
  assert.ok = assert;
  assert.equal = function equal(actual, expected, message) {
    if (!same(actual, expected)) fail(message, 'expected ' + show(expected) + ', got ' + show(actual));
  };
  assert.deepEqual = function deepEqual(actual, expected, message) {
    if (!deepSame(actual, expected, 0)) fail(message, 'expected ' + show(expected) + ', got ' + show(actual));
  };
  assert.throws = function throws(fn, expected, message) {
    try { fn(); } catch (e) {
      if (typeof expected === 'function' && !(e instanceof expected)) fail(message, 'expected ' + show(expected) + ' to be thrown, got ' + show(e));
      return e;
    }
    fail(message, 'expected the function to throw');
  };

  const define = (name, value) => defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
  define('console', console);
  define('assert', assert);
  define('AssertionError', AssertionError);

  const describe = (v) => inspect(v, ${MAX_VALUE_CHARS}, false);
  const errorInfo = (e) => {
    if (e !== null && (typeof e === 'object' || typeof e === 'function')) {
      const name = get(e, 'name'), message = get(e, 'message'), stack = get(e, 'stack');
      if (typeof message === 'string' || e instanceof ErrorCtor) {
        return stringify({
          name: typeof name === 'string' ? sliceStr(name, 0, 100) : 'Error',
          message: typeof message === 'string' ? sliceStr(message, 0, ${MAX_MESSAGE_CHARS}) : '',
          stack: typeof stack === 'string' ? sliceStr(stack, 0, ${MAX_RAW_STACK_CHARS}) : undefined,
        });
      }
    }
    return stringify({ name: 'thrown value', message: inspect(e, ${MAX_MESSAGE_CHARS}, false) });
  };
  return { describe, errorInfo };
})`;

// ---------------------------------------------------------------------------------------------
// A run

type Interrupt = 'timeout' | 'memory' | 'aborted';
type Phase = SandboxError['phase'];

class ConsoleBuffer {
  private readonly parts: string[] = [];
  private length = 0;
  truncated = false;

  constructor(private readonly max: number) {}

  add(line: string): void {
    if (this.truncated) return;
    const room = this.max - this.length;
    if (line.length > room) {
      this.parts.push(line.slice(0, room));
      this.length = this.max;
      this.truncated = true;
      return;
    }
    this.parts.push(line);
    this.length += line.length;
  }

  /** Output was produced but not kept. */
  drop(): void {
    this.truncated = true;
  }

  text(): string {
    const text = this.parts.join('');
    return this.truncated ? `${text}…[console output truncated at ${this.max} chars]` : text;
  }
}

/** A run failed in a way that leaves the module instance unusable (see the header). */
function isInstanceFatal(error: unknown): boolean {
  return (
    (error instanceof RangeError && /call stack/i.test(error.message)) ||
    error instanceof wasm.RuntimeError ||
    (error instanceof Error && /Aborted\(|memory access out of bounds|unreachable/i.test(error.message))
  );
}

const isNullPointer = (handle: QuickJSHandle): boolean => (handle.value as unknown as number) === 0;

/** Runs `code` (then `opts.tests`) in a fresh sandbox. Failures of the code are results; only sandbox problems throw. */
export async function runInSandbox(code: string, opts: SandboxOptions): Promise<SandboxResult> {
  if (typeof code !== 'string') throw new RunCodeError('code must be a string');
  if (opts.tests !== undefined && typeof opts.tests !== 'string') throw new RunCodeError('tests must be a string');
  for (const key of ['timeoutMs', 'memoryMb', 'maxOutputChars'] as const) {
    const value = opts[key];
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      throw new RunCodeError(`${key} must be a positive number, got ${String(value)}`);
    }
  }
  const started = performance.now();
  const memoryMb = Math.ceil(opts.memoryMb);
  const aborted = (): SandboxResult => ({
    status: 'aborted',
    error: { name: 'AbortError', message: 'the run was aborted', phase: 'code' },
    console: '',
    consoleTruncated: false,
    durationMs: elapsed(started),
  });
  if (opts.signal?.aborted) return aborted();
  const instance = await acquire(memoryMb);
  if (opts.signal?.aborted) return aborted(); // aborted while the sandbox loaded
  return runOnInstance(instance, code, opts, started);
}

function elapsed(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

function runOnInstance(instance: Instance, code: string, opts: SandboxOptions, started: number): SandboxResult {
  const { module, memory } = instance;
  const output = new ConsoleBuffer(Math.floor(opts.maxOutputChars));
  const handles: QuickJSHandle[] = [];
  const own = (handle: QuickJSHandle): QuickJSHandle => {
    handles.push(handle);
    return handle;
  };
  let runtime: QuickJSRuntime | undefined;
  let context: QuickJSContext | undefined;
  let fatal: unknown;
  let interrupt: Interrupt | undefined;
  let phase: Phase = 'code';
  const result: SandboxResult = { status: 'ok', console: '', consoleTruncated: false, durationMs: 0 };
  const limitError = (reason: Interrupt): SandboxError => {
    if (reason === 'timeout') return { name: 'TimeoutError', message: `timed out after ${opts.timeoutMs} ms`, phase };
    if (reason === 'memory') return { name: 'MemoryLimitError', message: `memory limit of ${instance.memoryMb} MB exceeded`, phase };
    return { name: 'AbortError', message: 'the run was aborted', phase };
  };
  const fail = (status: SandboxStatus, error: SandboxError): void => {
    result.status = status;
    result.error = error;
  };

  try {
    runtime = module.newRuntime();
    runtime.setMaxStackSize(MAX_STACK_BYTES);
    const ctx = (context = runtime.newContext());

    // Limits, set before anything runs (the poll tuner starts from a fresh context's counter).
    runtime.setMemoryLimit(instance.memoryMb * MIB);
    const tunePolls = pollTuner(instance, ctx);
    const pastDeadline = shouldInterruptAfterDeadline(Date.now() + opts.timeoutMs);
    runtime.setInterruptHandler((rt) => {
      if (interrupt === undefined) {
        if (opts.signal?.aborted) interrupt = 'aborted';
        else if (memory.buffer.byteLength >= instance.thresholdBytes) interrupt = 'memory';
        else if (pastDeadline(rt)) interrupt = 'timeout';
      }
      if (interrupt !== undefined) return true;
      tunePolls();
      return false;
    });

    // Host sink for console output; strings only, already bounded by the prelude.
    const write = own(
      ctx.newFunction('write', (stream, text) => {
        if (text === undefined || ctx.typeof(text) !== 'string') {
          output.drop(); // a call past the prelude's budget
          return;
        }
        output.add(`${ctx.getNumber(stream) === 1 ? '[error] ' : ''}${ctx.getString(text)}\n`);
      }),
    );
    const preludeResult = ctx.evalCode(PRELUDE, 'prelude.js', { type: 'global', strict: true });
    if (preludeResult.error) {
      preludeResult.error.dispose();
      throw new RunCodeError('the sandbox prelude failed to compile');
    }
    const prelude = own(preludeResult.value);
    const budget = own(ctx.newNumber(Math.floor(opts.maxOutputChars)));
    const installed = ctx.callFunction(prelude, ctx.undefined, write, budget);
    if (installed.error) {
      installed.error.dispose();
      throw new RunCodeError('the sandbox prelude failed to run');
    }
    const helpers = own(installed.value);
    const describeFn = own(ctx.getProp(helpers, 'describe'));
    const errorInfoFn = own(ctx.getProp(helpers, 'errorInfo'));

    let thrown: QuickJSHandle | undefined;
    let last: QuickJSHandle | undefined;
    const sources: Array<[Phase, string]> = [['code', code]];
    if (opts.tests !== undefined && opts.tests.trim() !== '') sources.push(['tests', opts.tests]);
    for (const [name, source] of sources) {
      phase = name;
      const evaluated = ctx.evalCode(source, `${name}.js`, { type: 'global' });
      if (evaluated.error) {
        thrown = own(evaluated.error);
        break;
      }
      if (isNullPointer(evaluated.value)) {
        // The wrapper could not allocate the result handle (nothing to dispose): the heap is exhausted.
        interrupt ??= 'memory';
        break;
      }
      last = own(evaluated.value);
    }

    // Promise jobs (then-callbacks, async functions), then the last value if it is a promise.
    while (thrown === undefined && interrupt === undefined && runtime.hasPendingJob()) {
      const jobs = runtime.executePendingJobs();
      if (jobs.error) thrown = own(jobs.error);
    }
    if (thrown === undefined && interrupt === undefined && last !== undefined && ctx.typeof(last) === 'object') {
      const state = ctx.getPromiseState(last);
      if (state.type === 'rejected') thrown = own(state.error);
      else if (state.type === 'fulfilled' && !state.notAPromise) last = own(state.value);
      else if (state.type === 'pending') result.value = 'Promise { <pending> } (it never settled: the sandbox has no timers or I/O)';
    }

    // Describe the outcome with the limits relaxed: the code's own state may fill the heap.
    runtime.setMemoryLimit(-1);
    const describeDeadline = shouldInterruptAfterDeadline(Date.now() + DESCRIBE_GRACE_MS);
    runtime.setInterruptHandler(describeDeadline);
    const callForString = (fn: QuickJSHandle, arg: QuickJSHandle): string | undefined => {
      const called = ctx.callFunction(fn, ctx.undefined, arg);
      if (called.error) {
        called.error.dispose();
        return undefined;
      }
      const value = own(called.value);
      return ctx.typeof(value) === 'string' ? ctx.getString(value) : undefined;
    };

    if (interrupt !== undefined) {
      fail(interrupt, limitError(interrupt));
    } else if (thrown !== undefined) {
      const info = parseErrorInfo(callForString(errorInfoFn, thrown));
      const unreadable = info === undefined || (info.name === 'thrown value' && info.message === 'null');
      if (info?.name === 'InternalError' && info.message === 'out of memory') fail('memory', limitError('memory'));
      else if (unreadable && memory.buffer.byteLength >= instance.thresholdBytes) fail('memory', limitError('memory'));
      else if (info === undefined) fail('error', { name: 'Error', message: '(the thrown value could not be read)', phase });
      else fail('error', { ...info, phase });
    } else if (result.value === undefined) {
      result.value = last === undefined ? 'undefined' : (callForString(describeFn, last) ?? '[the value could not be displayed]');
    }
  } catch (error) {
    if (isInstanceFatal(error)) fatal = error;
    else throw error instanceof RunCodeError ? error : new RunCodeError(`the sandbox failed: ${(error as Error)?.message ?? error}`);
  } finally {
    if (fatal === undefined) {
      try {
        for (const handle of handles.reverse()) if (handle.alive) handle.dispose();
        context?.dispose();
        runtime?.dispose();
      } catch (error) {
        fatal = error;
      }
    }
    // A run that fills the heap leaves the instance at its threshold; acquire() replaces it then.
    if (fatal !== undefined) retire(instance);
  }

  if (fatal !== undefined) {
    if (fatal instanceof RangeError) {
      fail('error', {
        name: 'InternalError',
        message: 'stack overflow (nesting or recursion too deep for the interpreter)',
        phase,
      });
    } else if (memory.buffer.byteLength >= instance.thresholdBytes) {
      fail('memory', limitError('memory'));
    } else {
      throw new RunCodeError(`the sandbox crashed: ${(fatal as Error)?.message ?? String(fatal)}`);
    }
  }
  result.console = output.text();
  result.consoleTruncated = output.truncated;
  result.durationMs = elapsed(started);
  return result;
}

function parseErrorInfo(text: string | undefined): { name: string; message: string; stack?: string } | undefined {
  if (text === undefined) return undefined;
  try {
    const info = JSON.parse(text) as { name?: unknown; message?: unknown; stack?: unknown };
    if (typeof info.name !== 'string' || typeof info.message !== 'string') return undefined;
    const stack = typeof info.stack === 'string' ? tidyStack(info.stack) : '';
    return { name: info.name, message: info.message, ...(stack ? { stack } : {}) };
  } catch {
    return undefined;
  }
}

/** The frames that matter to the reader: no prelude (assert's own) frames, repeats folded, a few lines. */
function tidyStack(stack: string): string {
  const runs: Array<{ line: string; count: number }> = [];
  for (const line of stack.split('\n')) {
    if (line.trim() === '' || line.includes('(prelude.js:')) continue;
    const previous = runs[runs.length - 1];
    if (previous?.line === line) previous.count++;
    else runs.push({ line, count: 1 });
  }
  const shown = runs.slice(0, MAX_STACK_LINES).map(({ line, count }) => (count > 1 ? `${line} ×${count}` : line));
  const hidden = runs.slice(MAX_STACK_LINES).reduce((n, run) => n + run.count, 0);
  if (hidden > 0) shown.push(`    … ${hidden} more frame${hidden === 1 ? '' : 's'}`);
  return shown.join('\n');
}

// ---------------------------------------------------------------------------------------------
// The tool

const TOOL_LIMITS = { timeoutMs: 10_000, maxOutputChars: 8_000 };
/** Console characters kept in a tool report (the rest of the 8,000 goes to the value, error and JSON). */
const TOOL_CONSOLE_CHARS = 4_000;

/**
 * The report the judge reads: JSON with the outcome first, at most `maxChars` long. JSON escaping
 * can multiply control characters sixfold, so the console, and then the other texts, are cut to fit.
 */
export function formatReport(result: SandboxResult, maxChars = TOOL_LIMITS.maxOutputChars): string {
  let text = renderReport(result, result.console);
  for (let keep = result.console.length; text.length > maxChars && keep > 0; ) {
    keep = Math.floor(keep / 2);
    text = renderReport(result, `${result.console.slice(0, keep)}…[console output truncated to fit the report]`);
  }
  return text.length > maxChars ? renderReport(result, '…[console output dropped to fit the report]', 200) : text;
}

function renderReport(result: SandboxResult, consoleText: string, maxFieldChars = Infinity): string {
  const cut = (text: string) => (text.length > maxFieldChars ? `${text.slice(0, maxFieldChars)}…` : text);
  const report: Record<string, unknown> = { status: result.status };
  if (result.error) {
    const { name, message, stack, phase } = result.error;
    report.error = cut(name === 'thrown value' ? `thrown value: ${message}` : message ? `${name}: ${message}` : name);
    report.failedIn = phase;
    if (stack) report.stack = cut(stack);
  }
  if (result.status === 'ok') report.value = result.value === undefined ? undefined : cut(result.value);
  report.console = consoleText;
  report.durationMs = result.durationMs;
  return JSON.stringify(report, null, 1);
}

function readArgs(args: unknown): { code: string; tests?: string } {
  if (typeof args !== 'object' || args === null || Array.isArray(args)) throw new RunCodeError('arguments must be an object with "code"');
  const { code, tests } = args as { code?: unknown; tests?: unknown };
  if (code === undefined) throw new RunCodeError('missing required argument "code"');
  if (typeof code !== 'string') throw new RunCodeError(`argument "code" must be a string, got ${code === null ? 'null' : typeof code}`);
  if (code.length > MAX_CODE_CHARS) throw new RunCodeError(`argument "code" is longer than ${MAX_CODE_CHARS} characters (${code.length})`);
  if (tests !== undefined && tests !== null) {
    if (typeof tests !== 'string') throw new RunCodeError(`argument "tests" must be a string, got ${typeof tests}`);
    if (tests.length > MAX_TESTS_CHARS) throw new RunCodeError(`argument "tests" is longer than ${MAX_TESTS_CHARS} characters (${tests.length})`);
    return { code, tests };
  }
  return { code };
}

export const runCodeTool: Tool = {
  name: 'run_code',
  description:
    "Runs JavaScript (ES2023, no I/O) in an isolated sandbox to check a candidate's code against tests; returns console output, " +
    'the last value, or the error. Put the candidate code in "code" and checks in "tests" (run afterwards in the same scope). ' +
    'Available: console.log/error, assert(cond, msg), assert.equal(actual, expected), assert.deepEqual(actual, expected), ' +
    'assert.throws(fn). No require/import, files, network or timers; a returned promise is awaited. Time and memory are limited.',
  parameters: {
    type: 'object',
    properties: {
      code: { type: 'string', description: 'JavaScript to run (a script, not a module).', maxLength: MAX_CODE_CHARS },
      tests: {
        type: 'string',
        description: 'Optional JavaScript run after the code in the same global scope, e.g. assert.equal(add(2, 3), 5);',
        maxLength: MAX_TESTS_CHARS,
      },
    },
    required: ['code'],
    additionalProperties: false,
  },
  limits: TOOL_LIMITS,
  async execute(args, ctx) {
    const { code, tests } = readArgs(args);
    const settings = ctx.settings?.runCode;
    // The run blocks the thread, so the registry's outer timer cannot cut it short: stay inside it.
    const timeoutMs = Math.min(settings?.timeoutMs ?? DEFAULT_TIMEOUT_MS, TOOL_LIMITS.timeoutMs - 1_000);
    const result = await runInSandbox(code, {
      tests,
      timeoutMs,
      memoryMb: settings?.memoryMb ?? DEFAULT_MEMORY_MB,
      maxOutputChars: TOOL_CONSOLE_CHARS,
      signal: ctx.signal,
    });
    return formatReport(result);
  },
};
