// `anyprefer eval FILE`: measures how often the configured judge (its model, prompt, tools and
// bias controls) prefers the labeled chosen answer of a file of labeled preference pairs. On the
// embedded default the judge is the offline model lab (a simulation), started here; with a real
// judge model configured it runs against that endpoint.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { modeSettings, parseRunConfig, ROLES, toolsFor, type ModelEndpoint, type RunConfig, type Role } from '@anyprefer/core';
import { DEFAULT_EVAL_CONCURRENCY, evaluateJudge, readLabeledLines, type EvaluationReport } from '../../layers/core/src/evaluate';
import { OpenAIGateway } from '../../layers/core/src/models/gateway';
import type { BlobStore } from '../../layers/core/src/ports';
import { createToolRegistry, defaultToolServices } from '../../layers/core/src/tools/catalog';
import { runCodeTool } from '../../layers/core/src/tools/run-code';
import { startLab, type Lab } from '../../local/lab/server';
import { CommandError, defaultIo, numberFlag, runCommand, UsageError, type CommandIo } from './options';

export const EVAL_USAGE = `usage: anyprefer eval FILE [--config FILE] [--json] [--concurrency N]

Judges every labeled pair in FILE with the configured judge, in both orders, and reports how
often it prefers the labeled chosen answer (with a 95% Wilson interval), position consistency
under swapping, ties, errors and tokens.
FILE is JSON Lines, one labeled pair a line: {"prompt", "chosen", "rejected"} (strings or TRL
message lists; TRL implicit-prompt conversations too) or OpenAI DPO {"input": {"messages"},
"preferred_output", "non_preferred_output"}; optional "reference" (what the judge's reference
tool returns), "id", "domain".
  --config FILE         run config (JSON, see docs/configuration.md): the judge model, prompt,
                        tools and judging.shuffle; swap judging is always on here. Without it,
                        the embedded default (the offline model lab, a simulation)
  --json                print one JSON line {n, agreement, ciLow, ciHigh, positionConsistency,
                        tokens} on stdout; everything else goes to stderr
  --concurrency N       examples judged at once (default ${DEFAULT_EVAL_CONCURRENCY})`;

const isLab = (endpoint: ModelEndpoint) => endpoint.model.startsWith('lab-') && !endpoint.baseURL;

export function evalCommand(args: string[], io: CommandIo = defaultIo): Promise<number> {
  return runCommand('eval', EVAL_USAGE, io, args, async () => {
    let parsed;
    try {
      parsed = parseArgs({
        args,
        allowPositionals: true,
        strict: true,
        options: { config: { type: 'string' }, json: { type: 'boolean', default: false }, concurrency: { type: 'string' } },
      });
    } catch (err) {
      throw new UsageError(err instanceof Error ? err.message : String(err));
    }
    const { values, positionals } = parsed;
    if (positionals.length !== 1) throw new UsageError('expected exactly one file of labeled pairs');
    const file = positionals[0]!;
    const concurrency = numberFlag(values.concurrency, '--concurrency', DEFAULT_EVAL_CONCURRENCY, { integer: true, min: 1 });
    const config = await readConfig(values.config);
    try {
      if (!(await stat(file)).isFile()) throw new CommandError(`${file} is not a file`);
    } catch (err) {
      if (err instanceof CommandError) throw err;
      throw new CommandError(`cannot read ${file}: ${err instanceof Error ? err.message : String(err)}`);
    }

    const judgeRole = modeSettings(config).judgeRole;
    const judgeModel = config.models[judgeRole];
    // Only the judging role is called: the lab starts when that role is the lab.
    const lab: Lab | undefined = isLab(judgeModel) ? await startLab({ seed: config.seed, log: (line) => io.err(line) }) : undefined;
    try {
      const endpoints = Object.fromEntries(
        ROLES.map((r) => [r, lab && isLab(config.models[r]) ? { ...config.models[r], baseURL: lab.baseURL } : config.models[r]]),
      ) as Record<Role, ModelEndpoint>;
      const gateway = new OpenAIGateway({ endpoints, apiKey: async (name) => process.env[name] });
      const tools = evalTools(config);
      const offered = tools.specs(toolsFor(config, undefined)).map((t) => t.name);
      io.err(
        `anyprefer eval: judging ${file} with ${judgeModel.model}${judgeModel.baseURL ? ` at ${judgeModel.baseURL}` : ''}` +
          ` (tools: ${offered.join(', ') || 'none'}; shuffle ${config.judging.shuffle ? 'on' : 'off'}, swap on; concurrency ${concurrency})`,
      );

      const started = Date.now();
      let done = 0;
      let failed = 0;
      let lastProgress = started;
      const report = await evaluateJudge({
        gateway,
        tools,
        config,
        examples: readLabeledLines(createReadStream(file)),
        concurrency,
        onResult: (r) => {
          done++;
          if ('error' in r) {
            failed++;
            io.err(`  line ${r.line} (${r.id}): error: ${r.error}`);
          }
          if (!values.json && Date.now() - lastProgress >= 2000) {
            lastProgress = Date.now();
            io.err(`  [${Math.round((lastProgress - started) / 1000)}s] ${done} examples done, ${failed} errors`);
          }
        },
      });
      for (const bad of report.invalid.slice(0, 20)) io.err(`  line ${bad.line}: invalid: ${bad.reason}`);
      if (report.invalid.length > 20) io.err(`  ... and ${report.invalid.length - 20} more invalid lines`);

      if (values.json) {
        const { n, agreement, ciLow, ciHigh, positionConsistency, tokens } = report;
        io.out(JSON.stringify({ n, agreement, ciLow, ciHigh, positionConsistency, tokens }));
      } else {
        io.out(summary(file, report, lab !== undefined, Date.now() - started));
      }
      return report.n > 0 ? 0 : 1;
    } finally {
      await lab?.stop();
    }
  });
}

