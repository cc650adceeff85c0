// `anyprefer submit FILE`: starts a run on a deployed stack by uploading the prompt file under
// prompts/ in the input bucket (its S3 event starts ingest). The run config, when given, is
// checked here and uploaded first, as prompts/NAME.config.json; the file carries the run id in
// its object metadata, so the id is known before ingest runs.
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, extname } from 'node:path';
import { HeadObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ConfigError, configKeyFor, INPUT_PREFIX, isPromptFile, newRunId, parseRunConfig, RUN_ID_METADATA } from '@anyprefer/core';
import {
  CommandError,
  CONNECTION_USAGE,
  connect,
  connectionFlags,
  defaultIo,
  parseCommandArgs,
  runCommand,
  UsageError,
  type CommandIo,
} from './options';

export const SUBMIT_USAGE = `usage: anyprefer submit FILE (--stack NAME | --resources FILE) [--config FILE] [--name NAME] [--json]

Uploads FILE (JSON Lines) to prompts/NAME in the input bucket, which starts a run, and prints
the run id.
  --config FILE         run config (JSON, see docs/configuration.md); checked before anything is
                        uploaded, then uploaded first as prompts/NAME.config.json
  --name NAME           object name under prompts/ (default: FILE's name); the extension of FILE
                        is added when NAME has none
  --json                print {"runId", "bucket", "key", ...} as JSON
${CONNECTION_USAGE}`;

const PROMPT_EXTENSION = /\.(jsonl|ndjson|json)$/i;
/** What ingest accepts as a requested run id (stages/ingest.ts runIdFor). */
/** Multipart part size for large prompt files; memory stays about queueSize × partSize. */
const PART_BYTES = 8 * 1024 * 1024;

/** `prompts/<name>` for a file and an optional `--name`; a usage error when ingest would ignore it. */
export function promptObjectKey(file: string, name?: string): string {
  let n = (name ?? basename(file)).replace(/^\/+/, '');
  if (n.startsWith(INPUT_PREFIX)) n = n.slice(INPUT_PREFIX.length);
  if (name !== undefined && !PROMPT_EXTENSION.test(n)) n += PROMPT_EXTENSION.test(extname(file)) ? extname(file) : '.jsonl';
  if (!n || n.split('/').some((part) => part === '' || part === '.' || part === '..')) {
    throw new UsageError(`invalid object name "${name ?? n}"`);
  }
  const key = `${INPUT_PREFIX}${n}`;
  if (!isPromptFile(key)) {
    throw new UsageError(
      n.toLowerCase().endsWith('.config.json')
        ? `"${n}" is a config file name; give the prompt file (the config goes with --config)`
        : `"${n}" does not end in .jsonl, .ndjson or .json, so the pipeline would ignore it; rename the file or pass --name NAME.jsonl`,
    );
  }
  if (Buffer.byteLength(key) > 1024) throw new UsageError('object name too long (S3 keys are at most 1024 bytes)');
  return key;
}

export function submitCommand(args: string[], io: CommandIo = defaultIo): Promise<number> {
  return runCommand('submit', SUBMIT_USAGE, io, args, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      config: { type: 'string' },
      name: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length !== 1) throw new UsageError('expected exactly one prompt file');
    const file = positionals[0]!;
    const key = promptObjectKey(file, values.name);

    const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
      throw new CommandError(`cannot read ${file}: ${err.code === 'ENOENT' ? 'no such file' : err.message}`);
    });
    if (!info.isFile()) throw new CommandError(`${file} is not a file`);

    // The config is checked before anything is uploaded: a typo fails here, not in the pipeline.
    let configText: string | undefined;
    if (values.config !== undefined) {
      configText = await readFile(values.config, 'utf8').catch((err: Error) => {
        throw new CommandError(`cannot read --config ${values.config}: ${err.message}`);
      });
      try {
        parseRunConfig(JSON.parse(configText));
      } catch (err) {
        if (err instanceof SyntaxError) throw new CommandError(`--config ${values.config} is not JSON: ${err.message}`);
        if (err instanceof ConfigError) throw new CommandError(`--config ${values.config}: ${err.message}`);
        throw err;
      }
    }

    const stack = await connect(values);
    try {
      const { s3 } = stack.clients;
      const bucket = stack.outputs.inputBucket;
      const configKey = configKeyFor(key);
      if (configText !== undefined) {
        await s3.send(new PutObjectCommand({ Bucket: bucket, Key: configKey, Body: configText, ContentType: 'application/json' }));
      } else if (await exists(stack.clients.s3, bucket, configKey)) {
        io.err(
          `note: s3://${bucket}/${configKey} exists (an earlier upload) and will be this run's config; ` +
            'pass --config to replace it',
        );
      }

      const runId = newRunId(key);
      const upload = new Upload({
        client: s3,
        params: {
          Bucket: bucket,
          Key: key,
          Body: createReadStream(file),
          ContentType: 'application/x-ndjson',
          Metadata: { [RUN_ID_METADATA]: runId },
        },
        partSize: PART_BYTES,
        queueSize: 4,
        leavePartsOnError: false,
      });
      await upload.done();

      if (values.json) {
        io.out(JSON.stringify({ runId, bucket, key, bytes: info.size, ...(configText !== undefined ? { configKey } : {}) }));
        return 0;
      }
      const flags = connectionFlags(values);
      io.out(
        [
          `uploaded ${file} (${info.size} bytes) to s3://${bucket}/${key}${configText !== undefined ? `, config to ${configKey}` : ''}`,
          `run ${runId}`,
          '',
          'follow it with:',
          `  anyprefer status ${runId} ${flags} --watch`,
          `  anyprefer pull ${runId} ${flags}`,
        ].join('\n'),
      );
      return 0;
    } finally {
      stack.close();
    }
  });
}

async function exists(s3: S3Client, bucket: string, key: string): Promise<boolean> {
  try {
    await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key }));
    return true;
  } catch (err) {
    const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
    if (e?.name === 'NotFound' || e?.name === 'NoSuchKey' || e?.$metadata?.httpStatusCode === 404) return false;
    // A 403 (no s3:GetObject on the config key) must not stop the submission.
    if (e?.$metadata?.httpStatusCode === 403) return false;
    throw err;
  }
}
