// The prompt policy of the cooperative game: the target's and the judge's prompts, per domain.
// Revisions come from feedback; evidence comes from judge attempts; the run-level prompt moves
// only when a revision measurably beats the incumbent (config.policy states the rule).
import type { RunConfig } from './config';
import type { Dependencies } from './dependencies';
import { seededRandom, sha256Hex } from './random';
import type { PolicyRecord, PromptRef, PromptVersionRecord } from './state/records';

export type PromptRole = 'target' | 'judge';
export const PROMPT_ROLES: readonly PromptRole[] = ['target', 'judge'];
export const INITIAL_VERSION = 'initial';
export const DEFAULT_DOMAIN = 'default';

export const domainOf = (domain: string | undefined): string => domain ?? DEFAULT_DOMAIN;

/** Versions are content-addressed, so identical revisions from different items pool their evidence. */
export const versionId = (role: PromptRole, domain: string, text: string): string => `v-${sha256Hex(`${role}\u0000${domain}\u0000${text}`).slice(0, 10)}`;

/** The prompts a new item starts with: the incumbent, or (exploring) an untried revision. */
export async function promptsForNewItem(
  deps: Dependencies,
  config: RunConfig,
  item: { runId: string; itemId: string },
  domain: string,
): Promise<{ target: PromptRef; judge: PromptRef }> {
  const pick = async (role: PromptRole): Promise<PromptRef> => {
    const policy = await deps.state.getPolicy(item.runId, role, domain);
    const incumbent = policy?.incumbent ?? INITIAL_VERSION;
    const versions = await deps.state.listPromptVersions(item.runId, role, domain);
    const untried = versions
      .filter((v) => v.version !== incumbent && v.text && v.trials < config.policy.minTrials)
      .sort((a, b) => a.trials - b.trials || (a.createdAt ?? '').localeCompare(b.createdAt ?? ''));
    const explore = untried.length > 0 && seededRandom(config.seed, item.runId, item.itemId, role, 'explore')() < config.policy.explore;
    const chosen = explore ? untried[0]! : versions.find((v) => v.version === incumbent);
    return refOf(config, role, chosen ?? { version: INITIAL_VERSION });
  };
  return { target: await pick('target'), judge: await pick('judge') };
}

function refOf(config: RunConfig, role: PromptRole, v: Pick<PromptVersionRecord, 'version'> & Partial<PromptVersionRecord>): PromptRef {
  if (v.version === INITIAL_VERSION || !v.text) return { version: INITIAL_VERSION, text: config.prompts[role] };
  return { version: v.version, text: v.text, ...(v.parent ? { parent: v.parent } : {}), ...(v.critique ? { critique: v.critique } : {}) };
}

/** Stores a feedback revision as a version (idempotent) and returns the item's new prompt ref. */
export async function recordRevision(
  deps: Dependencies,
  args: { runId: string; itemId: string; role: PromptRole; domain: string; current: PromptRef; text: string; critique?: string },
): Promise<PromptRef> {
  const text = args.text.trim();
  if (text === args.current.text.trim()) return args.current;
  const version = versionId(args.role, args.domain, text);
  await deps.state.putPromptVersion({
    runId: args.runId,
    role: args.role,
    domain: args.domain,
    version,
    text,
    parent: args.current.version,
    ...(args.critique ? { critique: args.critique } : {}),
    itemId: args.itemId,
    createdAt: new Date().toISOString(),
  });
  return { version, text, parent: args.current.version, ...(args.critique ? { critique: args.critique } : {}) };
}

/** Counts a judge attempt for the versions it used, then lets the policy move if the evidence says so. */
export async function recordAttempt(
  deps: Dependencies,
  config: RunConfig,
  args: { runId: string; domain: string; prompts: { target: PromptRef; judge: PromptRef }; accepted: boolean; reward: number },
): Promise<void> {
  for (const role of PROMPT_ROLES) {
    const version = args.prompts[role].version;
    await deps.state.recordPromptTrial(args.runId, role, args.domain, version, args.accepted, args.reward);
    if (config.policy.promote && version !== INITIAL_VERSION) await maybePromote(deps, config, args.runId, role, args.domain, version);
  }
}

/** Rates are ratios of small counts: 3/5 − 1/2 must count as a lift of 0.1. */
const EPSILON = 1e-9;
const rate = (v: PromptVersionRecord) => (v.trials > 0 ? v.accepted / v.trials : 0);
const meanReward = (v: PromptVersionRecord) => (v.trials > 0 ? v.rewardSum / v.trials : 0);

/** The promotion rule. Returns the reason when `candidate` should replace `incumbent`. */
export function promotionReason(config: RunConfig, candidate: PromptVersionRecord, incumbent: PromptVersionRecord | undefined): string | undefined {
  const { minTrials, minLift, minRewardLift } = config.policy;
  if (!incumbent || candidate.trials < minTrials || incumbent.trials < minTrials) return undefined;
  const summary = (v: PromptVersionRecord) =>
    `${v.version}: acceptance ${rate(v).toFixed(2)} (${v.accepted}/${v.trials}), mean reward ${meanReward(v).toFixed(2)}`;
  if (rate(candidate) - rate(incumbent) >= minLift - EPSILON) return `acceptance lift ≥ ${minLift}: ${summary(candidate)} vs ${summary(incumbent)}`;
  if (rate(candidate) >= rate(incumbent) - EPSILON && meanReward(candidate) - meanReward(incumbent) >= minRewardLift - EPSILON) {
    return `reward lift ≥ ${minRewardLift} at no loss of acceptance: ${summary(candidate)} vs ${summary(incumbent)}`;
  }
  return undefined;
}

/** Conditional write on the policy record: concurrent promoters re-read and re-decide (bounded). */
async function maybePromote(deps: Dependencies, config: RunConfig, runId: string, role: PromptRole, domain: string, version: string): Promise<void> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const policy: PolicyRecord | undefined = await deps.state.getPolicy(runId, role, domain);
    const incumbent = policy?.incumbent ?? INITIAL_VERSION;
    if (incumbent === version) return;
    const versions = await deps.state.listPromptVersions(runId, role, domain);
    const candidate = versions.find((v) => v.version === version);
    const reason = candidate && promotionReason(config, candidate, versions.find((v) => v.version === incumbent));
    if (!reason) return;
    const history = [...(policy?.history ?? []), { version, from: incumbent, at: new Date().toISOString(), reason }];
    if (await deps.state.savePolicy(policy, { runId, role, domain, incumbent: version, history })) {
      deps.log.info('prompt promoted', { runId, role, domain, version, reason });
      return;
    }
  }
}
