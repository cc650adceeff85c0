// Layer bundling on its own (no synth): what the Lambda runtime will find under /opt/nodejs.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bundleLayerPackage, REPO_ROOT } from '../../lib/core-layer';

const scratch = join(REPO_ROOT, '.tmp');
mkdirSync(scratch, { recursive: true });
const work = mkdtempSync(join(scratch, 'layer-test-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** Runs an ES module `body` from the layer's nodejs/ directory, so bare imports resolve in its node_modules. */
const runInLayerLayout = (layerDir: string, body: string): string =>
  execFileSync(process.execPath, ['--input-type=module', '-e', body], { cwd: join(layerDir, 'nodejs'), encoding: 'utf8' }).trim();

describe('bundleLayerPackage', () => {
  it('ships the WebAssembly a bundled dependency loads from its own directory', () => {
    const out = join(work, 'quickjs');
    const { dir, copied } = bundleLayerPackage(out, {
      entry: join(REPO_ROOT, 'test', 'infra', 'fixtures', 'quickjs-probe.ts'),
      name: '@anyprefer/quickjs-probe',
      version: '0.0.0',
    });
    expect(copied).toContain('emscripten-module.wasm');
    expect(readdirSync(dir).sort()).toEqual(expect.arrayContaining(['emscripten-module.wasm', 'index.mjs', 'package.json']));
    expect(existsSync(join(dir, 'node_modules'))).toBe(false); // everything is in index.mjs
    const result = runInLayerLayout(out, "const { evalJs } = await import('@anyprefer/quickjs-probe'); console.log(await evalJs('6 * 7'));");
    expect(result).toBe('42');
  });

  it('refuses a bundle in which two modules would read the same .wasm path', () => {
    expect(() =>
      bundleLayerPackage(join(work, 'all-variants'), {
        entry: join(REPO_ROOT, 'test', 'infra', 'fixtures', 'quickjs-all-variants.ts'),
        name: '@anyprefer/quickjs-all-variants',
        version: '0.0.0',
      }),
    ).toThrow(/emscripten-module\.wasm.*Import only one of them/);
  });
});
