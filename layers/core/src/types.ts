// Domain types shared by every stage. Nothing here knows about AWS.

export type Role = 'target' | 'judge' | 'reward' | 'optimizer';
export const ROLES: readonly Role[] = ['target', 'judge', 'reward', 'optimizer'];

/** A chat message as the trainers and the OpenAI API see it. */
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string;
}

/** One input line after format detection: what the pipeline needs, whatever the source format. */
export interface NormalizedInput {
  /** Stable id: the line's own `id` when it has one, else derived from the line number. */
  id: string;
  /** 1-based line number in the source file. */
  line: number;
  /** Which input format the line matched (see docs/configuration.md). */
  format: InputFormat;
  /** The conversation up to the turn the target must answer; the last message is from the user. */
  messages: ChatMessage[];
  /** Reference answer: shown to the judge's tools, never to the target. */
  reference?: string;
  domain?: string;
  metadata?: Record<string, unknown>;
  /** Images that go with the last user turn: s3://bucket/key, https:// or data: URLs. */
  images?: string[];
}

export type InputFormat = 'prompt' | 'alpaca' | 'question-answer' | 'openai-chat' | 'sharegpt' | 'mt-bench';

/** A line that could not be used, with its 1-based number and the reason. */
export interface InvalidLine {
  line: number;
  reason: string;
  /** The start of the raw line (at most 200 characters, binary shown escaped). */
  excerpt: string;
}

export interface TokenUsage {
  calls: number;
  promptTokens: number;
  completionTokens: number;
}

export type UsageByRole = Partial<Record<Role, TokenUsage>>;

/** Item lifecycle. `generate`, `judge`, `feedback` are stages; the rest are terminal. */
export type ItemState = 'generate' | 'judge' | 'feedback' | 'accepted' | 'rejected' | 'deadLettered';
export type StageName = 'generate' | 'judge' | 'feedback';

/** The message every item queue carries: ids only (claim check), never payloads. */
export interface ItemMessage {
  runId: string;
  itemId: string;
  stage: StageName;
  iteration: number;
}

export interface FinalizeMessage {
  runId: string;
}


export interface Candidate {
  index: number;
  content: string;
}

/** A tool call the judge made and what it got back: evidence, whether it succeeded or not. */
export interface ToolEvidence {
  round: number;
  tool: string;
  arguments: unknown;
  ok: boolean;
  /** The result text (truncated to the tool's output limit) or the error message. */
  output: string;
  durationMs: number;
  /** Where the full output lives when it was too large to keep inline. */
  blobKey?: string;
}

export interface CandidateScore {
  index: number;
  score: number;
  rationale: string;
}

export interface Judgement {
  scores: CandidateScore[];
  evidence: ToolEvidence[];
  chosen: number;
  rejected: number;
  margin: number;
}

export interface RewardVerdict {
  score: number;
  critique: string;
}

/** What one pass through generate → judge produced for an item. */
export interface Attempt {
  iteration: number;
  targetPromptVersion: string;
  judgePromptVersion: string;
  candidates: Candidate[];
  judgement?: Judgement;
  reward?: RewardVerdict;
  /** Set when the attempt could not produce a pair (all candidates equal, unparseable output...). */
  failure?: string;
}

