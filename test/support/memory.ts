// In-memory implementations of the ports, for unit tests of the stage logic. They keep the
// semantics that matter (conditional writes, idempotent terminal counting), nothing more.
import { Readable } from 'node:stream';
import { parseRunConfig, type Dependencies } from '@anyprefer/core';
import type {
  BlobStore,
  ChatRequest,
  ChatResult,
  ItemRecord,
  ItemState,
  ModelGateway,
  PolicyRecord,
  PromptVersionRecord,
  QueueName,
  QueueSender,
  Role,
  RunRecord,
  RunStatus,
  StateStore,
  TerminalCounts,
  TokenUsage,
  UsageByRole,
} from '@anyprefer/core';
import { createToolRegistry } from '../../layers/core/src/tools/catalog';

export class MemoryBlobs implements BlobStore {
  readonly objects = new Map<string, Uint8Array>();
  private k = (b: string, k: string) => `${b}/${k}`;
  async put(bucket: string, key: string, body: string | Uint8Array) {
    this.objects.set(this.k(bucket, key), typeof body === 'string' ? Buffer.from(body) : body);
  }
  async putStream(bucket: string, key: string, body: Readable) {
    const chunks: Buffer[] = [];
    for await (const c of body) chunks.push(Buffer.from(c as Uint8Array));
    this.objects.set(this.k(bucket, key), Buffer.concat(chunks));
  }
  async getText(bucket: string, key: string) {
    const v = this.objects.get(this.k(bucket, key));
    if (!v) throw new Error(`NoSuchKey ${key}`);
    return Buffer.from(v).toString('utf8');
  }
  async getTextIfExists(bucket: string, key: string) {
    const v = this.objects.get(this.k(bucket, key));
    return v ? Buffer.from(v).toString('utf8') : undefined;
  }
  async getStream(bucket: string, key: string) {
    const v = this.objects.get(this.k(bucket, key));
    if (!v) throw new Error(`NoSuchKey ${key}`);
    return Readable.from([Buffer.from(v)]);
  }
  async head(bucket: string, key: string) {
    const v = this.objects.get(this.k(bucket, key));
    return v ? { size: v.length, etag: 'etag', metadata: {} } : undefined;
  }
  async presign(bucket: string, key: string) {
    return `https://${bucket}.s3.example/${encodeURIComponent(key)}?signed`;
  }
  async list(bucket: string, prefix: string) {
    return [...this.objects.keys()].filter((k) => k.startsWith(`${bucket}/${prefix}`)).map((k) => k.slice(bucket.length + 1));
  }
}

export class MemoryQueues implements QueueSender {
  readonly sent: { queue: QueueName; message: unknown }[] = [];
  async send(queue: QueueName, messages: readonly unknown[]) {
    for (const message of messages) this.sent.push({ queue, message: JSON.parse(JSON.stringify(message)) });
  }
  take(queue: QueueName): unknown[] {
    const out = this.sent.filter((s) => s.queue === queue).map((s) => s.message);
    this.sent.splice(0, this.sent.length, ...this.sent.filter((s) => s.queue !== queue));
    return out;
  }
}

