/**
 * The end-to-end suite: one suite for any target (test/e2e/target.ts). It runs in `npm test`
 * against the embedded local cloud, and unchanged against LocalStack (`npm run test:localstack`),
 * AWS or a running `npm start` (`KMOD_TARGET_URL=… npx vitest run test/e2e/deployments.test.ts`).
 * It speaks HTTP to the API only; tests that need something only some targets have say so, and on
 * other targets are skipped with the reason printed.
 */
import { afterAll, beforeAll, describe, expect, it, type TestContext } from 'vitest';
import { CAPABILITY_NAMES, type Capabilities, type MailMessage, openTarget, type TargetRole } from './target.ts';

const target = await openTarget();
console.info(`end-to-end suite against ${target.name}`);
afterAll(() => target.close());

const MODULE = 'demo-kernel';
const VERSIONS = ['1.0.0', '1.1.0'] as const;
const FINISHED = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'];
/** A test that runs a deployment (or several) through the pipeline. */
const DEPLOY_TIMEOUT = target.deploymentTimeoutMs * 3;

interface Answer {
  status: number;
  headers: Headers;
  body: any;
}

async function call(
  method: string,
  path: string,
  opts: { as?: TargetRole; token?: string; body?: unknown; headers?: Record<string, string> } = {},
): Promise<Answer> {
  const headers: Record<string, string> = { ...opts.headers };
  const token = opts.token ?? (opts.as ? await target.token(opts.as) : undefined);
  if (token) headers.authorization = `Bearer ${token}`;
  if (opts.body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${target.apiUrl}${path}`, { method, headers, body: opts.body === undefined ? undefined : JSON.stringify(opts.body) });
  const text = await r.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, headers: r.headers, body };
}

async function waitFor(executionId: string, statuses = FINISHED): Promise<any> {
  const deadline = Date.now() + target.deploymentTimeoutMs;
  for (;;) {
    const r = await call('GET', `/api/v1/deployments/${executionId}`, { as: 'Viewer' });
    if (r.status === 200 && statuses.includes(r.body.status)) return r.body;
    if (Date.now() > deadline) throw new Error(`deployment ${executionId} still ${r.body?.status} after ${target.deploymentTimeoutMs} ms`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

/** Approve every gate the deployment stops at, as the Approver, through the API; its final state. */
async function approvingGates(executionId: string): Promise<any> {
  for (;;) {
    const d = await waitFor(executionId, [...FINISHED, 'WaitingForApproval']);
    if (d.status !== 'WaitingForApproval') return d;
    const r = await call('POST', `/api/v1/approvals/deployments/${executionId}/approve`, { as: 'Approver', body: { reason: 'end-to-end suite' } });
    expect(r.status, JSON.stringify(r.body)).toBe(200);
    await waitFor(executionId, [...FINISHED, 'Running']);
  }
}

async function requestDeployment(version: string, targetEnvironment: string, headers: Record<string, string> = {}): Promise<string> {
  const r = await call('POST', '/api/v1/deployments', { as: 'Deployer', body: { moduleName: MODULE, version, targetEnvironment }, headers });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId;
}

/**
 * The version an environment serves, as the API reports it: what most of its nodes run, or in a
 * blue-green environment most nodes of the live colour (the other colour stands by on the old one).
 */
async function runningVersion(environment: string): Promise<string | undefined> {
  const r = await call('GET', `/api/v1/clusters/${environment}`, { as: 'Viewer' });
  const live = (r.body.nodes as { colour?: string; modules: Record<string, { version: string }> }[]).filter(
    (n) => !r.body.activeColour || n.colour === r.body.activeColour,
  );
  const counts = new Map<string, number>();
  for (const n of live) if (n.modules[MODULE]) counts.set(n.modules[MODULE].version, (counts.get(n.modules[MODULE].version) ?? 0) + 1);
  return [...counts].sort(([, a], [, b]) => b - a)[0]?.[0];
}
const otherThan = (version: string | undefined) => (version === VERSIONS[1] ? VERSIONS[0] : VERSIONS[1]);
const stageOf = (d: any, name: string) => d.stages.find((s: { name: string }) => s.name === name);

/** What this target offers; filled in beforeAll. */
const nodes: Record<string, string[]> = {};
const missingVersions: string[] = [];

beforeAll(async () => {
  const clusters = await call('GET', '/api/v1/clusters', { as: 'Viewer' });
  expect(clusters.status, `the target must answer GET /api/v1/clusters: ${JSON.stringify(clusters.body)}`).toBe(200);
  for (const c of clusters.body.items as { environment: string }[]) {
    const one = await call('GET', `/api/v1/clusters/${c.environment}`, { as: 'Viewer' });
    nodes[c.environment] = (one.body.nodes as { nodeId: string; status?: string }[]).filter((n) => n.status !== 'Decommissioned').map((n) => n.nodeId);
  }
  // Register the versions the suite deploys where the target trusts a signer the suite holds.
  for (const version of VERSIONS) {
    if ((await call('GET', `/api/v1/modules/${MODULE}/versions/${version}`, { as: 'Viewer' })).status === 200) continue;
    const signed = target.capabilities.signDemoModule?.(version);
    if (!signed) {
      missingVersions.push(version);
      continue;
    }
    const r = await call('POST', '/api/v1/modules', { as: 'Deployer', body: signed });
    expect(r.status, JSON.stringify(r.body)).toBe(201);
  }
});

/** Skip (printing why) unless the target has the module versions and nodes in these environments. */
function requireFleet(ctx: TestContext, environments: string[]): void {
  const reasons = [
    ...(missingVersions.length ? [`${MODULE} ${missingVersions.join(', ')} not registered and no signer the target trusts (KMOD_TARGET_SIGNING_PKI)`] : []),
    ...environments.filter((e) => !nodes[e]?.length).map((e) => `no nodes in ${e} (enrol agents first)`),
  ];
  if (!reasons.length) return;
  console.warn(`skipped on ${target.name}: "${ctx.task.name}": ${reasons.join('; ')}`);
  ctx.skip();
}

/** A test that needs capabilities; where they are missing it is skipped and the reason printed. */
function itNeeds(needs: (keyof Capabilities)[], title: string, fn: (ctx: TestContext) => Promise<void>, timeout = DEPLOY_TIMEOUT): void {
  const missing = needs.filter((c) => !target.capabilities[c]);
  if (!missing.length) return void it(title, fn, timeout);
  console.warn(`skipped on ${target.name}: "${title}" needs ${missing.map((c) => CAPABILITY_NAMES[c]).join(' and ')}`);
  it.skip(title, fn);
}

describe('the API as any client sees it', () => {
  it('answers /health without a token, and refuses calls with no token or a forged one (401, JSON)', async () => {
    const health = await call('GET', '/health');
    expect(health.status).toBe(200);
    expect(health.body).toMatchObject({ status: 'ok', service: 'kmod-orchestrator' });
    const none = await call('GET', '/api/v1/deployments');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ code: 'Unauthorized', message: expect.any(String) });
    const viewer = await target.token('Viewer');
    const forged = `${viewer.split('.').slice(0, 2).join('.')}.${Buffer.from('not the signature').toString('base64url')}`;
    expect((await call('GET', '/api/v1/deployments', { token: forged })).status).toBe(401);
  });

  it('enforces roles (403, JSON), and a refused request changes nothing', async () => {
    const before = await call('GET', '/api/v1/deployments?limit=100', { as: 'Viewer' });
    const viewerDeploys = await call('POST', '/api/v1/deployments', {
      as: 'Viewer',
      body: { moduleName: MODULE, version: VERSIONS[1], targetEnvironment: 'Development' },
    });
    expect(viewerDeploys.status).toBe(403);
    expect(viewerDeploys.body).toMatchObject({ code: 'Forbidden' });
    expect((await call('GET', '/api/v1/audit?category=deployment', { as: 'Deployer' })).status).toBe(403);
    expect((await call('GET', '/api/v1/admin/users', { as: 'Approver' })).status).toBe(403);
    expect((await call('POST', '/api/v1/approvals/deployments/dep-none/approve', { as: 'Viewer', body: { reason: 'x' } })).status).toBe(403);
    const after = await call('GET', '/api/v1/deployments?limit=100', { as: 'Viewer' });
    expect(after.body.items.map((d: { executionId: string }) => d.executionId)).toEqual(before.body.items.map((d: { executionId: string }) => d.executionId));
  });

  it('refuses bad input with 400 and a stable code', async () => {
    const r = await call('POST', '/api/v1/deployments', { as: 'Deployer', body: { moduleName: MODULE, version: 'latest', targetEnvironment: 'Moon' } });
    expect(r.status).toBe(400);
    expect(r.body).toMatchObject({ code: 'ValidationError', message: expect.any(String) });
  });
});

describe('a deployment through the pipeline', () => {
  let deployed: { executionId: string; from: string | undefined; to: string };

  it(
    'deploys demo-kernel to Development: every stage succeeds and the nodes run the new version; the same Idempotency-Key is the same deployment',
    async (ctx) => {
      requireFleet(ctx, ['Development']);
      const from = await runningVersion('Development');
      const to = otherThan(from);
      const key = `e2e-${Date.now()}`;
      const executionId = await requestDeployment(to, 'Development', { 'Idempotency-Key': key });
      expect(await requestDeployment(to, 'Development', { 'Idempotency-Key': key })).toBe(executionId);
      const d = await waitFor(executionId);
      expect(d.status, JSON.stringify(d.stages)).toBe('Succeeded');
      expect(d.stages.map((s: { name: string; status: string }) => `${s.name} ${s.status}`)).toEqual([
        'Build Succeeded',
        'Test Succeeded',
        'SecurityScan Succeeded',
        'Development Succeeded',
        'Validation Succeeded',
      ]);
      expect(stageOf(d, 'Development')).toMatchObject({ strategy: 'Direct', nodesTotal: nodes.Development.length, nodesDeployed: nodes.Development.length });
      expect(await runningVersion('Development')).toBe(to);
      deployed = { executionId, from, to };
    },
    DEPLOY_TIMEOUT,
  );

  it(
    'rolls it back on demand: the nodes run the previous version again',
    async (ctx) => {
      if (!deployed) {
        console.warn(`skipped on ${target.name}: "${ctx.task.name}": nothing was deployed (the test before was skipped or failed)`);
        return ctx.skip();
      }
      const r = await call('POST', `/api/v1/deployments/${deployed.executionId}/rollback`, { as: 'Deployer', body: { reason: 'end-to-end suite' } });
      expect(r.status, JSON.stringify(r.body)).toBe(202);
      const d = await waitFor(deployed.executionId, ['RolledBack', 'Failed']);
      expect(d.status).toBe('RolledBack');
      expect(d.rollback).toMatchObject({ status: 'Succeeded', reason: 'end-to-end suite' });
      if (deployed.from) expect(await runningVersion('Development')).toBe(deployed.from);
      const again = await call('POST', `/api/v1/deployments/${deployed.executionId}/rollback`, { as: 'Deployer', body: {} });
      expect(again.status).toBe(409);
    },
    DEPLOY_TIMEOUT,
  );

  let approved: string | undefined;

  it(
    'stops at the Staging approval gate; the approver approves through the API and the deployment succeeds',
    async (ctx) => {
      requireFleet(ctx, ['Development', 'QA', 'Staging']);
      const to = otherThan(await runningVersion('Staging'));
      const executionId = await requestDeployment(to, 'Staging');
      const waiting = await waitFor(executionId, [...FINISHED, 'WaitingForApproval']);
      expect(waiting.status).toBe('WaitingForApproval');
      expect(stageOf(waiting, 'Staging').approval).toMatchObject({ status: 'Pending', quorum: expect.any(Number) });
      const pending = await call('GET', '/api/v1/approvals/pending', { as: 'Viewer' });
      expect(pending.body.items.map((a: { executionId: string }) => a.executionId)).toContain(executionId);
      // The requester is a Deployer: not allowed to decide gates at all.
      expect((await call('POST', `/api/v1/approvals/deployments/${executionId}/approve`, { as: 'Deployer', body: { reason: 'mine' } })).status).toBe(403);
      const d = await approvingGates(executionId);
      expect(d.status, JSON.stringify(d.stages)).toBe('Succeeded');
      expect(stageOf(d, 'Staging')).toMatchObject({ status: 'Succeeded', strategy: 'BlueGreen' });
      expect(await runningVersion('Staging')).toBe(to);
      approved = executionId;
    },
    DEPLOY_TIMEOUT,
  );

  it(
    'records the deployment in the audit trail, readable by an Admin',
    async (ctx) => {
      if (!approved) {
        console.warn(`skipped on ${target.name}: "${ctx.task.name}": no approved deployment (the test before was skipped or failed)`);
        return ctx.skip();
      }
      const r = await call('GET', `/api/v1/audit?deploymentId=${approved}`, { as: 'Admin' });
      expect(r.status).toBe(200);
      const actions = r.body.items.map((i: { action: string }) => i.action);
      expect(actions[0]).toBe('deployment.requested');
      expect(actions).toEqual(expect.arrayContaining(['approval.requested', 'approval.approved']));
      const decided = r.body.items.find((i: { action: string }) => i.action === 'approval.approved');
      expect(decided).toMatchObject({
        subject: `deployment#${approved}`,
        at: expect.any(String),
        details: expect.objectContaining({ environment: 'Staging' }),
      });
    },
    DEPLOY_TIMEOUT,
  );

  it(
    'a rejection at the gate ends the deployment Failed, with the reason',
    async (ctx) => {
      requireFleet(ctx, ['Development', 'QA', 'Staging']);
      const executionId = await requestDeployment(otherThan(await runningVersion('Staging')), 'Staging');
      expect((await waitFor(executionId, [...FINISHED, 'WaitingForApproval'])).status).toBe('WaitingForApproval');
      const r = await call('POST', `/api/v1/approvals/deployments/${executionId}/reject`, { as: 'Approver', body: { reason: 'freeze until Monday' } });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      const d = await waitFor(executionId);
      expect(d.status).toBe('Failed');
      expect(d.failure).toMatchObject({ stage: 'Staging', code: 'ApprovalRejected', message: expect.stringContaining('freeze until Monday') });
    },
    DEPLOY_TIMEOUT,
  );
});

