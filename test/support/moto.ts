// A moto server (Python moto 5.x, `moto_server`) on loopback for end-to-end tests against an
// AWS-compatible endpoint that is not ours. The binary must be on PATH: a missing moto_server
// fails the test with a clear message rather than skipping it (CI machines have it).
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { createServer } from 'node:net';
import { delimiter, join } from 'node:path';

const HOST = '127.0.0.1';
export const MOTO_BINARY = 'moto_server';

/** Credentials and region the SDK clients use against moto (it accepts any). */
export const MOTO_ENV = {
  AWS_ACCESS_KEY_ID: 'testing',
  AWS_SECRET_ACCESS_KEY: 'testing',
  AWS_REGION: 'us-east-1',
} as const;

export interface Moto {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** The server's output so far (its request log and errors), last 64 KiB. */
  output(): string;
  /** Deletes every resource (POST /moto-api/reset). */
  reset(): Promise<void>;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s). */
  stop(): Promise<void>;
}

export interface MotoOptions {
  /** How long to wait for GET /moto-api/ to answer. Default 30 s. */
  startTimeoutMs?: number;
}

const OUTPUT_LIMIT = 64 * 1024;

/** Sets environment variables; returns a function that restores the previous values. */
export function setEnv(vars: Record<string, string>): () => void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]));
  Object.assign(process.env, vars);
  return () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
}

export function findOnPath(binary: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    const candidate = join(dir, binary);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  return undefined;
}

export async function startMoto(opts: MotoOptions = {}): Promise<Moto> {
  const binary = findOnPath(MOTO_BINARY);
  if (!binary) {
    throw new Error(
      `${MOTO_BINARY} is not on PATH. The moto end-to-end tests need it: pip install 'moto[server]>=5.2,<6' ` +
        '(CI machines have it installed; the tests fail rather than skip without it).',
    );
  }
  // A port taken between probing and moto's bind makes moto exit at once: try a few ports.
  let lastError: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const port = await freePort();
    try {
      return await launch(binary, port, opts.startTimeoutMs ?? 30_000);
    } catch (err) {
      lastError = err;
      if (!(err instanceof MotoExitedError)) throw err;
    }
  }
  throw lastError;
}

class MotoExitedError extends Error {}

async function launch(binary: string, port: number, startTimeoutMs: number): Promise<Moto> {
  // Its own process group, so stop() reaches the Python process behind a wrapper script (pyenv shims).
  const child = spawn(binary, ['-H', HOST, '-p', String(port)], {
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
    env: { ...process.env, PYTHONUNBUFFERED: '1' },
  });
  let output = '';
  const collect = (chunk: Buffer) => {
    output = (output + chunk.toString('utf8')).slice(-OUTPUT_LIMIT);
  };
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exit = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  let spawnError: Error | undefined;
  child.once('error', (err) => {
    spawnError = err;
  });

  const url = `http://${HOST}:${port}`;
  const stop = async (): Promise<void> => {
    if (exited) return;
    kill(child, 'SIGTERM');
    const timer = setTimeout(() => kill(child, 'SIGKILL'), 5_000);
    await exit;
    clearTimeout(timer);
  };

  const deadline = Date.now() + startTimeoutMs;
  for (let tries = 0; ; tries++) {
    if (spawnError) throw new Error(`cannot start ${binary}: ${spawnError.message}`);
    if (exited) {
      throw new MotoExitedError(
        `${MOTO_BINARY} exited (code ${exited.code}, signal ${exited.signal}) before it answered on ${url}; its output:\n${output}`,
      );
    }
    try {
      const res = await fetch(`${url}/moto-api/`, { signal: AbortSignal.timeout(1_000) });
      await res.arrayBuffer();
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`${MOTO_BINARY} did not answer GET ${url}/moto-api/ within ${startTimeoutMs} ms (${tries + 1} tries); its output:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }

  return {
    url,
    port,
    output: () => output,
    reset: async () => {
      const res = await fetch(`${url}/moto-api/reset`, { method: 'POST' });
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`moto reset failed: HTTP ${res.status}`);
    },
    stop,
  };
}

function kill(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    // The group we created (detached); falls back to the process itself.
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    try {
      child.kill(signal);
    } catch {
      // already gone
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => (port ? resolve(port) : reject(new Error('no free port'))));
    });
  });
}