export class MemoryState implements StateStore {
  readonly runs = new Map<string, RunRecord>();
  readonly items = new Map<string, ItemRecord>();
  readonly done = new Map<string, Map<string, ItemState>>();
  private clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
  async createRun(run: RunRecord) {
    if (this.runs.has(run.runId)) return false;
    this.runs.set(run.runId, this.clone(run));
    return true;
  }
  async getRun(runId: string) {
    const r = this.runs.get(runId);
    return r && this.clone(r);
  }
  async updateRun(runId: string, fields: Partial<RunRecord>, fromStatus?: RunStatus[]) {
    const r = this.runs.get(runId);
    if (!r || (fromStatus && !fromStatus.includes(r.status))) return false;
    this.runs.set(runId, { ...r, ...this.clone(fields) });
    return true;
  }
  async listRuns() {
    return [...this.runs.values()];
  }
  async addRunUsage(runId: string, tokens: number, byRole: UsageByRole) {
    const r = this.runs.get(runId);
    if (!r) throw new Error(`run ${runId} not found`);
    const usage = { ...r.usage };
    for (const [role, u] of Object.entries(byRole) as [Role, TokenUsage][]) {
      const before = usage[role] ?? { calls: 0, promptTokens: 0, completionTokens: 0 };
      usage[role] = { calls: before.calls + u.calls, promptTokens: before.promptTokens + u.promptTokens, completionTokens: before.completionTokens + u.completionTokens };
    }
    this.runs.set(runId, { ...r, usage, usedTokens: (r.usedTokens ?? 0) + tokens });
  }
  async putItems(items: ItemRecord[]) {
    let n = 0;
    for (const i of items) {
      const k = `${i.runId}/${i.itemId}`;
      if (!this.items.has(k)) {
        this.items.set(k, this.clone(i));
        n++;
      }
    }
    return n;
  }
  async getItem(runId: string, itemId: string) {
    const i = this.items.get(`${runId}/${itemId}`);
    return i && this.clone(i);
  }
  async replaceItem(prev: ItemRecord, next: Omit<ItemRecord, 'rev'>) {
    const k = `${prev.runId}/${prev.itemId}`;
    if (this.items.get(k)?.rev !== prev.rev) return undefined;
    const stored = this.clone({ ...next, rev: prev.rev + 1 }) as ItemRecord;
    this.items.set(k, stored);
    return this.clone(stored);
  }
  async *listItems(runId: string) {
    const all = [...this.items.values()].filter((i) => i.runId === runId).sort((a, b) => a.itemId.localeCompare(b.itemId));
    for (const i of all) yield this.clone(i);
  }
  async recordTerminal(runId: string, itemId: string, state: ItemState) {
    const m = this.done.get(runId) ?? new Map<string, ItemState>();
    if (!m.has(itemId)) m.set(itemId, state);
    this.done.set(runId, m);
  }
  readonly versions = new Map<string, PromptVersionRecord>();
  readonly policies = new Map<string, PolicyRecord>();
  async putPromptVersion(v: Omit<PromptVersionRecord, 'trials' | 'accepted' | 'rewardSum'>) {
    const k = `${v.runId}/${v.role}/${v.domain}/${v.version}`;
    if (!this.versions.has(k)) this.versions.set(k, { ...this.clone(v), trials: 0, accepted: 0, rewardSum: 0 });
  }
  async listPromptVersions(runId: string, role?: 'target' | 'judge', domain?: string) {
    return [...this.versions.values()]
      .filter((v) => v.runId === runId && (!role || v.role === role) && (domain === undefined || v.domain === domain))
      .map((v) => this.clone(v));
  }
  async recordPromptTrial(runId: string, role: 'target' | 'judge', domain: string, version: string, accepted: boolean, reward: number) {
    const k = `${runId}/${role}/${domain}/${version}`;
    const v = this.versions.get(k) ?? { runId, role, domain, version, trials: 0, accepted: 0, rewardSum: 0 };
    this.versions.set(k, { ...v, trials: v.trials + 1, accepted: v.accepted + (accepted ? 1 : 0), rewardSum: v.rewardSum + reward });
  }
  async getPolicy(runId: string, role: 'target' | 'judge', domain: string) {
    const p = this.policies.get(`${runId}/${role}/${domain}`);
    return p && this.clone(p);
  }
  async savePolicy(prev: PolicyRecord | undefined, next: Omit<PolicyRecord, 'rev'>) {
    const k = `${next.runId}/${next.role}/${next.domain}`;
    if (this.policies.get(k)?.rev !== prev?.rev) return false;
    this.policies.set(k, { ...this.clone(next), rev: (prev?.rev ?? 0) + 1 });
    return true;
  }
  async terminalCounts(runId: string): Promise<TerminalCounts> {
    const c: TerminalCounts = { accepted: 0, rejected: 0, deadLettered: 0, total: 0 };
    for (const s of this.done.get(runId)?.values() ?? []) {
      c.total++;
      if (s === 'accepted' || s === 'rejected' || s === 'deadLettered') c[s]++;
    }
    return c;
  }
}

/** A model gateway whose answers a test scripts per role; records every request. */
export class ScriptedModels implements ModelGateway {
  readonly requests: { role: Role; request: ChatRequest }[] = [];
  constructor(private readonly script: Partial<Record<Role, (request: ChatRequest, call: number) => ChatResult | Promise<ChatResult>>>) {}
  async chat(role: Role, request: ChatRequest): Promise<ChatResult> {
    this.requests.push({ role, request: JSON.parse(JSON.stringify(request)) });
    const handler = this.script[role];
    if (!handler) throw new Error(`no script for role ${role}`);
    return handler(request, this.requests.filter((r) => r.role === role).length);
  }
}

export const reply = (content: string | string[], toolCalls: { id: string; name: string; arguments: string }[] = []): ChatResult => ({
  choices: (Array.isArray(content) ? content : [content]).map((c) => ({ content: c, toolCalls })),
  usage: { calls: 1, promptTokens: 10, completionTokens: 5 },
});

export interface MemoryPipeline {
  deps: Dependencies;
  blobs: MemoryBlobs;
  queues: MemoryQueues;
  state: MemoryState;
}

export function memoryPipeline(models: ModelGateway, defaultConfig: unknown = {}): MemoryPipeline {
  const blobs = new MemoryBlobs();
  const queues = new MemoryQueues();
  const state = new MemoryState();
  parseRunConfig(defaultConfig); // fail early on a bad test config
  const silent = { info() {}, warn() {}, error() {} };
  const deps: Dependencies = {
    blobs,
    metrics: { add: () => {} },
    queues,
    state,
    log: silent,
    buckets: { input: 'in', output: 'out' },
    models: () => models,
    tools: (config) => createToolRegistry(config.tools),
    defaultConfig,
    maxReceiveCount: () => 3,
  };
  return { deps, blobs, queues, state };
}
