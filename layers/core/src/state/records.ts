// Run and item records, and the StateStore port the stages use to move them.
import type { RunConfig } from '../config';
import type { ItemMessage, ItemState, NormalizedInput, UsageByRole } from '../types';

export type RunStatus = 'ingesting' | 'active' | 'finalizing' | 'complete' | 'failed';

export interface RunRecord {
  runId: string;
  status: RunStatus;
  source: { bucket: string; key: string; versionId?: string; etag?: string };
  config: RunConfig;
  createdAt: string;
  /** Set once the whole file has been read. */
  ingested: boolean;
  lines?: number;
  items?: number;
  invalid?: number;
  /** Dataset location in the output bucket: `datasets/<runId>/`. */
  outputPrefix: string;
  error?: string;
  finishedAt?: string;
  /** Model usage so far, per role, and tokens in total (for the budget guard and `anyprefer status`). */
  usage?: UsageByRole;
  usedTokens?: number;
  /** Set when the budget stopped the run taking new work. */
  budgetStop?: string;
}

/** A prompt as an item uses it: the version id and its text. */
export interface PromptRef {
  version: string;
  text: string;
  /** The version this one was revised from, and the critique that caused the revision. */
  parent?: string;
  critique?: string;
}

/** Summary of one pass through generate → judge; the full attempt lives in S3 at `key`. */
export interface AttemptSummary {
  iteration: number;
  key: string;
  rewardScore?: number;
  failure?: string;
}

/** What the next stage must be told once a transition is stored (a transactional outbox). */
export type Outbox = { kind: 'message'; message: ItemMessage } | { kind: 'terminal' };

export interface ItemRecord {
  runId: string;
  itemId: string;
  line: number;
  state: ItemState;
  iteration: number;
  /** Optimistic-lock counter: every write is conditional on it and bumps it. */
  rev: number;
  /** The input inline, or `inputKey` in the output bucket when it is large. */
  input?: NormalizedInput;
  inputKey?: string;
  prompts: { target: PromptRef; judge: PromptRef };
  /** Key of the current iteration's candidates in the output bucket. */
  candidatesKey?: string;
  attempts: AttemptSummary[];
  usage: UsageByRole;
  outbox?: Outbox;
  /** Terminal items: why they ended. */
  reason?: string;
  updatedAt: string;
  expiresAt: number;
}

export interface TerminalCounts {
  accepted: number;
  rejected: number;
  deadLettered: number;
  total: number;
}

/** A prompt version and what it achieved: the policy's evidence. */
export interface PromptVersionRecord {
  runId: string;
  role: 'target' | 'judge';
  domain: string;
  version: string;
  /** Empty for `initial`, whose text is the run config's prompt. */
  text?: string;
  parent?: string;
  critique?: string;
  itemId?: string;
  createdAt?: string;
  /** Judge attempts made with this version, how many were accepted, and their summed reward. */
  trials: number;
  accepted: number;
  rewardSum: number;
}

/** The run-level prompt for one role and domain, and how it got there. */
export interface PolicyRecord {
  runId: string;
  role: 'target' | 'judge';
  domain: string;
  incumbent: string;
  rev: number;
  history: { version: string; from: string; at: string; reason: string }[];
}

export interface StateStore {
  /** Creates the run; `false` when it already exists (a duplicate event for the same object). */
  createRun(run: RunRecord): Promise<boolean>;
  getRun(runId: string): Promise<RunRecord | undefined>;
  /** Sets fields on the run; with `fromStatus`, only when the run is in one of those statuses. */
  updateRun(runId: string, fields: Partial<RunRecord>, fromStatus?: RunStatus[]): Promise<boolean>;
  listRuns(limit: number): Promise<RunRecord[]>;
  /** Adds what a stage spent to the run's usage counters. */
  addRunUsage(runId: string, tokens: number, byRole: UsageByRole): Promise<void>;

  /** Creates items that do not exist yet (conditional puts); returns how many were new. */
  putItems(items: ItemRecord[]): Promise<number>;
  getItem(runId: string, itemId: string): Promise<ItemRecord | undefined>;
  /** Writes `next` only if the stored item still has `prev.rev`; returns the stored item or undefined on conflict. */
  replaceItem(prev: ItemRecord, next: Omit<ItemRecord, 'rev'>): Promise<ItemRecord | undefined>;
  /** All items of a run in line order, page by page. */
  listItems(runId: string): AsyncIterable<ItemRecord>;

  /** Idempotently counts an item as terminal (a set addition guarded by membership). */
  recordTerminal(runId: string, itemId: string, state: ItemState): Promise<void>;
  terminalCounts(runId: string): Promise<TerminalCounts>;

  /** Stores a new prompt version (no-op when the version exists: versions are content-addressed). */
  putPromptVersion(v: Omit<PromptVersionRecord, 'trials' | 'accepted' | 'rewardSum'>): Promise<void>;
  listPromptVersions(runId: string, role?: 'target' | 'judge', domain?: string): Promise<PromptVersionRecord[]>;
  /** Adds one trial's outcome to a version's counters (creating them for `initial`). */
  recordPromptTrial(runId: string, role: 'target' | 'judge', domain: string, version: string, accepted: boolean, reward: number): Promise<void>;
  getPolicy(runId: string, role: 'target' | 'judge', domain: string): Promise<PolicyRecord | undefined>;
  /** Writes the policy if it is still at `prev.rev` (or still absent); false when someone moved it first. */
  savePolicy(prev: PolicyRecord | undefined, next: Omit<PolicyRecord, 'rev'>): Promise<boolean>;
}
