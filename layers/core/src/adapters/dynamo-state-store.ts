// StateStore on one DynamoDB table (see resources.ts TABLE). Only single-item conditional writes:
// the local DynamoDB (dynalite) has no transactions, and none are needed.
//
//   pk = RUN#<runId>   sk = RUN                 the run
//                      sk = ITEM#<itemId>       one item per valid input line (itemId sorts by line)
//                      sk = DONE#<shard>        terminal item ids (string set) and counts per state
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
import type { ItemState } from '../types';
import type { ItemRecord, RunRecord, RunStatus, StateStore, TerminalCounts } from '../state/records';

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
    return out.Item ? stripKeys<RunRecord>(out.Item) : undefined;
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
    return (out.Items ?? []).map((i) => stripKeys<RunRecord>(i));
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
}

function stripKeys<T>(item: Record<string, unknown>): T {
  const { pk: _pk, sk: _sk, gsi1pk: _g1, gsi1sk: _g2, ...rest } = item;
  return rest as T;
}
