import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { api, startTestCloud, waitForDeployment } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';

const NODES = 10_000;
const NODES_PER_BATCH = 100;
let cloud: LocalCloud;

// One process hosts the orchestrator and 10,000 simulated agents here, so agent calls are given
// more time than on a real network; the batching and limits under test are the production ones.
beforeAll(async () => {
  cloud = await startTestCloud({
    fleet: { Development: NODES, QA: 0, Staging: 0, Production: 0 },
    env: { NODES_PER_BATCH: String(NODES_PER_BATCH), AGENT_CONCURRENCY: '8', AGENT_TIMEOUT_MS: '120000' },
  });
}, 300_000);
afterAll(async () => {
  await cloud?.stop();
});

describe('a 10,000-node environment', () => {
  it('deploys Direct within Step Functions limits: history grows with batches, not nodes', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(r.status).toBe(202);
    const d = await waitForDeployment(cloud, r.body.executionId, undefined, 600_000);
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const dev = d.stages.find((s: { name: string }) => s.name === 'Development');
    expect(dev).toMatchObject({ nodesTotal: NODES, nodesDeployed: NODES, nodesFailed: 0, details: { batches: NODES / NODES_PER_BATCH } });

    const pipeline = cloud.sfn.history(`arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${r.body.executionId}`);
    const direct = cloud.sfn.history(`arn:aws:states:us-east-1:000000000000:execution:kmod-Direct:${r.body.executionId}-Development`);
    const batches = NODES / NODES_PER_BATCH;
    console.log(
      `history: Direct ${direct.length} events for ${batches} batches (${(direct.length / batches).toFixed(2)} per batch), Pipeline ${pipeline.length}`,
    );
    // Per batch: a deploy Map iteration (start/end + a Lambda task of 5 events, as on AWS) and half a
    // verify iteration (two batches per health check after one stabilisation loop for the environment).
    expect(direct.length).toBeLessThanOrEqual(13 * batches + 30);
    expect(direct.length).toBeGreaterThanOrEqual(10 * batches);
    expect(direct.length + pipeline.length).toBeLessThan(25_000);
    expect(pipeline.length).toBeLessThan(60);

    const versions = new Set([...cloud.fleet.nodes.values()].map((n) => n.agent.modules['demo-kernel']?.version));
    expect([...versions]).toEqual(['1.1.0']);
    // State carried by the executions stays small: ids and batch numbers, never node lists.
    const input = JSON.parse(direct[0].executionStartedEventDetails ? (direct[0].executionStartedEventDetails as { input: string }).input : '{}');
    expect(JSON.stringify(input).length).toBeLessThan(1024);
  }, 600_000);
});
