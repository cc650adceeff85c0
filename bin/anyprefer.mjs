#!/usr/bin/env node
// `npx anyprefer ...`: runs the TypeScript command line through tsx, so no build step is needed.
import { register } from 'tsx/esm/api';

process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
register();
await import('./anyprefer.ts');
