/**
 * Numbering a stream batch's live events (functions/lib/liveEvents.ts, docs/adr/0028-live-events.md):
 * one counter update for the whole batch, records packed whole into transactions of at most 100
 * items, and a retried batch never numbering a record twice. The writes are checked with
 * aws-sdk-client-mock; test/integration/ws-events.test.ts runs the same code on DynamoDB Local.
 */
import { DynamoDBDocumentClient, GetCommand, QueryCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LiveEventBody } from '../../../functions/domain/liveEvents.ts';
import { numberEventBatch, numberEvents } from '../../../functions/lib/liveEvents.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const body = (nodeId: string): LiveEventBody => ({ type: 'node.status', at: '2026-11-30T00:00:00.000Z', environment: 'Development', nodeId });
type Put = { Put: { Item: Record<string, unknown>; ConditionExpression?: string } };

beforeEach(() => {
  ddb.reset();
  process.env.EVENTS_TABLE = 'kmod-Events';
});
afterEach(() => {
  delete process.env.EVENTS_TABLE;
});

const transactions = () => ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems as Put[]);

describe('numbering a stream batch', () => {
  it('reserves every record’s seqs with one counter update and writes whole records in transactions of at most 100 items', async () => {
    // 120 records, one event each: 240 items → 100 + 100 + 40.
    ddb.on(UpdateCommand).resolves({ Attributes: { value: 1120 } });
    ddb.on(TransactWriteCommand).resolves({});
    const sources = Array.from({ length: 120 }, (_, i) => ({ sourceId: `kmod-Nodes#${i}`, bodies: [body(`dev-${i}`)] }));
    const events = await numberEventBatch(sources);

    expect(ddb.commandCalls(UpdateCommand)).toHaveLength(1);
    expect(ddb.commandCalls(UpdateCommand)[0].args[0].input.ExpressionAttributeValues).toEqual({ ':n': 120 });
    // Seqs 1001…1120 in record order.
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 120 }, (_, i) => 1001 + i));
    expect(events.map((e) => e.nodeId)).toEqual(sources.map((s) => s.bodies[0].nodeId));

    const tx = transactions();
    expect(tx.map((t) => t.length)).toEqual([100, 100, 40]);
    for (const t of tx) {
      // Every record whole: its marker (conditioned on not existing) followed by its event.
      for (let i = 0; i < t.length; i += 2) {
        expect(t[i].Put.Item.stream).toBe('#source');
        expect(t[i].Put.ConditionExpression).toBe('attribute_not_exists(sk)');
        expect(t[i + 1].Put.Item.stream).toBe('all');
        expect(t[i].Put.Item.seqs).toEqual([t[i + 1].Put.Item.seq]);
      }
    }
  });

  it('never splits a record’s events across transactions', async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: { value: 150 } });
    ddb.on(TransactWriteCommand).resolves({});
    // 60 + 1 items, then 90 + 1: the second record does not fit beside the first.
    const sources = [
      { sourceId: 'kmod-Deployments#1', bodies: Array.from({ length: 60 }, (_, i) => body(`a-${i}`)) },
      { sourceId: 'kmod-Deployments#2', bodies: Array.from({ length: 90 }, (_, i) => body(`b-${i}`)) },
    ];
    const events = await numberEventBatch(sources);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 150 }, (_, i) => 1 + i));
    expect(transactions().map((t) => t.length)).toEqual([61, 91]);
  });

  it('a retried batch: a record numbered before gets its stored events back, the others are stored with the seqs reserved for them', async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: { value: 20 } });
    // The batch transaction is refused (record 1's marker exists); then record 1 alone is refused too, record 2 alone goes through.
    const refused = Object.assign(new Error('Transaction cancelled'), { name: 'TransactionCanceledException' });
    ddb.on(TransactWriteCommand).rejectsOnce(refused).rejectsOnce(refused).resolves({});
    ddb.on(GetCommand).resolves({ Item: { stream: '#source', sk: 'kmod-Nodes#1', seqs: [7] } });
    const stored = { ...body('dev-1'), seq: 7 };
    ddb.on(QueryCommand).resolves({ Items: [{ stream: 'all', sk: '0000000000000007', seq: 7, payload: JSON.stringify(stored) }] });

    const events = await numberEventBatch([
      { sourceId: 'kmod-Nodes#1', bodies: [body('dev-1')] },
      { sourceId: 'kmod-Nodes#2', bodies: [body('dev-2')] },
    ]);
    // Record 1 as first numbered (seq 7), record 2 with its reserved seq (20); seq 19 is a gap.
    expect(events.map((e) => [e.nodeId, e.seq])).toEqual([
      ['dev-1', 7],
      ['dev-2', 20],
    ]);
    expect(ddb.commandCalls(UpdateCommand)).toHaveLength(1);
    expect(transactions().map((t) => t.map((p) => p.Put.Item.sk))).toEqual([
      ['kmod-Nodes#1', '0000000000000019', 'kmod-Nodes#2', '0000000000000020'],
      ['kmod-Nodes#1', '0000000000000019'],
      ['kmod-Nodes#2', '0000000000000020'],
    ]);
    expect(ddb.commandCalls(GetCommand)[0].args[0].input.Key).toEqual({ stream: '#source', sk: 'kmod-Nodes#1' });
  });

  it('one record (numberEvents) numbered before: its stored events, no second transaction', async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: { value: 9 } });
    ddb.on(TransactWriteCommand).rejects(Object.assign(new Error('Transaction cancelled'), { name: 'TransactionCanceledException' }));
    ddb.on(GetCommand).resolves({ Item: { stream: '#source', sk: 'kmod-Nodes#1', seqs: [3] } });
    ddb.on(QueryCommand).resolves({ Items: [{ stream: 'all', sk: '0000000000000003', seq: 3, payload: JSON.stringify({ ...body('dev-1'), seq: 3 }) }] });
    expect((await numberEvents('kmod-Nodes#1', [body('dev-1')])).map((e) => e.seq)).toEqual([3]);
    expect(transactions()).toHaveLength(1);
  });

  it('other failures fail the batch (the event source mapping retries it)', async () => {
    ddb.on(UpdateCommand).resolves({ Attributes: { value: 1 } });
    ddb.on(TransactWriteCommand).rejects(Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' }));
    await expect(numberEventBatch([{ sourceId: 'kmod-Nodes#1', bodies: [body('dev-1')] }])).rejects.toThrow('throttled');
  });

  it('records without events write nothing', async () => {
    expect(await numberEventBatch([{ sourceId: 'kmod-Nodes#1', bodies: [] }])).toEqual([]);
    expect(ddb.calls()).toHaveLength(0);
  });
});
