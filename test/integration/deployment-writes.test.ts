/**
 * The table writes a Direct deployment makes per node (issue 14, docs/performance.md "Where a
 * deployment's time goes"): DynamoDB Local's writes are what limits a deployment here, as
 * DynamoDB's per-request price does on AWS. Pinned for a 40-node environment (one batch):
 *
 * - the Nodes table: each node's module record and its Validation health record, once each, in
 *   one transaction per batch (per 100 nodes) each — not an `UpdateItem` per node and record;
 * - the live events those node changes make: numbered per stream batch (one counter update and a
 *   transaction per ~50 records), not an `UpdateItem` and a transaction per node change;
 * - so the whole deployment, everything included (stages, audit, locks: mostly per deployment),
 *   makes fewer than 2 table write calls per node (it made ~3.4 per node on top of those before:
 *   an UpdateItem per module record and per health record, and an UpdateItem and a transaction
 *   per node change's live event).
 *
 * Counted by the local cloud's call meter (`/_local/meter`, all operations) and, per table, by an
 * SDK middleware on the same clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { onClientCreated, type SdkClientLike } from '../../functions/lib/aws.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const NODES = 40;
const WRITES = ['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems'];

/** Write calls by table and operation, and the items each wrote, while `counting`. */
interface TableWrite {
  table: string;
  operation: string;
  keys: string[];
  expression?: string;
  /** Live events stored (the Events table): how many of them are node.status events. */
  nodeEvents: number;
}
const writes: TableWrite[] = [];
let writeCalls = 0;
let counting = false;
const unhook = onClientCreated((client: SdkClientLike, service) => {
  if (service !== 'dynamodb') return;
  client.middlewareStack.add(
    ((next: (args: { input: Record<string, any> }) => Promise<unknown>, context: { commandName?: string }) => async (args: { input: Record<string, any> }) => {
      const operation = (context.commandName ?? '').replace(/Command$/, '');
      if (counting && WRITES.includes(operation)) {
        writeCalls++;
        const i = args.input;
        const items: { TableName: string; Key?: Record<string, unknown>; Item?: Record<string, any>; UpdateExpression?: string }[] =
          operation === 'TransactWriteItems'
            ? i.TransactItems.map((t: Record<string, any>) => Object.values(t)[0])
            : operation === 'BatchWriteItem'
              ? Object.entries(i.RequestItems as Record<string, { PutRequest?: { Item: any }; DeleteRequest?: { Key: any } }[]>).flatMap(([table, rs]) =>
                  rs.map((r) => ({ TableName: table, Item: r.PutRequest?.Item, Key: r.DeleteRequest?.Key })),
                )
              : [i as any];
        const byTable = new Map<string, TableWrite>();
        for (const item of items) {
          const w = byTable.get(item.TableName) ?? { table: item.TableName, operation, keys: [], expression: item.UpdateExpression, nodeEvents: 0 };
          w.keys.push(JSON.stringify(item.Key ?? item.Item?.nodeId ?? null));
          if (typeof item.Item?.payload === 'string' && JSON.parse(item.Item.payload).type === 'node.status') w.nodeEvents++;
          byTable.set(item.TableName, w);
        }
        writes.push(...byTable.values());
      }
      return next(args);
    }) as never,
    { step: 'initialize', name: 'testTableWrites' } as never,
  );
});

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({ fleet: { Development: NODES, QA: 0, Staging: 0, Production: 0 } });
}, 180_000);

afterAll(async () => {
  unhook();
  await cloud?.stop();
});

const meterWrites = () => {
  const calls = cloud.meter.total().calls;
  return WRITES.reduce((n, op) => n + (calls[`dynamodb:${op}`] ?? 0), 0);
};

/** Until the tables' change streams are drained: no write for a while (the live events are numbered from them). */
async function settled(): Promise<void> {
  let last = -1;
  for (let quiet = 0; quiet < 4; ) {
    await new Promise((r) => setTimeout(r, 500));
    const now = meterWrites();
    quiet = now === last ? quiet + 1 : 0;
    last = now;
  }
}

describe('a Direct deployment’s table writes', () => {
  it(`${NODES} nodes: each node's records written once, a transaction per batch; under 2 write calls per node in all`, async () => {
    await settled();
    const before = meterWrites();
    writes.length = 0;
    writeCalls = 0;
    const started = Date.now();
    counting = true;
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const d = await waitForDeployment(cloud, r.body.executionId);
    expect(d.status).toBe('Succeeded');
    await settled();
    counting = false;
    const total = meterWrites() - before;

    // The Nodes table: two transactions (the batch's module records, Validation's health records), every node once in each.
    const nodes = writes.filter((w) => w.table.endsWith('Nodes'));
    expect(nodes.map((w) => [w.operation, w.keys.length])).toEqual([
      ['TransactWriteItems', NODES],
      ['TransactWriteItems', NODES],
    ]);
    expect(nodes[0].expression).toBe('SET modules.#m = :v');
    expect(nodes[1].expression).toBe('SET lastHealth = :h, lastMetrics = :m, anomaly = :a');
    for (const w of nodes) expect(new Set(w.keys).size).toBe(NODES);

    // Every node's record reflects both writes.
    const cluster = await api(cloud, 'GET', '/api/v1/clusters/Development', { token: cloud.tokens.Viewer });
    expect(cluster.body.nodes).toHaveLength(NODES);
    for (const n of cluster.body.nodes) {
      expect(n.modules['demo-kernel'].version).toBe('1.1.0');
      expect(Date.parse(n.health.at)).toBeGreaterThanOrEqual(started - 1000);
    }

    // Live events: each node change (new version, then new health) is a node.status event; the
    // stream brings them in batches, each numbered with one counter update and stored in a
    // transaction per ~50 records: a handful of calls for the 80 events, not two per event.
    const events = writes.filter((w) => w.table.endsWith('Events'));
    const nodeEventWrites = events.filter((w) => w.nodeEvents > 0);
    expect(nodeEventWrites.reduce((n, w) => n + w.nodeEvents, 0)).toBe(2 * NODES);
    expect(nodeEventWrites.every((w) => w.operation === 'TransactWriteItems')).toBe(true);
    expect(nodeEventWrites.length).toBeLessThanOrEqual(4);
    expect(events.filter((w) => w.operation === 'UpdateItem').length).toBeLessThanOrEqual(events.filter((w) => w.operation === 'TransactWriteItems').length);

    // Everything the deployment wrote (stages, audit, locks, targets, live events), counted by the
    // meter: 55 calls on 2026-11-30, most of them per deployment rather than per node; it was
    // ~290 before (3.4 calls per node on top of those).
    expect(total).toBe(writeCalls);
    expect(total).toBeLessThan(2 * NODES);
  }, 240_000);
});