describe("with the local fleet's fault injection", () => {
  itNeeds(['fleetFaults'], 'a node that fails to load makes the QA rollout roll back: every node keeps the version it ran', async (ctx) => {
    requireFleet(ctx, ['Development', 'QA']);
    const from = await runningVersion('QA');
    const to = otherThan(from);
    // Past the first Rolling batch, so there is something to roll back.
    const failing = nodes.QA[nodes.QA.length - 1];
    await target.capabilities.fleetFaults!.set(failing, { failLoad: [to] });
    try {
      const d = await waitFor(await requestDeployment(to, 'QA'));
      expect(d.status).toBe('RolledBack');
      expect(stageOf(d, 'QA')).toMatchObject({ status: 'RolledBack', message: expect.stringContaining(failing) });
      expect(await runningVersion('QA')).toBe(from);
      const qa = await call('GET', '/api/v1/clusters/QA', { as: 'Viewer' });
      expect(Object.keys(qa.body.moduleVersions[MODULE])).toEqual([from]);
    } finally {
      await target.capabilities.fleetFaults!.clear(failing);
    }
  });

  itNeeds(
    ['fleetFaults', 'shortCanaryBake'],
    'a degraded canary fails its wave in Production, with the numbers, and the deployment is rolled back',
    async (ctx) => {
      requireFleet(ctx, ['Development', 'QA', 'Staging', 'Production']);
      const from = await runningVersion('Production');
      // The first wave takes the lowest node ids.
      const canary = [...nodes.Production].sort()[0];
      await target.capabilities.fleetFaults!.set(canary, { degrade: { errorRatePercent: 4 } });
      try {
        const d = await approvingGates(await requestDeployment(otherThan(from), 'Production'));
        expect(d.status).toBe('RolledBack');
        expect(stageOf(d, 'Production')).toMatchObject({ status: 'RolledBack', strategy: 'Canary', message: expect.stringMatching(/error rate/) });
        expect(await runningVersion('Production')).toBe(from);
      } finally {
        await target.capabilities.fleetFaults!.clear(canary);
      }
    },
  );
});

