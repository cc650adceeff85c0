// `npm run bench`: measured side by side in one run, reported as ratios (these machines are
// shared and noisy; absolute numbers drift, ratios of neighbours much less).
//   1. reading a large prompt file: streaming readLines vs readFile + split (time, peak memory)
//   2. sampling candidates: one request with n vs n requests (calls, prompt tokens, time)
//   3. pipeline throughput on the embedded default: stage concurrency 1 vs 4 with 200 ms model latency
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRunConfig } from '@anyprefer/core';
import { readLines } from '../layers/core/src/input/lines';
import { OpenAIGateway } from '../layers/core/src/models/gateway';
import { startLab } from '../local/lab/server';
import { runLocal } from '../local/runtime';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const SAMPLE = new URL('../examples/gsm8k-sample.jsonl', import.meta.url).pathname;
const rows: { benchmark: string; a: string; b: string; metric: string; valueA: number; valueB: number }[] = [];
const ratio = (a: number, b: number) => (b === 0 ? Infinity : a / b);

/** Peak of RSS sampled every 5 ms while `fn` runs. */
async function peakRss<T>(fn: () => Promise<T>): Promise<{ result: T; peakMb: number; ms: number }> {
  global.gc?.();
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 5);
  const started = performance.now();
  try {
    const result = await fn();
    return { result, peakMb: (Math.max(peak, process.memoryUsage().rss) - before) / 1e6, ms: performance.now() - started };
  } finally {
    clearInterval(timer);
  }
}

async function readingBenchmark(dir: string) {
  const line = (await readFile(SAMPLE, 'utf8')).split('\n')[0]!;
  const file = join(dir, 'big.jsonl');
  const copies = 400_000; // ~150 MB
  await writeFile(file, `${line}\n`.repeat(copies));
  const streamed = await peakRss(async () => {
    let n = 0;
    for await (const l of readLines(createReadStream(file, { highWaterMark: 1 << 20 }))) if ('text' in l) n++;
    return n;
  });
  const whole = await peakRss(async () => (await readFile(file, 'utf8')).split('\n').filter(Boolean).length);
  if (streamed.result !== copies || whole.result !== copies) throw new Error('line counts differ');
  rows.push({ benchmark: 'read 150 MB prompt file', a: 'readLines (stream)', b: 'readFile+split', metric: 'seconds', valueA: streamed.ms / 1000, valueB: whole.ms / 1000 });
  rows.push({ benchmark: 'read 150 MB prompt file', a: 'readLines (stream)', b: 'readFile+split', metric: 'peak extra RSS MB', valueA: streamed.peakMb, valueB: whole.peakMb });
}

async function samplingBenchmark() {
  const lab = await startLab({ seed: 1, latencyMs: 20, log: () => {} });
  try {
    const questions = (await readFile(SAMPLE, 'utf8')).trim().split('\n').slice(0, 20).map((l) => JSON.parse(l).question as string);
    const measure = async (supportsN: boolean) => {
      const config = parseRunConfig({});
      const endpoint = { ...config.models.target, baseURL: lab.baseURL, supportsN };
      const gateway = new OpenAIGateway({ endpoints: { target: endpoint, judge: endpoint, reward: endpoint, optimizer: endpoint }, apiKey: async () => undefined });
      const started = performance.now();
      let calls = 0;
      let promptTokens = 0;
      for (const q of questions) {
        const r = await gateway.chat('target', { messages: [{ role: 'system', content: config.prompts.target }, { role: 'user', content: q }], n: 4 });
        calls += r.usage.calls;
        promptTokens += r.usage.promptTokens;
      }
      return { calls, promptTokens, seconds: (performance.now() - started) / 1000 };
    };
    const withN = await measure(true);
    const without = await measure(false);
    for (const metric of ['calls', 'promptTokens', 'seconds'] as const) {
      rows.push({ benchmark: 'sample 4 candidates x 20 prompts (lab, 20 ms latency)', a: 'one request, n=4', b: '4 requests', metric, valueA: withN[metric], valueB: without[metric] });
    }
  } finally {
    await lab.stop();
  }
}

async function throughputBenchmark(dir: string) {
  const file = join(dir, 'throughput.jsonl');
  await writeFile(file, (await readFile(SAMPLE, 'utf8')).trim().split('\n').slice(0, 20).join('\n') + '\n');
  const run = async (concurrency: number) => {
    const started = performance.now();
    await runLocal(file, {
      config: { seed: 3, policy: { promote: false, explore: 0 }, concurrency: { generate: concurrency, judge: concurrency, feedback: concurrency } },
      lab: { latencyMs: 200 },
      outDir: join(dir, `c${concurrency}`),
      runId: `throughput-${concurrency}`,
    });
    return (performance.now() - started) / 1000;
  };
  const one = await run(1);
  const four = await run(4);
  rows.push({ benchmark: '20 GSM8K items end to end (lab, 200 ms latency)', a: 'concurrency 4', b: 'concurrency 1', metric: 'seconds', valueA: four, valueB: one });
}

const dir = await mkdtemp(join(tmpdir(), 'anyprefer-bench-'));
try {
  console.error('reading...');
  await readingBenchmark(dir);
  console.error('sampling...');
  await samplingBenchmark();
  console.error('throughput...');
  await throughputBenchmark(dir);
} finally {
  await rm(dir, { recursive: true, force: true });
}
console.log('\n| benchmark | A | B | metric | A | B | A/B |\n|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.benchmark} | ${r.a} | ${r.b} | ${r.metric} | ${r.valueA.toFixed(2)} | ${r.valueB.toFixed(2)} | ${ratio(r.valueA, r.valueB).toFixed(2)} |`);
}
