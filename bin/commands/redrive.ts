// `anyprefer redrive`: moves the messages of every stage's dead-letter queue back to the stage's
// queue. A receive → send → delete loop rather than SQS StartMessageMoveTask, so it works on any
// SQS-compatible server. Each message is sent to its source before it is deleted from the
// dead-letter queue: a crash in between duplicates a message, never loses one, and the pipeline
// is idempotent (a stage acts only when the stored item is at that stage and iteration).
import {
  DeleteMessageBatchCommand,
  GetQueueAttributesCommand,
  ReceiveMessageCommand,
  SendMessageBatchCommand,
  SendMessageCommand,
  type Message,
  type MessageAttributeValue,
  type SendMessageBatchRequestEntry,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import { STAGES, type QueueName } from '@anyprefer/core';
import {
  CONNECTION_USAGE,
  connect,
  defaultIo,
  numberFlag,
  parseCommandArgs,
  runCommand,
  UsageError,
  type CommandIo,
} from './options';
import { table } from './format';

export const REDRIVE_USAGE = `usage: anyprefer redrive (--stack NAME | --resources FILE) [--dry-run] [--stage NAME,...] [--max N] [--json]

Moves the messages in the stages' dead-letter queues back to their source queues (find and fix
the cause first: the function's logs). Messages are sent before they are deleted, so an
interrupted redrive may duplicate a message but never loses one; the stages ignore duplicates.
  --dry-run        only count the messages in each dead-letter queue
  --stage NAMES    only these stages (comma-separated: ingest, generate, judge, feedback, finalize)
  --max N          move at most N messages in all (default 10000)
  --json           print the counts as JSON
${CONNECTION_USAGE}`;

const SQS_BATCH = 10;
/** Received dead-letter messages stay hidden this long: enough to send and delete them. */
const RECEIVE_VISIBILITY_SECONDS = 60;
/** Consecutive empty receives that end a queue's redrive. */
const EMPTY_RECEIVES_TO_STOP = 2;
const DEFAULT_MAX = 10_000;

export interface StageRedrive {
  /** Dead-letter messages before the move (ApproximateNumberOfMessages), and received but not yet deleted. */
  waiting: number;
  inFlight: number;
  moved: number;
  /** Sent but not deleted from the dead-letter queue (it will be moved again: a duplicate). */
  notDeleted: number;
  /** Not sent; left in the dead-letter queue. */
  failed: number;
}

export interface RedriveReport {
  dryRun: boolean;
  stages: Partial<Record<QueueName, StageRedrive>>;
  moved: number;
  failed: number;
  /** True when --max stopped the move before the queues were empty. */
  limited: boolean;
}

export function redriveCommand(args: string[], io: CommandIo = defaultIo): Promise<number> {
  return runCommand('redrive', REDRIVE_USAGE, io, args, async () => {
    const { values, positionals } = parseCommandArgs(args, {
      'dry-run': { type: 'boolean', default: false },
      stage: { type: 'string' },
      max: { type: 'string' },
      json: { type: 'boolean', default: false },
    });
    if (positionals.length > 0) throw new UsageError(`unexpected argument "${positionals[0]}"`);
    const max = numberFlag(values.max, '--max', DEFAULT_MAX, { integer: true, min: 1 });
    const known = STAGES.map((s) => s.name);
    const stages = values.stage ? values.stage.split(',').map((s) => s.trim()).filter(Boolean) : known;
    const unknown = stages.filter((s) => !known.includes(s as QueueName));
    if (unknown.length > 0 || stages.length === 0) throw new UsageError(`unknown stage "${unknown[0] ?? ''}" (stages: ${known.join(', ')})`);

    const stack = await connect(values);
    try {
      const sqs = stack.clients.sqs;
      const report: RedriveReport = { dryRun: values['dry-run'], stages: {}, moved: 0, failed: 0, limited: false };
      const budget = { remaining: max };
      for (const name of stages as QueueName[]) {
        const q = stack.outputs.queues[name];
        const before = await depth(sqs, q.dlqUrl);
        const entry: StageRedrive = { ...before, moved: 0, notDeleted: 0, failed: 0 };
        report.stages[name] = entry;
        // Nothing visible: skip the two empty receives (about 2 s) that would end the loop.
        if (values['dry-run'] || before.waiting === 0) continue;
        if (budget.remaining <= 0) {
          report.limited ||= before.waiting + before.inFlight > 0;
          continue;
        }
        const { limited, ...moved } = await moveMessages(sqs, q.dlqUrl, q.url, budget);
        Object.assign(entry, moved);
        report.moved += moved.moved;
        report.failed += moved.failed;
        report.limited ||= limited;
      }

      io.out(values.json ? JSON.stringify(report, null, 2) : formatRedrive(report, max));
      return report.failed > 0 ? 1 : 0;
    } finally {
      stack.close();
    }
  });
}

async function depth(sqs: SQSClient, url: string): Promise<{ waiting: number; inFlight: number }> {
  const { Attributes: a = {} } = await sqs.send(
    new GetQueueAttributesCommand({ QueueUrl: url, AttributeNames: ['ApproximateNumberOfMessages', 'ApproximateNumberOfMessagesNotVisible'] }),
  );
  return { waiting: Number(a.ApproximateNumberOfMessages ?? 0), inFlight: Number(a.ApproximateNumberOfMessagesNotVisible ?? 0) };
}

/**
 * Moves messages from `from` to `to` until a receive comes back empty twice in a row or the
 * budget is spent: receive (up to 10), send them to `to`, delete the ones sent from `from`.
 */
export async function moveMessages(
  sqs: SQSClient,
  from: string,
  to: string,
  budget: { remaining: number },
): Promise<{ moved: number; notDeleted: number; failed: number; limited: boolean }> {
  const counts = { moved: 0, notDeleted: 0, failed: 0, limited: false };
  let empty = 0;
  while (empty < EMPTY_RECEIVES_TO_STOP && budget.remaining > 0) {
    const { Messages: messages = [] } = await sqs.send(
      new ReceiveMessageCommand({
        QueueUrl: from,
        MaxNumberOfMessages: Math.min(SQS_BATCH, budget.remaining),
        WaitTimeSeconds: 1,
        VisibilityTimeout: RECEIVE_VISIBILITY_SECONDS,
        MessageSystemAttributeNames: ['All'],
        MessageAttributeNames: ['All'],
      }),
    );
    if (messages.length === 0) {
      empty++;
      continue;
    }
    empty = 0;
    // Messages not sent stay hidden until their visibility timeout ends, so this loop does not
    // receive them again; they are still in the dead-letter queue afterwards.
    const sent = await sendAll(sqs, to, messages);
    counts.failed += messages.length - sent.length;
    budget.remaining -= messages.length;
    if (sent.length === 0) continue;
    const deleted = await sqs.send(
      new DeleteMessageBatchCommand({
        QueueUrl: from,
        Entries: sent.map((m, i) => ({ Id: String(i), ReceiptHandle: m.ReceiptHandle! })),
      }),
    );
    const notDeleted = deleted.Failed?.length ?? 0;
    counts.moved += sent.length - notDeleted;
    counts.notDeleted += notDeleted;
  }
  counts.limited = empty < EMPTY_RECEIVES_TO_STOP;
  return counts;
}

/** Sends copies of `messages` to `queueUrl`; returns the ones sent. */
async function sendAll(sqs: SQSClient, queueUrl: string, messages: Message[]): Promise<Message[]> {
  const entries: SendMessageBatchRequestEntry[] = messages.map((m, i) => ({
    Id: String(i),
    MessageBody: m.Body ?? '',
    ...(m.MessageAttributes && Object.keys(m.MessageAttributes).length > 0 ? { MessageAttributes: copyAttributes(m.MessageAttributes) } : {}),
    ...(m.Attributes?.AWSTraceHeader
      ? { MessageSystemAttributes: { AWSTraceHeader: { DataType: 'String', StringValue: m.Attributes.AWSTraceHeader } } }
      : {}),
  }));
  try {
    const res = await sqs.send(new SendMessageBatchCommand({ QueueUrl: queueUrl, Entries: entries }));
    const ok = new Set((res.Successful ?? []).map((s) => s.Id));
    return messages.filter((_, i) => ok.has(String(i)));
  } catch (err) {
    // Ten bodies may exceed SQS's batch size limit although each fits: send them one by one.
    if ((err as { name?: string })?.name !== 'BatchRequestTooLong') throw err;
    const sent: Message[] = [];
    for (const [i, m] of messages.entries()) {
      const { Id: _id, ...entry } = entries[i]!;
      try {
        await sqs.send(new SendMessageCommand({ QueueUrl: queueUrl, ...entry }));
        sent.push(m);
      } catch {
        // counted as failed by the caller; the message stays in the dead-letter queue
      }
    }
    return sent;
  }
}

function copyAttributes(attributes: Record<string, MessageAttributeValue>): Record<string, MessageAttributeValue> {
  const out: Record<string, MessageAttributeValue> = {};
  for (const [name, v] of Object.entries(attributes)) {
    out[name] = {
      DataType: v.DataType,
      ...(v.StringValue !== undefined ? { StringValue: v.StringValue } : {}),
      ...(v.BinaryValue !== undefined ? { BinaryValue: v.BinaryValue } : {}),
    };
  }
  return out;
}

function formatRedrive(r: RedriveReport, max: number): string {
  const rows: (string | number)[][] = r.dryRun
    ? [['stage', 'dead-letter', 'in flight']]
    : [['stage', 'dead-letter', 'moved', 'failed']];
  for (const [name, s] of Object.entries(r.stages)) {
    rows.push(r.dryRun ? [name, s.waiting, s.inFlight] : [name, s.waiting, s.moved, s.failed]);
  }
  const lines = [table(rows)];
  const waiting = Object.values(r.stages).reduce((n, s) => n + s.waiting + s.inFlight, 0);
  if (r.dryRun) lines.push(waiting === 0 ? 'the dead-letter queues are empty' : `${waiting} message(s) would be moved (dry run)`);
  else lines.push(`moved ${r.moved} message(s) back to their source queues${r.failed ? `; ${r.failed} could not be sent and stay in the dead-letter queues` : ''}`);
  const notDeleted = Object.values(r.stages).reduce((n, s) => n + s.notDeleted, 0);
  if (notDeleted > 0) lines.push(`${notDeleted} message(s) were sent but not deleted from a dead-letter queue; a later redrive sends them again (harmless)`);
  if (r.limited) lines.push(`stopped after --max ${max} messages; run redrive again to move the rest`);
  return lines.join('\n');
}
