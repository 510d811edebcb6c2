/**
 * The correlation id end to end (issue 12, docs/adr/0030-telemetry.md): a Production deployment
 * started with an `x-correlation-id` leaves log lines of every function that worked on it carrying
 * that id (the API function that started it, every Step Functions task of the pipeline and of its
 * child state machines), its agent calls carry it, and the approvals (their own requests) log
 * their own ids with the deployment's execution id. The local cloud runs each invocation in the
 * Lambda runtime's concurrent InvokeStore, so the concurrent polls' and stream consumers' ids never
 * land on the deployment's lines.
 */
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { STATE_MACHINES } from '../../functions/catalog.ts';
import type { AgentRequest } from '../../functions/agent/agent.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { placeholders } from '../unit/asl.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({
    env: {
      CANARY_BAKE_SECONDS: '1',
      // The local cloud's console shows WARN and up; the deployment's INFO lines are what this test reads.
      POWERTOOLS_LOG_LEVEL: 'INFO',
    },
  });
}, 120_000);
afterAll(async () => {
  await cloud?.stop();
});

/** The functions the state machines invoke (their `${<Id>FunctionArn}` placeholders). */
const TASK_FUNCTIONS = new Set(Object.values(STATE_MACHINES).flatMap((s) => [...placeholders(s.file)].flatMap((p) => /^(\w+)FunctionArn$/.exec(p)?.[1] ?? [])));

type Line = { level: string; message: string; function_name?: string; correlationId?: string; executionId?: string; [k: string]: unknown };

describe('a Production deployment started with x-correlation-id', () => {
  it('leaves lines of every function that ran for it carrying that id; its agent calls carry it; approvals log their own', async () => {
    const correlationId = `it-corr-${Date.now().toString(36)}`;
    const output: string[] = [];
    const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
      output.push(String(chunk));
      return true;
    });
    // What the agents receive: every module operation's correlation header.
    const agentCalls: { nodeId: string; path: string; correlationId: unknown }[] = [];
    const restores: (() => void)[] = [];
    for (const node of cloud.fleet.nodes.values()) {
      const serve = node.agent.serve.bind(node.agent);
      node.agent.serve = async (req: AgentRequest) => {
        if (req.method === 'POST') agentCalls.push({ nodeId: node.agent.nodeId, path: req.path, correlationId: req.headers['x-correlation-id'] });
        return serve(req);
      };
      restores.push(() => {
        node.agent.serve = serve;
      });
    }
    const before = new Map(cloud.lambda.invocationsOf);
    let executionId = '';
    const approvals: string[] = [];
    try {
      const r = await api(cloud, 'POST', '/api/v1/deployments', {
        token: cloud.tokens.Deployer,
        headers: { 'x-correlation-id': correlationId },
        body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
      });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      expect(r.headers.get('x-correlation-id')).toBe(correlationId);
      executionId = r.body.executionId;
      // Approve each gate (Staging, Production) as its own request, with its own id.
      for (;;) {
        const d = await waitForDeployment(cloud, executionId, ['Succeeded', 'Failed', 'RolledBack', 'Cancelled', 'WaitingForApproval'], 120_000);
        if (d.status !== 'WaitingForApproval') {
          expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
          break;
        }
        const id = `it-approve-${approvals.length + 1}`;
        const a = await api(cloud, 'POST', `/api/v1/approvals/deployments/${executionId}/approve`, {
          token: cloud.tokens.Approver,
          headers: { 'x-correlation-id': id },
          body: { reason: 'looks good' },
        });
        expect(a.status, JSON.stringify(a.body)).toBe(200);
        approvals.push(id);
        await waitForDeployment(cloud, executionId, ['Succeeded', 'Failed', 'RolledBack', 'Cancelled', 'Running'], 120_000);
      }
      // Finalize records Succeeded and then ends its invocation: its line comes just after.
      const deadline = Date.now() + 15_000;
      while (!output.some((c) => c.includes('"function_name":"kmod-Finalize"') && c.includes(executionId))) {
        if (Date.now() > deadline) throw new Error('Finalize logged nothing within 15 s of the deployment succeeding');
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      spy.mockRestore();
      for (const restore of restores) restore();
    }

    const lines: Line[] = output
      .flatMap((chunk) => chunk.split('\n'))
      .filter((l) => l.startsWith('{') && l.includes('"level"'))
      .map((l) => JSON.parse(l) as Line);
    const ran = [...cloud.lambda.invocationsOf]
      .filter(([name, n]) => n > (before.get(name) ?? 0))
      .map(([name]) => name.replace(/^kmod-/, ''))
      .sort();
    const tasksRan = ran.filter((fn) => TASK_FUNCTIONS.has(fn));
    console.info(`functions that ran: ${ran.join(', ')}\ntask functions among them: ${tasksRan.join(', ')}`);

    // A Production deployment runs the pipeline's stages, both approval gates and every strategy's tasks.
    expect(tasksRan).toEqual(
      expect.arrayContaining([
        'Build',
        'Test',
        'SecurityScan',
        'PlanEnvironment',
        'DeployBatch',
        'StabiliseBatches',
        'VerifyBatch',
        'RequestApproval',
        'CanaryGate',
        'AnalyzeCanary',
        'SmokeTest',
        'SwitchTraffic',
        'CompleteEnvironment',
        'Validation',
        'Finalize',
      ]),
    );
    const linesOf = (fn: string) => lines.filter((l) => l.function_name === `kmod-${fn}` && l.executionId === executionId);
    for (const fn of tasksRan) {
      const own = linesOf(fn);
      expect(own.length, `${fn} logged no line for ${executionId}`).toBeGreaterThan(0);
      for (const l of own) expect(l.correlationId, `${fn}: ${JSON.stringify(l)}`).toBe(correlationId);
    }
    // The request that started it joins its id to the deployment's.
    expect(linesOf('ApiDeployments').filter((l) => l.message === 'deployment started')).toEqual([
      expect.objectContaining({ correlationId, executionId, route: 'POST /api/v1/deployments', environment: 'Production', module: 'demo-kernel' }),
    ]);
    // Nothing else wears the deployment's id: no concurrent poll's or stream consumer's line.
    const wearing = lines.filter((l) => l.correlationId === correlationId);
    expect(wearing.filter((l) => l.executionId !== executionId)).toEqual([]);
    expect(new Set(wearing.map((l) => l.function_name))).toEqual(new Set(['ApiDeployments', ...tasksRan].map((fn) => `kmod-${fn}`)));

    // The approvals are their own requests: their own ids, and the deployment's execution id.
    expect(approvals).toHaveLength(2);
    for (const id of approvals) {
      expect(lines.filter((l) => l.correlationId === id && l.message === 'request done')).toEqual([
        expect.objectContaining({ function_name: 'kmod-ApiApprovals', executionId, route: 'POST /api/v1/approvals/deployments/{executionId}/approve' }),
      ]);
    }

    // Every module operation an agent received carried the id (all 20 Production nodes, and the environments before).
    const deploys = agentCalls.filter((c) => c.path.endsWith('/deploy'));
    expect(new Set(deploys.map((c) => c.nodeId)).size).toBeGreaterThanOrEqual(20);
    expect(agentCalls.filter((c) => c.correlationId !== correlationId)).toEqual([]);
  }, 240_000);
});
