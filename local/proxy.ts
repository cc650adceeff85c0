// One loopback endpoint for S3, SQS and DynamoDB: a small reverse proxy that routes each request
// to the local server of its service, so the pipeline needs a single endpoint URL (the same shape
// as `--endpoint-url` against moto or LocalStack).
//
// Routing, in order:
//   1. `X-Amz-Target: DynamoDB_20120810.*` → DynamoDB; `X-Amz-Target: AmazonSQS.*` → SQS
//      (both are AWS JSON 1.0 protocols).
//   2. The service in the SigV4 credential scope (`Authorization: AWS4-HMAC-SHA256
//      Credential=AKID/date/region/<service>/aws4_request`): catches SQS's older query protocol.
//   3. Everything else → S3 (REST: paths, presigned URLs, unsigned GETs).
//
// Bodies are streamed in both directions; headers are passed through unchanged, including Host:
// the client signed the request for the proxy's host, and the upstream servers see exactly what
// was signed (none of s3rver, dynalite and local-aws-sqs verifies SigV4 signatures anyway).
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export type ProxiedService = 's3' | 'sqs' | 'dynamodb';

export interface ProxyTargets {
  /** Upstream base URLs, e.g. http://127.0.0.1:4568 */
  s3: string;
  sqs: string;
  dynamodb: string;
}

export interface LocalProxy {
  /** http://127.0.0.1:<port> */
  url: string;
  port: number;
  close(): Promise<void>;
}

/** Hop-by-hop headers (RFC 9110 §7.6.1) are the proxy's own business on each side. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'upgrade', 'expect']);

export function routeRequest(headers: IncomingHttpHeaders): ProxiedService {
  const target = headerValue(headers['x-amz-target']);
  if (target?.startsWith('DynamoDB_20120810')) return 'dynamodb';
  if (target?.startsWith('AmazonSQS')) return 'sqs';
  const scope = /Credential=[^/,\s]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(headerValue(headers.authorization) ?? '');
  if (scope?.[1] === 'sqs') return 'sqs';
  if (scope?.[1] === 'dynamodb') return 'dynamodb';
  return 's3';
}

export async function startProxy(targets: ProxyTargets, opts: { host?: string } = {}): Promise<LocalProxy> {
  const host = opts.host ?? '127.0.0.1';
  const upstreams: Record<ProxiedService, URL> = {
    s3: new URL(targets.s3),
    sqs: new URL(targets.sqs),
    dynamodb: new URL(targets.dynamodb),
  };
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  const server = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const upstream = upstreams[routeRequest(req.headers)];
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(req.headers)) {
      if (value !== undefined && !HOP_BY_HOP.has(name)) headers[name] = value;
    }
    const proxyReq = http.request({
      agent,
      protocol: upstream.protocol,
      hostname: upstream.hostname,
      port: upstream.port,
      method: req.method,
      path: req.url,
      headers,
      // Keep the client's Host header (it is part of the signature); Node would otherwise
      // set it to the upstream's address.
      setHost: false,
    });

    proxyReq.on('response', (proxyRes) => {
      const raw: string[] = [];
      for (let i = 0; i + 1 < proxyRes.rawHeaders.length; i += 2) {
        const name = proxyRes.rawHeaders[i]!;
        if (!HOP_BY_HOP.has(name.toLowerCase())) raw.push(name, proxyRes.rawHeaders[i + 1]!);
      }
      res.writeHead(proxyRes.statusCode ?? 502, proxyRes.statusMessage, raw);
      proxyRes.pipe(res);
      proxyRes.on('error', () => res.destroy());
    });
    proxyReq.on('error', (err) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'text/plain' });
        res.end(`local proxy: upstream ${upstream.host} failed: ${err.message}`);
      } else {
        res.destroy(err);
      }
    });
    // The client went away before the response finished: stop the upstream request too
    // (a long-polling ReceiveMessage, an aborted upload).
    res.on('close', () => {
      if (!res.writableFinished) proxyReq.destroy();
    });
    req.on('error', () => proxyReq.destroy());
    req.pipe(proxyReq);
  });
  server.keepAliveTimeout = 5_000;

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    url: `http://${host}:${port}`,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        agent.destroy();
      }),
  };
}

function headerValue(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v;
}
