import { runInSandbox } from './layers/core/src/tools/run-code';
const o = { timeoutMs: 300, memoryMb: 32, maxOutputChars: 3000 };
const cases = [
  'const a = new Array(1e6).fill(0); for(;;) a.fill(1)',
  'const a = Array.from({length: 3e5}, (_, i) => (i * 7919) % 1000); for(;;) a.slice().sort()',
  'const a = Array.from({length: 1e6}, (_, i) => i); for(;;) a.indexOf(-1)',
  'const s = "x".repeat(1e7); for(;;) s.indexOf("y")',
  'const a = Array.from({length: 2e5}, (_, i) => ({i})); for(;;) JSON.stringify(a)',
  'const a = new Array(1e6).fill(1); for(;;) a.join()',
  'for(;;) /(a+)+b/.test("a".repeat(30))',
  'const s = "x".repeat(1e7); for(;;) s.split("")',
];
for (const code of cases) {
  const t = performance.now();
  const r = await runInSandbox(code, o);
  console.log((performance.now() - t).toFixed(0).padStart(6), 'ms', r.status, code);
}
