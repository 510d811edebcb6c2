/**
 * A deployment's per-node records written in one transaction per 100 nodes (functions/lib/nodes.ts
 * recordNodeModules, recordNodeHealthBatch; issue 14): every update keeps its own condition, a
 * report that raises an anomaly flag is still written alone with its audit event in the same
 * transaction, and a refused transaction (which wrote nothing) is redone node by node so only the
 * node whose own write fails fails. The calls are checked with aws-sdk-client-mock;
 * test/integration/deployment-writes.test.ts runs the same code on DynamoDB Local.
 */
import { DynamoDBDocumentClient, GetCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HealthReport } from '../../../functions/agent/protocol.ts';
import type { Environment } from '../../../functions/domain/environments.ts';
import type { NodeAnomalyState } from '../../../functions/domain/anomaly.ts';
import { anomalyAfterReport } from '../../../functions/lib/anomaly.ts';
import { recordNodeHealthBatch, recordNodeModules } from '../../../functions/lib/nodes.ts';

const ddb = mockClient(DynamoDBDocumentClient);
const ENV: Environment = 'Development';
const refused = () =>
  new TransactionCanceledException({ message: 'Transaction cancelled', $metadata: {}, CancellationReasons: [{ Code: 'ConditionalCheckFailed' }] });

beforeEach(() => {
  ddb.reset();
  process.env.NODES_TABLE = 'kmod-Nodes';
  process.env.AUDIT_TABLE = 'kmod-Audit';
  // No APPROVERS: a raised flag notifies nobody (the notification is tested with the anomaly suites).
});
afterEach(() => {
  delete process.env.NODES_TABLE;
  delete process.env.AUDIT_TABLE;
});

type Tx = {
  Update?: { Key: { nodeId: string }; ConditionExpression: string; UpdateExpression: string };
  Put?: { TableName: string; Item: Record<string, unknown> };
}[];
const transactions = () => ddb.commandCalls(TransactWriteCommand).map((c) => c.args[0].input.TransactItems as Tx);

const report = (nodeId: string, latencyMs: number, at = new Date()): HealthReport => ({
  nodeId,
  protocolVersion: '1',
  status: 'healthy',
  reasons: [],
  at: at.toISOString(),
  uptimeSeconds: 100,
  modules: {},
  metrics: { nodeId, at: at.toISOString(), cpuPercent: 20, memoryPercent: 40, latencyMs, errorRatePercent: 0.5, requestsPerSecond: 10 },
});

/** A baseline of 30 steady reports: a latency far above it raises a flag. */
function steadyBaseline(nodeId: string): NodeAnomalyState {
  let state: NodeAnomalyState | undefined;
  for (let i = 0; i < 30; i++) {
    state = anomalyAfterReport(
      { environment: ENV, nodeId, anomaly: state },
      report(nodeId, 20 + (i % 3)).metrics,
      new Date(Date.UTC(2026, 10, 29, 0, 0, i)),
    ).state;
  }
  return state!;
}

describe('module records of a batch', () => {
  it('one transaction per 100 nodes, each update conditional on its node existing', async () => {
    ddb.on(TransactWriteCommand).resolves({});
    const changes = Array.from({ length: 150 }, (_, i) => ({
      environment: ENV,
      nodeId: `dev-${i}`,
      module: 'demo-kernel',
      version: '1.1.0',
      previousVersion: '1.0.0',
    }));
    const results = await recordNodeModules(changes);
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const tx = transactions();
    expect(tx.map((t) => t.length)).toEqual([100, 50]);
    expect(tx.flat().map((i) => i.Update!.Key.nodeId)).toEqual(changes.map((c) => c.nodeId));
    for (const i of tx.flat()) {
      expect(i.Update!.ConditionExpression).toBe('attribute_exists(nodeId)');
      expect(i.Update!.UpdateExpression).toBe('SET modules.#m = :v');
    }
    expect(ddb.commandCalls(UpdateCommand)).toHaveLength(0);
  });

  it('a refused transaction is redone node by node: only the node whose own update fails fails', async () => {
    ddb.on(TransactWriteCommand).rejects(refused());
    ddb.on(UpdateCommand).resolves({});
    ddb
      .on(UpdateCommand, { Key: { environment: ENV, nodeId: 'dev-1' } })
      .rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    const changes = ['dev-0', 'dev-1', 'dev-2'].map((nodeId) => ({ environment: ENV, nodeId, module: 'demo-kernel', version: '1.1.0' }));
    const results = await recordNodeModules(changes);
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
    expect(ddb.commandCalls(UpdateCommand).map((c) => c.args[0].input.Key)).toEqual(changes.map(({ nodeId }) => ({ environment: ENV, nodeId })));
  });
});