describe('with a mailbox', () => {
  itNeeds(['mailbox'], 'the approver gets an email with personal approve and reject links that open a confirmation page', async (ctx) => {
    requireFleet(ctx, ['Development', 'QA', 'Staging']);
    const version = otherThan(await runningVersion('Staging'));
    const executionId = await requestDeployment(version, 'Staging');
    expect((await waitFor(executionId, [...FINISHED, 'WaitingForApproval'])).status).toBe('WaitingForApproval');
    // The gate records itself (WaitingForApproval) before it mails: give the mail a moment.
    let mail: MailMessage | undefined;
    for (let tries = 0; !mail && tries < 40; tries++) {
      if (tries) await new Promise((res) => setTimeout(res, 250));
      mail = (await target.capabilities.mailbox!.messages()).find(
        (m) => m.subject === `Approval needed: ${MODULE}@${version} to Staging` && m.body.includes(executionId),
      );
    }
    expect(mail, 'approval email').toBeDefined();
    const approve = /^Approve: (\S+)$/m.exec(mail!.body)?.[1];
    expect(approve).toContain('/approvals/links/');
    // Opening the link (as a mail scanner would) shows a page and decides nothing.
    const page = await fetch(approve!);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(`Approve ${MODULE} ${version} for Staging?`);
    expect((await call('GET', `/api/v1/deployments/${executionId}`, { as: 'Viewer' })).body.status).toBe('WaitingForApproval');
    expect((await call('POST', `/api/v1/approvals/deployments/${executionId}/reject`, { as: 'Approver', body: { reason: 'seen the mail' } })).status).toBe(200);
    expect((await waitFor(executionId)).status).toBe('Failed');
  });
});
