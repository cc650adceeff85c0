// The anyprefer command line. `run` uses the embedded runtime; the other commands talk to a
// deployed stack (or any AWS-compatible endpoint with --endpoint-url).
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { DatasetSummary } from '@anyprefer/core';
import { runLocal, type LocalProgress } from '../local/runtime';
import { evalCommand } from './commands/eval';
import { REMOTE_USAGE, remoteCommands } from './commands/index';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

const USAGE = `usage:
  anyprefer run FILE [--config FILE] [--out DIR]     run a prompt file on the embedded default
  anyprefer eval FILE [--config FILE] [--json] [--concurrency N]
                                                     measure a judge's agreement with labeled pairs
  anyprefer help
${REMOTE_USAGE}

FILE is JSON Lines: one prompt per line ({"prompt"}, Alpaca, {"question","answer"}, OpenAI
"messages", ShareGPT "conversations" or MT-Bench "turns"; see docs/configuration.md).`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'eval':
      return evalCommand(rest);
    case 'submit':
    case 'status':
    case 'pull':
    case 'redrive':
      return remoteCommands[command](rest);
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      console.log(USAGE);
      return command === undefined ? 2 : 0;
    default:
      console.error(`anyprefer: unknown command "${command}"\n\n${USAGE}`);
      return 2;
  }
}

async function run(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { config: { type: 'string' }, out: { type: 'string' }, quiet: { type: 'boolean', default: false } },
  });
  const file = positionals[0];
  if (!file || positionals.length > 1) {
    console.error(`anyprefer run: expected exactly one prompt file\n\n${USAGE}`);
    return 2;
  }
  const config = values.config ? JSON.parse(await readFile(values.config, 'utf8')) : undefined;
  const result = await runLocal(file, { config, outDir: values.out, onProgress: values.quiet ? undefined : progressPrinter() });
  const m = result.manifest;
  if (m.status !== 'complete') {
    console.error(`\nrun ${result.runId} failed: ${m.error}`);
    return 1;
  }
  printSummary(m, result.outDir);
  return m.counts.accepted > 0 || m.counts.lines === m.counts.invalid ? 0 : 1;
}

function progressPrinter(): (p: LocalProgress) => void {
  let last = 0;
  return (p) => {
    if (p.elapsedMs - last < 1000 && p.status !== 'complete') return;
    last = p.elapsedMs;
    const t = p.terminal;
    const items = p.items ?? '?';
    process.stderr.write(
      `[${(p.elapsedMs / 1000).toFixed(0).padStart(3)}s] ${p.runId} ${p.status.padEnd(10)} items ${t.total}/${items} done` +
        ` | accepted ${t.accepted} rejected ${t.rejected} dead-lettered ${t.deadLettered} | invalid ${p.invalid ?? '?'}\n`,
    );
  };
}

function printSummary(m: DatasetSummary, outDir: string): void {
  const c = m.counts;
  const iterations = Object.entries(m.acceptedByIteration).map(([k, v]) => `${v} at iteration ${k}`).join(', ') || 'none';
  const tokens = m.usage.total.promptTokens + m.usage.total.completionTokens;
  console.log(
    [
      '',
      m.simulation ? 'SIMULATION: models were the offline model lab, not real models.' : '',
      `run ${m.runId} complete`,
      `  lines ${c.lines}: accepted ${c.accepted}, rejected ${c.rejected}, invalid ${c.invalid}, dead-lettered ${c.deadLettered}`,
      `  accepted pairs: ${iterations}`,
      `  model calls ${m.usage.total.calls} (${m.usage.perAcceptedPair.calls ?? 'n/a'} per accepted pair), tokens ${tokens} (${m.usage.perAcceptedPair.tokens ?? 'n/a'} per accepted pair)`,
      `  outputs in ${outDir}/`,
    ]
      .filter(Boolean)
      .join('\n'),
  );
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(`anyprefer: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
