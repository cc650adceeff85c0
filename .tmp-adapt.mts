import variant from '@jitl/quickjs-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, newVariant } from 'quickjs-emscripten-core';
const memory = new WebAssembly.Memory({ initial: 256, maximum: 2048 });
const mod = await newQuickJSWASMModuleFromVariant(newVariant(variant, { wasmMemory: memory }));
const OFF = 232;
function run(code: string, adaptive: boolean, timeoutMs = 300, targetMs = 0.5) {
  const rt = mod.newRuntime(); const ctx = rt.newContext();
  const ctxPtr = (ctx as any).ctx.value as number;
  const idx = (ctxPtr + OFF) >> 2;
  let ticks = 100, last = performance.now(), calls = 0;
  const start = performance.now(), deadline = start + timeoutMs;
  if (adaptive) new Int32Array(memory.buffer)[idx] = ticks;
  rt.setInterruptHandler(() => {
    calls++;
    const now = performance.now();
    if (now > deadline) return true;
    if (adaptive) {
      const gap = now - last; last = now;
      ticks = gap > targetMs ? Math.max(1, Math.floor(ticks * targetMs / gap)) : Math.min(10000, ticks * 2);
      const h = new Int32Array(memory.buffer);
      if (h[idx] === 10000) h[idx] = ticks;
    }
    return false;
  });
  const r = ctx.evalCode(code);
  const took = performance.now() - start;
  const out = r.error ? ctx.dump(r.error) : ctx.dump(r.value);
  (r.error ?? r.value).dispose(); ctx.dispose(); rt.dispose();
  return `${took.toFixed(1)}ms calls=${calls} ${JSON.stringify(out).slice(0, 60)}`;
}
const bench = [
  'function fib(n){return n<2?n:fib(n-1)+fib(n-2)} fib(24)',
  'let s=0; for (let i=0;i<3e6;i++) s+=i; s',
  'const a=[]; for (let i=0;i<3e5;i++) a.push({i}); a.length',
  'Array.from({length:2e5},(_, i)=>(i*7919)%1000).sort((a,b)=>a-b).length',
];
for (const code of bench) for (const adaptive of [false, true, false, true]) console.log(adaptive ? 'ADAPT' : 'plain', run(code, adaptive, 10000), code.slice(0, 40));
const slow = [
  'const a = new Array(1e6).fill(0); for(;;) a.fill(1)',
  'const a = Array.from({length: 3e5}, (_, i) => (i * 7919) % 1000); for(;;) a.slice().sort()',
  'const a = Array.from({length: 1e6}, (_, i) => i); for(;;) a.indexOf(-1)',
  'const s = "x".repeat(1e7); for(;;) s.indexOf("y")',
  'const a = Array.from({length: 2e5}, (_, i) => ({i})); for(;;) JSON.stringify(a)',
  'const a = new Array(1e6).fill(1); for(;;) a.join()',
  'for(;;) /(a+)+b/.test("a".repeat(30))',
  'const s = "x".repeat(1e6); for(;;) s.split("")',
  'while(true){}',
];
for (const code of slow) console.log('ADAPT', run(code, true), code.slice(0, 60));
