// The four simulated roles of the offline model lab (a simulation), behind one pure entry point:
// (role, request, rng, knowledge) → reply. No HTTP, no clock, no call-order state.
import { simulateJudge } from './judge';
import type { Knowledge } from './knowledge';
import { simulateOptimizer } from './optimizer';
import { roleForModel, type LabReply, type LabRequest, type LabRole } from './protocol';
import { simulateReward } from './reward';
import { Rng, sha256 } from './rng';
import { simulateTarget } from './target';

export function simulate(role: LabRole, req: LabRequest, rng: Rng, knowledge: Knowledge): LabReply {
  switch (role) {
    case 'target':
      // Self-rewarding: the target asked to judge its own candidates judges like a judge with no evidence.
      return isJudgeRequest(req) ? simulateJudge(req, rng) : simulateTarget(req, rng, knowledge);
    case 'judge':
      return simulateJudge(req, rng);
    case 'reward':
      return simulateReward(req, rng, knowledge);
    case 'optimizer':
      return simulateOptimizer(req, rng);
  }
}

function isJudgeRequest(req: LabRequest): boolean {
  const last = req.messages.filter((m) => m.role === 'user').at(-1);
  return typeof last?.content === 'string' && last.content.includes('<candidate index=');
}

/** The identity of a request for determinism: messages, n, model (and the request's own seed). */
export function requestFingerprint(req: LabRequest): string {
  return sha256(JSON.stringify({ model: req.model, messages: req.messages, n: req.n, seed: req.seed ?? null }));
}

/** What the lab answers to a request, exactly as the server would (without faults); undefined for an unknown model. */
export function labReply(req: LabRequest, seed: number, knowledge: Knowledge): LabReply | undefined {
  const role = roleForModel(req.model);
  return role ? simulate(role, req, Rng.from(seed, role, requestFingerprint(req)), knowledge) : undefined;
}

/** Roles whose replies are JSON (the structured-output roles). */
export const STRUCTURED_ROLES: readonly LabRole[] = ['judge', 'reward', 'optimizer'];

/** JSON the way a model sometimes breaks it: cut off, wrapped in chatter, or with a dangling comma. */
export function breakJson(text: string, rng: Rng): string {
  const cut = text.slice(0, Math.max(1, Math.floor(text.length * rng.uniform(0.3, 0.8))));
  const variants = [
    cut,
    `Sure! Here is my evaluation:\n${cut}`,
    `${text.replace(/\}\s*$/, '')},\n`,
    text.replace(/"/g, "'"),
  ];
  for (const candidate of rng.shuffle(variants)) {
    try {
      JSON.parse(candidate);
    } catch {
      return candidate;
    }
  }
  return `${text}}`;
}

export { simulateJudge, simulateOptimizer, simulateReward, simulateTarget };
