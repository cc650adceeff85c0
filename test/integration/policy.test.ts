// The prompt policy under concurrency, on the real DynamoDB adapter (dynalite): many items'
// feedback and judge outcomes at once lose no version and no trial, and the run-level prompt
// moves only when the promotion rule is met.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAwsClients, DynamoStateStore, parseRunConfig, type Dependencies } from '@anyprefer/core';
import { INITIAL_VERSION, promotionReason, promptsForNewItem, recordAttempt, recordRevision, versionId } from '../../layers/core/src/policy';
import { defaultResourceNames, provision } from '../../local/provision';
import { startLocalAws } from '../../local/servers';

let stop: () => Promise<void>;
let state: DynamoStateStore;
let deps: Dependencies;

beforeAll(async () => {
  const aws = await startLocalAws();
  stop = aws.stop;
  const clients = createAwsClients({ endpointUrl: aws.endpointUrl });
  const resources = await provision(clients, defaultResourceNames('policy-test'));
  state = new DynamoStateStore(clients.dynamo, resources.table);
  const silent = { info() {}, warn() {}, error() {} };
  deps = { state, log: silent } as unknown as Dependencies;
});
afterAll(async () => stop?.());

const config = parseRunConfig({ policy: { minTrials: 5, minLift: 0.1 } });
const initialPrompt = { version: INITIAL_VERSION, text: config.prompts.target };

describe('prompt policy', () => {
  it('keeps every revision and every trial when many items give feedback at once', async () => {
    const runId = 'concurrent-feedback';
    // 60 items revise concurrently; 3 distinct revision texts among them.
    const texts = ['Reason step by step.', 'Check your arithmetic.', 'Show each calculation.'];
    const refs = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        recordRevision(deps, { runId, itemId: `L${i}`, role: 'target', domain: 'math', current: initialPrompt, text: texts[i % 3]!, critique: `critique ${i}` }),
      ),
    );
    const versions = await state.listPromptVersions(runId, 'target', 'math');
    expect(versions.map((v) => v.text).sort()).toEqual([...texts].sort());
    expect(new Set(refs.map((r) => r.version))).toEqual(new Set(texts.map((t) => versionId('target', 'math', t))));

    // 90 judge outcomes at once: 30 per version; exact counters afterwards.
    await Promise.all(
      refs.flatMap((ref, i) =>
        [0, 1].map(async (k) => {
          if ((i + k) % 4 === 3) return; // a few items never get a second attempt
          await recordAttempt(deps, { ...config, policy: { ...config.policy, promote: false } }, {
            runId,
            domain: 'math',
            prompts: { target: ref, judge: { version: INITIAL_VERSION, text: config.prompts.judge } },
            accepted: k === 0,
            reward: k === 0 ? 8 : 3,
          });
        }),
      ),
    );
    const expectedTrials = refs.flatMap((_, i) => [0, 1].filter((k) => (i + k) % 4 !== 3)).length;
    const after = await state.listPromptVersions(runId, 'target', 'math');
    expect(after.reduce((n, v) => n + v.trials, 0)).toBe(expectedTrials);
    const judgeInitial = (await state.listPromptVersions(runId, 'judge', 'math')).find((v) => v.version === INITIAL_VERSION)!;
    expect(judgeInitial.trials).toBe(expectedTrials);
  });

  it('promotes a revision only on enough evidence, once, and records why', async () => {
    const runId = 'promotion';
    const strong = await recordRevision(deps, { runId, itemId: 'L1', role: 'judge', domain: 'default', current: initialPrompt, text: 'Verify with the reference tool.' });
    const weak = await recordRevision(deps, { runId, itemId: 'L2', role: 'judge', domain: 'default', current: initialPrompt, text: 'Prefer longer answers.' });
    const attempt = (version: typeof strong, accepted: boolean) =>
      recordAttempt(deps, config, { runId, domain: 'default', prompts: { target: initialPrompt, judge: version }, accepted, reward: accepted ? 8 : 2 });

    // The incumbent: 10 trials, 4 accepted (0.4).
    await Promise.all(Array.from({ length: 10 }, (_, i) => attempt({ version: INITIAL_VERSION, text: 'x' }, i < 4)));
    // The weak revision does worse: never promoted, whatever the order.
    await Promise.all(Array.from({ length: 8 }, (_, i) => attempt(weak, i < 2)));
    expect(await state.getPolicy(runId, 'judge', 'default')).toBeUndefined();
    // The strong one: 4 accepted of 4 is not enough evidence yet (minTrials 5)...
    await Promise.all(Array.from({ length: 4 }, () => attempt(strong, true)));
    expect(await state.getPolicy(runId, 'judge', 'default')).toBeUndefined();
    // ...then concurrent outcomes push it over: exactly one promotion.
    await Promise.all(Array.from({ length: 6 }, (_, i) => attempt(strong, i !== 0)));
    const policy = await state.getPolicy(runId, 'judge', 'default');
    expect(policy?.incumbent).toBe(strong.version);
    expect(policy?.history).toHaveLength(1);
    expect(policy?.history[0]).toMatchObject({ from: INITIAL_VERSION, version: strong.version, reason: expect.stringMatching(/^acceptance lift/) });

    // New items now start from the promoted prompt (exploring nothing: no untried revision left).
    const prompts = await promptsForNewItem(deps, { ...config, policy: { ...config.policy, explore: 0 } }, { runId, itemId: 'L99' }, 'default');
    expect(prompts.judge).toMatchObject({ version: strong.version, text: 'Verify with the reference tool.' });
    expect(prompts.target.version).toBe(INITIAL_VERSION);
  });

  it('states the rule: trials on both sides, then an acceptance or reward lift', () => {
    const v = (version: string, trials: number, accepted: number, rewardSum: number) => ({ runId: 'r', role: 'judge' as const, domain: 'd', version, trials, accepted, rewardSum });
    expect(promotionReason(config, v('c', 4, 4, 40), v(INITIAL_VERSION, 20, 2, 40))).toBeUndefined(); // too few trials
    expect(promotionReason(config, v('c', 5, 3, 30), v(INITIAL_VERSION, 20, 10, 100))).toMatch(/acceptance lift/); // 0.6 vs 0.5
    expect(promotionReason(config, v('c', 5, 2, 30), v(INITIAL_VERSION, 20, 8, 80))).toMatch(/reward lift/); // same rate, +2 reward
    expect(promotionReason(config, v('c', 5, 2, 20), v(INITIAL_VERSION, 20, 8, 80))).toBeUndefined(); // no lift
    expect(promotionReason(config, v('c', 5, 3, 30), v(INITIAL_VERSION, 4, 0, 0))).toBeUndefined(); // incumbent unmeasured
  });
});
