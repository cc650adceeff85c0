import variant from '@jitl/quickjs-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant, shouldInterruptAfterDeadline } from 'quickjs-emscripten-core';
const mod = await newQuickJSWASMModuleFromVariant(variant);
let log: string[] = [];
function run(code: string, mb = 32) {
  const rt = mod.newRuntime();
  rt.setMemoryLimit(mb * 1024 * 1024);
  rt.setMaxStackSize(192 * 1024);
  const start = Date.now();
  rt.setInterruptHandler(shouldInterruptAfterDeadline(start + 2000));
  const ctx = rt.newContext();
  const logFn = ctx.newFunction('log', (h) => { log.push(`${Date.now() - start} ${ctx.getString(h)}`); });
  ctx.setProp(ctx.global, 'log', logFn); logFn.dispose();
  const r = ctx.evalCode(code, 'code.js', { type: 'global' });
  rt.setMemoryLimit(-1);
  const out = r.error ? ctx.dump(r.error) : ctx.dump(r.value);
  (r.error ?? r.value).dispose();
  console.log(JSON.stringify(code.slice(0, 70)), Date.now() - start, 'ms', JSON.stringify(out).slice(0, 200), 'wasm MB', mod.getWasmMemory().buffer.byteLength / 2**20);
  console.log(log.slice(-8).join(' | ')); log = [];
  ctx.dispose(); rt.dispose();
}
run('let a=[]; while(true) { a.push(new Array(1e6).fill(1)); log(String(a.length)) }');
run('let a=[]; while(true) { a.push(new Array(1e5).fill(1)); log(String(a.length)) }');
run('let a=[]; while(true) { a.push(new Array(1e6).fill(1)); log(String(a.length)) }', 64);
run('let s="x"; while(true) { s+=s; log(String(s.length)) }');
run('let a=[]; while(true) { a.push("x".repeat(1e6) + a.length); log(String(a.length)) }');
run('let o=[]; for(let i=0;;i++) { o.push({i}); if (i % 100000 == 0) log(String(i)) }');
