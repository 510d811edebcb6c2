/**
 * PublishNodeHealth on the local cloud (issue 12, "nodes per status"; docs/adr/0030-telemetry.md):
 * one run, as the every-minute EventBridge schedule invokes it, prints the CloudWatch gauge
 * NodesByHealth{environment,status} in EMF, zeros included, with the same counts `/metrics` serves
 * as kmod_nodes_by_health.
 */
import { UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { CLOUDWATCH_METRICS } from '../../functions/domain/cloudwatchMetrics.ts';
import { ENVIRONMENTS } from '../../functions/domain/environments.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { functionArn } from '../../localcloud/lambda.ts';
import { startTestCloud } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  // The local cloud keeps EMF off by default (its /metrics serves the counts); this test reads it.
  cloud = await startTestCloud({ env: { POWERTOOLS_METRICS_DISABLED: 'false' } });
}, 120_000);
afterAll(async () => {
  await cloud?.stop();
});

/** One scheduled run: the NodesByHealth documents it printed, as `<environment>|<status>` → value. */
async function publish(): Promise<{ docs: Record<string, any>[]; gauges: Map<string, number> }> {
  const lines: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    lines.push(String(chunk));
    return true;
  });
  try {
    await cloud.lambda.invoke(functionArn('PublishNodeHealth'), {});
  } finally {
    spy.mockRestore();
  }
  const docs = lines
    .flatMap((l) => l.split('\n'))
    .filter((l) => l.includes('"_aws"') && l.includes(`"${CLOUDWATCH_METRICS.nodesByHealth}"`))
    .map((l) => JSON.parse(l) as Record<string, any>);
  return { docs, gauges: new Map(docs.map((d) => [`${d.environment}|${d.status}`, d[CLOUDWATCH_METRICS.nodesByHealth] as number])) };
}

/** kmod_nodes_by_health of /metrics, as `<environment>|<status>` → value. */
async function scraped(): Promise<Map<string, number>> {
  const text = await (await fetch(`${cloud.apiUrl}/metrics`)).text();
  return new Map([...text.matchAll(/^kmod_nodes_by_health\{environment="(\w+)",status="([^"]+)"\} (\d+)$/gm)].map((m) => [`${m[1]}|${m[2]}`, Number(m[3])]));
}

describe('PublishNodeHealth', () => {
  it('publishes nodes per environment and health as EMF gauges, zeros included, equal to /metrics', async () => {
    // One Production node reported unhealthy, one QA node healthy: the counts are not all of one kind.
    const [prod] = [...cloud.fleet.nodes.values()].filter((n) => n.agent.nodeId.startsWith('prod-'));
    const [qa] = [...cloud.fleet.nodes.values()].filter((n) => n.agent.nodeId.startsWith('qa-'));
    for (const [environment, nodeId, status] of [
      ['Production', prod.agent.nodeId, 'unhealthy'],
      ['QA', qa.agent.nodeId, 'healthy'],
    ] as const) {
      await cloud.ddb.send(
        new UpdateCommand({
          TableName: cloud.tableNames.nodes,
          Key: { environment, nodeId },
          UpdateExpression: 'SET lastHealth = :h',
          ExpressionAttributeValues: { ':h': { status, checkedAt: new Date().toISOString() } },
        }),
      );
    }

    const { docs, gauges } = await publish();
    for (const doc of docs) {
      expect(doc._aws.CloudWatchMetrics).toEqual([
        {
          Namespace: CLOUDWATCH_METRICS.namespace,
          Dimensions: [['service', 'environment', 'status']],
          Metrics: [{ Name: CLOUDWATCH_METRICS.nodesByHealth, Unit: 'Count' }],
        },
      ]);
      expect(doc.service).toBe(CLOUDWATCH_METRICS.service);
    }
    // Every environment's every status, each once.
    for (const environment of ENVIRONMENTS)
      for (const status of ['healthy', 'unhealthy', 'Unknown']) expect(gauges.has(`${environment}|${status}`), `${environment} ${status}`).toBe(true);
    expect(docs).toHaveLength(gauges.size);
    expect(gauges.get('Production|unhealthy')).toBe(1);
    expect(gauges.get('QA|healthy')).toBeGreaterThanOrEqual(1);

    // The same counts as /metrics (which leaves the zeros out).
    const prom = await scraped();
    expect(prom.size).toBeGreaterThan(0);
    for (const [series, value] of prom) expect(gauges.get(series), series).toBe(value);
    for (const [series, value] of gauges) if (!prom.has(series)) expect(value, series).toBe(0);
  });
});
