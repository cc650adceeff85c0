// StateStore on one DynamoDB table (see resources.ts TABLE). Only single-item conditional writes:
// the local DynamoDB (dynalite) has no transactions, and none are needed.
//
//   pk = RUN#<runId>   sk = RUN                 the run
//                      sk = ITEM#<itemId>       one item per valid input line (itemId sorts by line)
//                      sk = DONE#<shard>        terminal item ids (string set) and counts per state
//                      sk = PROMPT#<role>#<domain>#<version>   a prompt version and its trial counters
//                      sk = POLICY#<role>#<domain>             the run-level prompt (incumbent) and its history
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import {
  GetCommand,
  PutCommand,
  QueryCommand,
  UpdateCommand,
  type DynamoDBDocumentClient,
} from '@aws-sdk/lib-dynamodb';
import { TABLE } from '../resources';
import { hashString } from '../random';
import type { ItemState, Role, UsageByRole } from '../types';
import type {
  ItemRecord,
  PolicyRecord,
  PromptVersionRecord,
  RunRecord,
  RunStatus,
  StateStore,
  TerminalCounts,
} from '../state/records';

const DONE_SHARDS = 16;
const runPk = (runId: string) => `RUN#${runId}`;
const isConditionFailure = (e: unknown) =>
  e instanceof ConditionalCheckFailedException || (e as { name?: string })?.name === 'ConditionalCheckFailedException';

export class DynamoStateStore implements StateStore {
  constructor(
    private readonly db: DynamoDBDocumentClient,
    private readonly table: string,
  ) {}