describe('health reports of a validation', () => {
  it('quiet reports in one transaction, each conditional on the baseline read; a report raising a flag alone, with its audit event', async () => {
    ddb.on(TransactWriteCommand).resolves({});
    // The audit chain's head (none yet).
    ddb.on(GetCommand).resolves({});
    const nodes = Array.from({ length: 5 }, (_, i) => ({ environment: ENV, nodeId: `dev-${i}`, anomaly: steadyBaseline(`dev-${i}`) }));
    const reports = nodes.map((node) => ({ node, health: report(node.nodeId, node.nodeId === 'dev-3' ? 900 : 21) }));
    const results = await recordNodeHealthBatch(reports);

    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    const flagged = results[3] as PromiseFulfilledResult<NodeAnomalyState>;
    expect(Object.keys(flagged.value.flags)).toContain('latencyMs');
    const [quiet, alone] = transactions();
    expect(quiet.map((i) => i.Update!.Key.nodeId)).toEqual(['dev-0', 'dev-1', 'dev-2', 'dev-4']);
    for (const i of quiet) expect(i.Update!.ConditionExpression).toBe('attribute_exists(nodeId) AND anomaly.updatedAt = :prev');
    // The flagged node: its update and its audit event in one transaction (with the chain's head).
    expect(alone[0].Update!.Key.nodeId).toBe('dev-3');
    expect(alone.filter((i) => i.Put?.TableName === 'kmod-Audit').map((i) => i.Put!.Item.action)).toEqual(['node.anomaly.raised']);
    expect(transactions()).toHaveLength(2);
  });

  it('many quiet reports: transactions of 100, at most 4 in flight at once, every report written once', async () => {
    let inFlight = 0;
    let most = 0;
    ddb.on(TransactWriteCommand).callsFake(async () => {
      most = Math.max(most, ++inFlight);
      await new Promise((r) => setTimeout(r, 5));
      inFlight--;
      return {};
    });
    const nodes = Array.from({ length: 950 }, (_, i) => ({ environment: ENV, nodeId: `dev-${i}`, anomaly: undefined }));
    const results = await recordNodeHealthBatch(nodes.map((node) => ({ node, health: report(node.nodeId, 20) })));
    expect(results.every((r) => r.status === 'fulfilled')).toBe(true);
    const tx = transactions();
    expect(tx.map((t) => t.length)).toEqual([100, 100, 100, 100, 100, 100, 100, 100, 100, 50]);
    expect(
      tx
        .flat()
        .map((i) => i.Update!.Key.nodeId)
        .sort(),
    ).toEqual(nodes.map((n) => n.nodeId).sort());
    expect(most).toBe(4);
  });

  it('a refused transaction (a baseline moved meanwhile) is redone report by report', async () => {
    ddb.on(TransactWriteCommand).rejects(refused());
    ddb.on(UpdateCommand).resolves({});
    const nodes = ['dev-0', 'dev-1'].map((nodeId) => ({ environment: ENV, nodeId, anomaly: undefined }));
    const results = await recordNodeHealthBatch(nodes.map((node) => ({ node, health: report(node.nodeId, 20) })));
    expect(results.map((r) => r.status)).toEqual(['fulfilled', 'fulfilled']);
    const updates = ddb.commandCalls(UpdateCommand).map((c) => c.args[0].input);
    expect(updates.map((u) => u.Key)).toEqual(nodes.map(({ nodeId }) => ({ environment: ENV, nodeId })));
    for (const u of updates) expect(u.ConditionExpression).toBe('attribute_exists(nodeId) AND attribute_not_exists(anomaly)');
  });
});
