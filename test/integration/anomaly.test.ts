/**
 * Anomaly detection on the local cloud, outside any deployment: Staging's nodes build their
 * baselines from live refreshes of the cluster view; one node is degraded through the fleet control
 * API (+30 ms latency at once, whatever version it runs) and is flagged in the cluster view,
 * audited once, and its environment's approver gets mail from SNS; the fault is cleared and so is
 * the flag (audited and mailed once too).
 */
import { QueryCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import type { Email } from '../../localcloud/sns.ts';
import { api, startTestCloud } from './harness.ts';

let cloud: LocalCloud;
const NODE = 'stg-02';
const APPROVER_MAIL = 'amy.approver@example.com';

beforeAll(async () => {
  cloud = await startTestCloud({ env: { ANOMALY_SIGMAS: '4', ANOMALY_MIN_SAMPLES: '10', ANOMALY_ALPHA: '0.1' } });
});
afterAll(async () => {
  await cloud?.stop();
});

interface ClusterNode {
  nodeId: string;
  anomalies: { metric: string; since: string; value: number; baselineMean: number; baselineDeviation: number; score: number }[];
}

async function view(refresh: boolean) {
  const r = await api(cloud, 'GET', `/api/v1/clusters/Staging${refresh ? '?refresh=true' : ''}`, { token: cloud.tokens.Viewer });
  expect(r.status, JSON.stringify(r.body)).toBe(200);
  return r.body as { anomalousNodes: number; nodes: ClusterNode[] };
}

async function nodeAudit() {
  const r = await cloud.ddb.send(
    new QueryCommand({ TableName: cloud.tableNames.audit, KeyConditionExpression: 'subject = :s', ExpressionAttributeValues: { ':s': `node#${NODE}` } }),
  );
  return (r.Items ?? []).filter((i) => String(i.action).startsWith('node.anomaly.')) as { action: string; actor: string; details: Record<string, unknown> }[];
}

async function mailTo(to: string): Promise<Email[]> {
  const all = ((await (await fetch(`${cloud.servicesUrl}/_mailbox/messages.json`)).json()) as { messages: Email[] }).messages;
  return all.filter((m) => m.to === to && m.subject.includes(`Staging/${NODE}`));
}

async function refreshUntil(done: (v: Awaited<ReturnType<typeof view>>) => boolean, max: number) {
  for (let i = 0; i < max; i++) {
    const v = await view(true);
    if (done(v)) return { view: v, refreshes: i + 1 };
  }
  throw new Error(`not reached within ${max} refreshes`);
}

it('flags a degraded node outside deployments in the cluster view, audits and mails the raise and the clear once each', async () => {
  const deployments = await api(cloud, 'GET', '/api/v1/deployments', { token: cloud.tokens.Viewer });
  expect(deployments.body.items.filter((d: { status: string }) => ['Running', 'Pending'].includes(d.status))).toEqual([]);

  // Baselines: 12 reports per node (ANOMALY_MIN_SAMPLES 10), nothing flagged on a healthy fleet.
  for (let i = 0; i < 12; i++) {
    const v = await view(true);
    expect(v.nodes.flatMap((n) => n.anomalies)).toEqual([]);
    expect(v.anomalousNodes).toBe(0);
  }

  const put = await api(cloud, 'PUT', `/_local/fleet/nodes/${NODE}/faults`, { body: { degradeNow: true, degrade: { latencyMs: 30 } } });
  expect(put.status).toBe(200);
  const raised = await refreshUntil((v) => v.nodes.find((n) => n.nodeId === NODE)!.anomalies.length > 0, 3);
  expect(raised.refreshes).toBe(1);
  const flagged = raised.view.nodes.find((n) => n.nodeId === NODE)!;
  expect(flagged.anomalies).toHaveLength(1);
  expect(flagged.anomalies[0]).toMatchObject({ metric: 'latencyMs' });
  expect(flagged.anomalies[0].value).toBeGreaterThan(45);
  expect(flagged.anomalies[0].baselineMean).toBeLessThan(25);
  expect(flagged.anomalies[0].score).toBeGreaterThan(4);
  expect(raised.view.anomalousNodes).toBe(1);
  expect(raised.view.nodes.filter((n) => n.nodeId !== NODE).flatMap((n) => n.anomalies)).toEqual([]);

  // Still degraded: flagged on every view (stored, also without a live refresh), audited and mailed once.
  for (let i = 0; i < 3; i++) expect((await view(true)).nodes.find((n) => n.nodeId === NODE)!.anomalies[0].since).toBe(flagged.anomalies[0].since);
  expect((await view(false)).anomalousNodes).toBe(1);
  const metrics = await api(cloud, 'GET', '/api/v1/clusters/Staging/metrics', { token: cloud.tokens.Viewer });
  expect(metrics.body.nodes.find((n: { nodeId: string }) => n.nodeId === NODE).anomalies).toMatchObject([{ metric: 'latencyMs' }]);
  let audit = await nodeAudit();
  expect(audit.map((a) => a.action)).toEqual(['node.anomaly.raised']);
  expect(audit[0]).toMatchObject({ actor: 'system:anomaly', details: { environment: 'Staging', nodeId: NODE, metric: 'latencyMs' } });
  let mail = await mailTo(APPROVER_MAIL);
  expect(mail.map((m) => m.subject)).toEqual([`[kmod] Anomaly on Staging/${NODE}: latencyMs`]);
  expect(mail[0].body).toMatch(/^RAISED Staging\/stg-02: latencyMs [\d.]+ is [\d.]+ deviations above its baseline/);

  expect((await api(cloud, 'DELETE', `/_local/fleet/nodes/${NODE}/faults`)).status).toBe(200);
  const cleared = await refreshUntil((v) => v.nodes.find((n) => n.nodeId === NODE)!.anomalies.length === 0, 3);
  expect(cleared.refreshes).toBe(1);
  expect(cleared.view.anomalousNodes).toBe(0);
  audit = await nodeAudit();
  expect(audit.map((a) => a.action)).toEqual(['node.anomaly.raised', 'node.anomaly.cleared']);
  mail = await mailTo(APPROVER_MAIL);
  // The mailbox lists newest first.
  expect(mail.map((m) => m.subject)).toEqual([`[kmod] Anomaly cleared on Staging/${NODE}: latencyMs`, `[kmod] Anomaly on Staging/${NODE}: latencyMs`]);
  expect(mail[0].body).toMatch(/^CLEARED Staging\/stg-02: latencyMs back to [\d.]+ \(baseline [\d.]+, -?[\d.]+ deviations\), flagged since /);
}, 180_000);