/** A store for tools that read the run's buckets: eval has none, so `retrieve` fails as evidence. */
const NO_BLOBS = new Proxy({} as BlobStore, {
  get: (_target, name) =>
    name === 'then'
      ? undefined
      : async () => {
          throw new Error('anyprefer eval has no object store: tools that read the run\'s buckets (retrieve) are not available');
        },
});

/** The judge's tools as in a run (built-ins, run_code, the config's http and Lambda tools); keys from the environment. */
function evalTools(config: RunConfig) {
  try {
    const services = defaultToolServices({ blobs: NO_BLOBS, buckets: { input: '', output: '' }, secret: async (name) => process.env[name] });
    return createToolRegistry(config.tools, [runCodeTool], services);
  } catch (err) {
    throw new CommandError(`config tools: ${err instanceof Error ? err.message : String(err)}`);
  }
}

async function readConfig(path: string | undefined): Promise<RunConfig> {
  if (path === undefined) return parseRunConfig({});
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new CommandError(`cannot read config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CommandError(`config ${path} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  try {
    return parseRunConfig(json);
  } catch (err) {
    throw new CommandError(`config ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

const fixed = (x: number) => x.toFixed(3);

function summary(file: string, r: EvaluationReport, simulation: boolean, elapsedMs: number): string {
  const consistent = r.perExample.filter((e) => e.positionConsistent).length;
  return [
    '',
    simulation ? 'SIMULATION: the judge was the offline model lab, not a real model.' : '',
    `eval ${file}: ${r.n} examples judged, ${r.invalid.length} invalid lines, ${r.errors.length} errors (${(elapsedMs / 1000).toFixed(1)}s)`,
    r.n > 0
      ? `  agreement             ${fixed(r.agreement!)} (${r.agreed}/${r.n}), 95% CI [${fixed(r.ciLow)}, ${fixed(r.ciHigh)}]`
      : '  agreement             n/a (no example was judged)',
    r.n > 0 ? `  position consistency  ${fixed(r.positionConsistency!)} (${consistent}/${r.n} keep their preference when the order is swapped)` : '',
    `  ties                  ${r.ties} (counted as disagreement)`,
    `  model calls           ${r.calls}, tokens ${r.tokens}${r.n > 0 ? ` (${Math.round(r.tokens / r.n)} per example)` : ''}`,
  ]
    .filter(Boolean)
    .join('\n');
}
