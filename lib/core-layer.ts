// @anyprefer/core as a Lambda layer. The five handlers are a few lines each; everything they run
// (stages, adapters, the OpenAI client, zod, Powertools) lives in the core, which is bundled once
// into the layer at nodejs/node_modules/@anyprefer/core, where the Node.js runtime resolves the
// bare import `@anyprefer/core` (ES modules included, since nodejs18.x). The handler bundles mark
// it external, so they stay a few hundred bytes and every function shares one copy.
//
// Bundling is local, through esbuild's JS API (no Docker, no network): fast enough to run on every synth.
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
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

export interface LayerPackage {
  /** TypeScript or JavaScript entry point. */
  entry: string;
  /** Package name: the layer holds it at nodejs/node_modules/<name>. */
  name: string;
  version: string;
}

/**
 * Bundles one package into a layer directory: nodejs/node_modules/<name>/{package.json,index.mjs},
 * the package and its dependencies in one ES module, with only the AWS SDK left to the runtime.
 * WebAssembly files that bundled modules load from their own directory (emscripten builds such as
 * QuickJS read `new URL('x.wasm', import.meta.url)`) are copied next to index.mjs, where the
 * bundled code now looks for them. Returns the package directory and the files copied.
 */
export function bundleLayerPackage(outputDir: string, pkg: LayerPackage): { dir: string; copied: string[] } {
  const dir = join(outputDir, 'nodejs', 'node_modules', ...pkg.name.split('/'));
  mkdirSync(dir, { recursive: true });
  const result = buildSync({
    entryPoints: [pkg.entry],
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
    metafile: true,
    logLevel: 'silent',
  });
  if (result.errors.length > 0) throw new Error(`bundling ${pkg.name} failed: ${result.errors.map((e) => e.text).join('; ')}`);

  const copied = new Map<string, string>();
  for (const input of Object.keys(result.metafile.inputs)) {
    const source = resolve(REPO_ROOT, input);
    if (!/\.(m?js|cjs)$/.test(source)) continue;
    for (const [, file] of readFileSync(source, 'utf8').matchAll(/["'`]([\w.-]+\.wasm)["'`]/g)) {
      const wasm = join(dirname(source), file!);
      if (!existsSync(wasm)) continue;
      const previous = copied.get(file!);
      if (previous && previous !== wasm) {
        throw new Error(
          `bundling ${pkg.name}: two bundled modules load a file named ${file} from their own directory ` +
            `(${previous}, ${wasm}); in one bundle they would read the same path. Import only one of them ` +
            '(for QuickJS: quickjs-emscripten-core with a single @jitl/quickjs-wasmfile-* variant, not quickjs-emscripten).',
        );
      }
      copied.set(file!, wasm);
      copyFileSync(wasm, join(dir, file!));
    }
  }

  const manifest = {
    name: pkg.name,
    version: pkg.version,
    private: true,
    type: 'module',
    main: `./${CORE_LAYER_ENTRY}`,
    exports: { '.': `./${CORE_LAYER_ENTRY}` },
  };
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  return { dir, copied: [...copied.keys()] };
}

/** The core layer's content: layers/core/src/index.ts as @anyprefer/core. */
export function bundleCoreLayer(outputDir: string): { dir: string; copied: string[] } {
  const pkg = JSON.parse(readFileSync(join(CORE_DIR, 'package.json'), 'utf8')) as { name: string; version: string };
  if (pkg.name !== CORE_PACKAGE) throw new Error(`${CORE_DIR}/package.json names ${pkg.name}, expected ${CORE_PACKAGE}`);
  return bundleLayerPackage(outputDir, { entry: join(CORE_DIR, 'src', 'index.ts'), name: CORE_PACKAGE, version: pkg.version });
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