  async createRun(run: RunRecord): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: runPk(run.runId), sk: 'RUN', gsi1pk: 'RUNS', gsi1sk: `${run.createdAt}#${run.runId}`, ...run },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw e;
    }
  }

  async getRun(runId: string): Promise<RunRecord | undefined> {
    const out = await this.db.send(new GetCommand({ TableName: this.table, Key: { pk: runPk(runId), sk: 'RUN' }, ConsistentRead: true }));
    return out.Item ? runFromItem(out.Item) : undefined;
  }

  async updateRun(runId: string, fields: Partial<RunRecord>, fromStatus?: RunStatus[]): Promise<boolean> {
    const entries = Object.entries(fields).filter(([, v]) => v !== undefined);
    if (entries.length === 0) return true;
    const names: Record<string, string> = {};
    const values: Record<string, unknown> = {};
    const sets = entries.map(([k, v], i) => {
      names[`#f${i}`] = k;
      values[`:v${i}`] = v;
      return `#f${i} = :v${i}`;
    });
    let condition = 'attribute_exists(pk)';
    if (fromStatus) {
      names['#status'] = 'status';
      const keys = fromStatus.map((s, i) => {
        values[`:s${i}`] = s;
        return `:s${i}`;
      });
      condition += ` AND #status IN (${keys.join(', ')})`;
    }
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: runPk(runId), sk: 'RUN' },
          UpdateExpression: `SET ${sets.join(', ')}`,
          ConditionExpression: condition,
          ExpressionAttributeNames: names,
          ExpressionAttributeValues: values,
        }),
      );
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw e;
    }
  }

  async listRuns(limit: number): Promise<RunRecord[]> {
    const out = await this.db.send(
      new QueryCommand({
        TableName: this.table,
        IndexName: TABLE.runsIndex.name,
        KeyConditionExpression: 'gsi1pk = :runs',
        ExpressionAttributeValues: { ':runs': 'RUNS' },
        ScanIndexForward: false,
        Limit: limit,
      }),
    );
    return (out.Items ?? []).map(runFromItem);
  }

  async addRunUsage(runId: string, tokens: number, byRole: UsageByRole): Promise<void> {
    // Flat counters (usage_<role>_<field>): ADD cannot create a nested map path.
    const names: Record<string, string> = { '#tokens': 'usedTokens' };
    const values: Record<string, unknown> = { ':tokens': tokens };
    const adds = ['#tokens :tokens'];
    for (const [role, u] of Object.entries(byRole)) {
      for (const [field, v] of Object.entries(u ?? {})) {
        const n = `#${role}_${field}`;
        names[n] = `usage_${role}_${field}`;
        values[`:${role}_${field}`] = v;
        adds.push(`${n} :${role}_${field}`);
      }
    }
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: runPk(runId), sk: 'RUN' },
        UpdateExpression: `ADD ${adds.join(', ')}`,
        ConditionExpression: 'attribute_exists(pk)',
        ExpressionAttributeNames: names,
        ExpressionAttributeValues: values,
      }),
    );
  }

  async putItems(items: ItemRecord[]): Promise<number> {
    const created = await Promise.all(
      items.map(async (item) => {
        try {
          await this.db.send(
            new PutCommand({
              TableName: this.table,
              Item: { pk: runPk(item.runId), sk: `ITEM#${item.itemId}`, ...item },
              ConditionExpression: 'attribute_not_exists(pk)',
            }),
          );
          return 1;
        } catch (e) {
          if (isConditionFailure(e)) return 0;
          throw e;
        }
      }),
    );
    return created.reduce<number>((a, b) => a + b, 0);
  }

  async getItem(runId: string, itemId: string): Promise<ItemRecord | undefined> {
    const out = await this.db.send(
      new GetCommand({ TableName: this.table, Key: { pk: runPk(runId), sk: `ITEM#${itemId}` }, ConsistentRead: true }),
    );
    return out.Item ? stripKeys<ItemRecord>(out.Item) : undefined;
  }

  async replaceItem(prev: ItemRecord, next: Omit<ItemRecord, 'rev'>): Promise<ItemRecord | undefined> {
    const stored: ItemRecord = { ...next, rev: prev.rev + 1 };
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: runPk(prev.runId), sk: `ITEM#${prev.itemId}`, ...stored },
          ConditionExpression: '#rev = :rev',
          ExpressionAttributeNames: { '#rev': 'rev' },
          ExpressionAttributeValues: { ':rev': prev.rev },
        }),
      );
      return stored;
    } catch (e) {
      if (isConditionFailure(e)) return undefined;
      throw e;
    }
  }

  async *listItems(runId: string): AsyncIterable<ItemRecord> {
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :item)',
          ExpressionAttributeValues: { ':pk': runPk(runId), ':item': 'ITEM#' },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const i of out.Items ?? []) yield stripKeys<ItemRecord>(i);
      start = out.LastEvaluatedKey;
    } while (start);
  }

  async recordTerminal(runId: string, itemId: string, state: ItemState): Promise<void> {
    const shard = hashString(itemId) % DONE_SHARDS;
    try {
      await this.db.send(
        new UpdateCommand({
          TableName: this.table,
          Key: { pk: runPk(runId), sk: `DONE#${String(shard).padStart(2, '0')}` },
          // The membership guard makes the counters exact under duplicate delivery.
          UpdateExpression: 'ADD #ids :id, #total :one, #state :one',
          ConditionExpression: 'attribute_not_exists(#ids) OR NOT contains(#ids, :idValue)',
          ExpressionAttributeNames: { '#ids': 'ids', '#total': 'total', '#state': state },
          ExpressionAttributeValues: { ':id': new Set([itemId]), ':idValue': itemId, ':one': 1 },
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
    }
  }

  async terminalCounts(runId: string): Promise<TerminalCounts> {
    const counts: TerminalCounts = { accepted: 0, rejected: 0, deadLettered: 0, total: 0 };
    let start: Record<string, unknown> | undefined;
    do {
      const out = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :done)',
          ExpressionAttributeValues: { ':pk': runPk(runId), ':done': 'DONE#' },
          ProjectionExpression: 'accepted, rejected, deadLettered, #total',
          ExpressionAttributeNames: { '#total': 'total' },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const i of out.Items ?? []) {
        counts.accepted += Number(i.accepted ?? 0);
        counts.rejected += Number(i.rejected ?? 0);
        counts.deadLettered += Number(i.deadLettered ?? 0);
        counts.total += Number(i.total ?? 0);
      }
      start = out.LastEvaluatedKey;
    } while (start);
    return counts;
  }

  async putPromptVersion(v: Omit<PromptVersionRecord, 'trials' | 'accepted' | 'rewardSum'>): Promise<void> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: runPk(v.runId), sk: promptSk(v.role, v.domain, v.version), ...v, trials: 0, accepted: 0, rewardSum: 0 },
          ConditionExpression: 'attribute_not_exists(pk)',
        }),
      );
    } catch (e) {
      if (!isConditionFailure(e)) throw e;
    }
  }

  async listPromptVersions(runId: string, role?: 'target' | 'judge', domain?: string): Promise<PromptVersionRecord[]> {
    const prefix = role ? (domain !== undefined ? `PROMPT#${role}#${domain}#` : `PROMPT#${role}#`) : 'PROMPT#';
    const out: PromptVersionRecord[] = [];
    let start: Record<string, unknown> | undefined;
    do {
      const page = await this.db.send(
        new QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :prefix)',
          ExpressionAttributeValues: { ':pk': runPk(runId), ':prefix': prefix },
          ExclusiveStartKey: start,
          ConsistentRead: true,
        }),
      );
      for (const i of page.Items ?? []) out.push(stripKeys<PromptVersionRecord>(i));
      start = page.LastEvaluatedKey;
    } while (start);
    return out;
  }

  async recordPromptTrial(runId: string, role: 'target' | 'judge', domain: string, version: string, accepted: boolean, reward: number): Promise<void> {
    await this.db.send(
      new UpdateCommand({
        TableName: this.table,
        Key: { pk: runPk(runId), sk: promptSk(role, domain, version) },
        UpdateExpression: 'SET runId = :run, #role = :role, #domain = :domain, version = :version ADD trials :one, accepted :acc, rewardSum :reward',
        ExpressionAttributeNames: { '#role': 'role', '#domain': 'domain' },
        ExpressionAttributeValues: { ':run': runId, ':role': role, ':domain': domain, ':version': version, ':one': 1, ':acc': accepted ? 1 : 0, ':reward': reward },
      }),
    );
  }

  async getPolicy(runId: string, role: 'target' | 'judge', domain: string): Promise<PolicyRecord | undefined> {
    const out = await this.db.send(
      new GetCommand({ TableName: this.table, Key: { pk: runPk(runId), sk: `POLICY#${role}#${domain}` }, ConsistentRead: true }),
    );
    return out.Item ? stripKeys<PolicyRecord>(out.Item) : undefined;
  }

  async savePolicy(prev: PolicyRecord | undefined, next: Omit<PolicyRecord, 'rev'>): Promise<boolean> {
    try {
      await this.db.send(
        new PutCommand({
          TableName: this.table,
          Item: { pk: runPk(next.runId), sk: `POLICY#${next.role}#${next.domain}`, ...next, rev: (prev?.rev ?? 0) + 1 },
          ...(prev
            ? { ConditionExpression: '#rev = :rev', ExpressionAttributeNames: { '#rev': 'rev' }, ExpressionAttributeValues: { ':rev': prev.rev } }
            : { ConditionExpression: 'attribute_not_exists(pk)' }),
        }),
      );
      return true;
    } catch (e) {
      if (isConditionFailure(e)) return false;
      throw e;
    }
  }
}

/** The run with its flat usage counters folded back into `usage`. */
function runFromItem(item: Record<string, unknown>): RunRecord {
  const run = stripKeys<RunRecord & Record<string, unknown>>(item);
  const usage: UsageByRole = {};
  for (const [k, v] of Object.entries(run)) {
    const m = /^usage_(target|judge|reward|optimizer)_(calls|promptTokens|completionTokens)$/.exec(k);
    if (!m) continue;
    const role = m[1] as Role;
    usage[role] = { calls: 0, promptTokens: 0, completionTokens: 0, ...usage[role], [m[2]!]: Number(v) };
    delete run[k];
  }
  return { ...run, usage };
}

const promptSk = (role: string, domain: string, version: string) => `PROMPT#${role}#${domain}#${version}`;

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, ...rest } = item;
  return rest as T;
}
