// @anyprefer/core as a Lambda layer. The five handlers are a few lines each; everything they run
// (stages, adapters, the OpenAI client, zod, Powertools) lives in the core, which is bundled once
// into the layer at nodejs/node_modules/@anyprefer/core, where the Node.js runtime resolves the
// bare import `@anyprefer/core` (ES modules included, since nodejs18.x). The handler bundles mark
// it external, so they stay a few hundred bytes and every function shares one copy.
//
// Bundling is local, through esbuild's JS API (no Docker, no network): fast enough to run on every synth.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Architecture, Code, LayerVersion, Runtime } from 'aws-cdk-lib/aws-lambda';
import { AssetHashType, DockerImage, RemovalPolicy, type ILocalBundling } from 'aws-cdk-lib';
import { Construct } from 'constructs';
import { buildSync } from 'esbuild';

export const REPO_ROOT = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
export const CORE_DIR = join(REPO_ROOT, 'layers', 'core');
export const CORE_PACKAGE = '@anyprefer/core';
/** Where the Node.js runtime looks for a layer's packages (under /opt). */
export const CORE_LAYER_DIR = join('nodejs', 'node_modules', ...CORE_PACKAGE.split('/'));
export const CORE_LAYER_ENTRY = 'index.mjs';

/** The runtime both the layer and the functions target. Change both together. */
export const LAMBDA_RUNTIME = Runtime.NODEJS_22_X;
export const ESBUILD_TARGET = 'node22';

/** Packages the Lambda Node.js runtime provides (AWS SDK for JavaScript v3): never bundled. */
export const RUNTIME_PROVIDED_MODULES = ['@aws-sdk/*'];

/**
 * Bundled CommonJS dependencies call `require` for Node built-ins; in an ES module there is no
 * `require`, so the bundle defines one (the usual esbuild ESM banner).
 */
const REQUIRE_BANNER =
  "import { createRequire as __anyprefer_createRequire } from 'node:module';\n" +
  'const require = __anyprefer_createRequire(import.meta.url);';

/**
 * Writes the layer's content to `outputDir`:
 * nodejs/node_modules/@anyprefer/core/{package.json,index.mjs}, the core and its dependencies
 * in one ES module, with only the AWS SDK left to the runtime.
 */
export function bundleCoreLayer(outputDir: string): void {
  const pkg = JSON.parse(readFileSync(join(CORE_DIR, 'package.json'), 'utf8')) as { name: string; version: string };
  if (pkg.name !== CORE_PACKAGE) throw new Error(`${CORE_DIR}/package.json names ${pkg.name}, expected ${CORE_PACKAGE}`);
  const dir = join(outputDir, CORE_LAYER_DIR);
  mkdirSync(dir, { recursive: true });
  const result = buildSync({
    entryPoints: [join(CORE_DIR, 'src', 'index.ts')],
    outfile: join(dir, CORE_LAYER_ENTRY),
    absWorkingDir: REPO_ROOT,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: ESBUILD_TARGET,
    mainFields: ['module', 'main'],
    external: RUNTIME_PROVIDED_MODULES,
    banner: { js: REQUIRE_BANNER },
    // Whitespace and syntax only: stack traces in the logs keep their function names.
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: 'none',
    logLevel: 'silent',
  });
  if (result.errors.length > 0) throw new Error(`bundling ${CORE_PACKAGE} failed: ${result.errors.map((e) => e.text).join('; ')}`);
  const manifest = {
    name: CORE_PACKAGE,
    version: pkg.version,
    private: true,
    type: 'module',
    main: `./${CORE_LAYER_ENTRY}`,
    exports: { '.': `./${CORE_LAYER_ENTRY}` },
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
}

const localBundling: ILocalBundling = {
  tryBundle(outputDir) {
    // Throws rather than returning false: false would fall back to Docker, which this project never uses.
    bundleCoreLayer(outputDir);
    return true;
  },
};

export class CoreLayer extends Construct {
  readonly layer: LayerVersion;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.layer = new LayerVersion(this, 'Layer', {
      description: `${CORE_PACKAGE}: the pipeline's stages and adapters, shared by every stage function`,
      code: Code.fromAsset(CORE_DIR, {
        // The hash of the bundle itself: a new layer version exactly when the bundled code changes.
        assetHashType: AssetHashType.OUTPUT,
        bundling: {
          local: localBundling,
          // Required by the type; never pulled, since local bundling always succeeds or throws.
          image: DockerImage.fromRegistry('public.ecr.aws/sam/build-nodejs22.x'),
        },
      }),
      compatibleRuntimes: [LAMBDA_RUNTIME],
      compatibleArchitectures: [Architecture.ARM_64, Architecture.X86_64],
      // Old versions go when a new one replaces them: the functions always point at the newest.
      removalPolicy: RemovalPolicy.DESTROY,
    });
  }
}
