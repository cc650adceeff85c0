// The run's tool registry: the built-ins plus the user's declared http and Lambda tools, and the
// default implementations of the services tools use.
import { promises as dns } from 'node:dns';
import { LambdaClient } from '@aws-sdk/client-lambda';
import type { RunConfig } from '../config';
import type { BlobStore } from '../ports';
import { calculatorTool } from './calculator';
import { httpTool } from './http-tool';
import { invokeLambdaWith, lambdaTool } from './lambda-tool';
import { referenceTool } from './reference';
import { ToolRegistry, type Tool, type ToolServices } from './registry';
import { retrieveTool } from './retrieve';
import { isWebSearchConfigured, webSearchTool } from './web-search';

/** Names user tools may not take, whether or not the built-in is offered in this run. */
export const BUILTIN_TOOL_NAMES = ['reference', 'calculator', 'retrieve', 'web_search', 'run_code'] as const;

/**
 * The registry for a run's tool settings. `services` (when given) and `settings` become the context
 * of every call, so the judge passes only the per-item parts (reference, domain, runId).
 */
export function createToolRegistry(settings: RunConfig['tools'], extraBuiltins: Tool[] = [], services?: ToolServices): ToolRegistry {
  const builtins: Tool[] = [referenceTool, calculatorTool, retrieveTool];
  if (isWebSearchConfigured(settings)) builtins.push(webSearchTool);
  builtins.push(...extraBuiltins);

  const reserved = new Set<string>([...BUILTIN_TOOL_NAMES, ...builtins.map((t) => t.name)]);
  const taken = new Map<string, string>();
  const user: Tool[] = [];
  const declare = (name: string, where: string, make: () => Tool) => {
    if (reserved.has(name)) throw new Error(`${where}: "${name}" is the name of a built-in tool; give the tool another name`);
    const other = taken.get(name);
    if (other) throw new Error(`${where}: the tool name "${name}" is already used by ${other}`);
    taken.set(name, where);
    user.push(make());
  };
  settings.http.forEach((config, i) => declare(config.name, `tools.http[${i}]`, () => httpTool(config)));
  settings.lambda.forEach((config, i) => declare(config.name, `tools.lambda[${i}]`, () => lambdaTool(config)));
  return new ToolRegistry([...builtins, ...user], services ? { settings, services } : { settings });
}

/** The services of a deployed or local run: global fetch, system DNS, Lambda through the SDK. */
export function defaultToolServices(deps: {
  blobs: BlobStore;
  buckets: { input: string; output: string };
  secret(name: string): Promise<string | undefined>;
  lambdaClient?: LambdaClient;
}): ToolServices {
  let invoke: ToolServices['invokeLambda'] | undefined = deps.lambdaClient ? invokeLambdaWith(deps.lambdaClient) : undefined;
  return {
    blobs: deps.blobs,
    buckets: deps.buckets,
    secret: (name) => deps.secret(name),
    // A client only when a Lambda tool is called: runs without one need no AWS configuration.
    invokeLambda: (arn, payload, signal) => (invoke ??= invokeLambdaWith(new LambdaClient({})))(arn, payload, signal),
    fetch: (input, init) => globalThis.fetch(input, init),
    lookup: async (hostname) => (await dns.lookup(hostname, { all: true, verbatim: true })).map((a) => a.address),
  };
}
