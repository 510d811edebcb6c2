/** The web console's plain logic (console/src/model.ts): what its pages show and offer. */
import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../../functions/catalog.ts';
import {
  auditQuery,
  batchesDone,
  concerns,
  decisionRight,
  environmentView,
  EventLog,
  MAY,
  may,
  sessionFromToken,
  expired,
  steeringButtons,
  waveCharts,
  wavesOf,
  whoMayDecide,
  type Cluster,
  type Stage,
} from '../../../console/src/model.ts';
import { deployment } from '../scripts/deploymentFixture.ts';

const jwt = (claims: Record<string, unknown>) => `h.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.s`;
const roles = (...r: ('Admin' | 'Deployer' | 'Viewer' | 'Approver')[]) => ({ roles: r, sub: 'me' });

describe('sessions', () => {
  it('reads the user and roles of a Cognito-shaped access token, ignoring unknown groups', () => {
    const s = sessionFromToken(jwt({ sub: 'u1', username: 'dan', 'cognito:groups': ['Deployer', 'Other'], exp: 2_000_000_000 }))!;
    expect(s).toMatchObject({ sub: 'u1', username: 'dan', roles: ['Deployer'], expiresAt: 2_000_000_000 });
    expect(expired(s, 1_999_999_999_000)).toBe(false);
    expect(expired(s, 2_000_000_000_000)).toBe(true);
    expect(sessionFromToken('not-a-jwt')).toBeUndefined();
    expect(sessionFromToken('a.!!!.c')).toBeUndefined();
    // A token without groups (a service client) has no role: it sees, and may, nothing extra.
    expect(sessionFromToken(jwt({ sub: 'c1' }))!.roles).toEqual([]);
  });

  it("who may do what is the route catalog's authorization matrix", () => {
    const rolesOf = (method: string, path: string) => [...(ROUTES.find((r) => r.method === method && r.path === path)!.roles as readonly string[])].sort();
    expect([...MAY.deploy].sort()).toEqual(rolesOf('POST', '/api/v1/deployments'));
    for (const a of ['cancel', 'pause', 'resume', 'promote', 'rollback'])
      expect([...MAY.steer].sort()).toEqual(rolesOf('POST', `/api/v1/deployments/{executionId}/${a}`));
    expect([...MAY.decide].sort()).toEqual(rolesOf('POST', '/api/v1/approvals/deployments/{executionId}/approve'));
    expect([...MAY.decide].sort()).toEqual(rolesOf('POST', '/api/v1/approvals/deployments/{executionId}/reject'));
    expect([...MAY.audit].sort()).toEqual(rolesOf('GET', '/api/v1/audit'));
    expect([...MAY.admin].sort()).toEqual(rolesOf('GET', '/api/v1/admin/users'));
    expect(may(roles('Viewer'), 'steer')).toBe(false);
    expect(may(undefined, 'steer')).toBe(false);
  });
});

const canaryStage = (status: Stage['status'], details: Record<string, unknown> = {}): Stage => ({
  name: 'Production',
  kind: 'environment',
  environment: 'Production',
  strategy: 'Canary',
  status,
  details,
});

describe('steering buttons', () => {
  const state = (d: ReturnType<typeof deployment>) =>
    Object.fromEntries(steeringButtons(d, roles('Deployer')).map((b) => [b.action, b.disabledReason ?? 'enabled']));

  it('a Viewer and an Approver get none', () => {
    expect(steeringButtons(deployment('Running'), roles('Viewer'))).toEqual([]);
    expect(steeringButtons(deployment('Running'), roles('Approver'))).toEqual([]);
  });

  it('a running canary may be cancelled, paused and promoted; not resumed or rolled back', () => {
    expect(state(deployment('Running', { stages: [canaryStage('Running')] }))).toEqual({
      cancel: 'enabled',
      pause: 'enabled',
      resume: 'not paused',
      promote: 'enabled',
      rollback: 'still running (a failing deployment rolls back by itself)',
    });
  });

  it('a paused canary resumes; it is not promoted until then', () => {
    const hold = { requestedBy: 'dev-deployer', requestedAt: '2026-11-29T12:00:00Z', onDeadline: 'resume' as const };
    expect(state(deployment('Running', { stages: [canaryStage('Running')], hold }))).toMatchObject({
      pause: 'already paused',
      resume: 'enabled',
      promote: 'paused: resume first',
    });
  });

  it('outside a canary only cancel applies; a cancel in progress stops the canary actions', () => {
    expect(state(deployment('WaitingForApproval', { stages: [canaryStage('Pending')] }))).toMatchObject({
      cancel: 'enabled',
      pause: 'only a running canary can be paused, resumed or promoted',
      promote: 'only a running canary can be paused, resumed or promoted',
    });
    const cancellation = { requestedBy: 'x', requestedAt: '2026-11-29T12:00:00Z' };
    expect(state(deployment('Running', { stages: [canaryStage('Running')], cancellation }))).toMatchObject({ cancel: 'enabled', pause: 'being cancelled' });
  });

  it('a finished deployment rolls back, once', () => {
    expect(state(deployment('Succeeded'))).toMatchObject({ cancel: 'already Succeeded', pause: 'already Succeeded', rollback: 'enabled' });
    expect(state(deployment('RolledBack')).rollback).toBe('already rolled back');
    const rollback = { status: 'Running' as const, requestedBy: 'x', requestedAt: '2026-11-29T12:00:00Z' };
    expect(state(deployment('Failed', { rollback })).rollback).toBe('a rollback is running');
  });
});

describe('timeline', () => {
  it('batches done from the nodes deployed', () => {
    const s = (status: Stage['status'], nodesDeployed: number, batches?: number) => ({
      status,
      nodesTotal: 10,
      nodesDeployed,
      details: batches ? { batches } : {},
    });
    expect(batchesDone(s('Running', 0))).toBeUndefined();
    expect(batchesDone(s('Running', 0, 4))).toEqual([0, 4]);
    expect(batchesDone(s('Running', 3, 4))).toEqual([1, 4]);
    expect(batchesDone(s('Running', 9, 4))).toEqual([3, 4]);
    expect(batchesDone(s('Running', 10, 4))).toEqual([4, 4]);
    expect(batchesDone(s('Succeeded', 0, 4))).toEqual([4, 4]);
  });

  it('canary waves in order, charted per metric as baseline versus canary', () => {
    const metric = (m: string, baseline: number, canary: number, verdict = 'pass') => ({ metric: m, unit: 'ms', means: { baseline, canary }, verdict });
    const details = {
      batches: 4,
      wave10: { wave: 10, percent: 100, nodes: 10, passed: true, metrics: [] },
      wave2: { wave: 2, percent: 30, nodes: 3, passed: false, metrics: [metric('latencyMs', 20, 31, 'fail')] },
      wave1: { wave: 1, percent: 10, nodes: 1, passed: true, metrics: [metric('latencyMs', 20, 21), metric('errorRatePercent', 0.4, 0.5)] },
      wave1Traffic: { requests: 5 },
    };
    const waves = wavesOf(details);
    expect(waves.map((w) => w.wave)).toEqual([1, 2, 10]);
    expect(waveCharts(waves)).toEqual([
      { metric: 'latencyMs', unit: 'ms', waves: [1, 2], baseline: [20, 20], canary: [21, 31], verdict: 'fail' },
      { metric: 'errorRatePercent', unit: 'ms', waves: [1], baseline: [0.4], canary: [0.5], verdict: 'pass' },
    ]);
    expect(wavesOf(undefined)).toEqual([]);
  });
});

const cluster = (extra: Partial<Cluster> = {}): Cluster => ({
  environment: 'Staging',
  strategy: 'BlueGreen',
  requiresApproval: true,
  nodeCount: 4,
  healthyNodes: 4,
  unhealthyNodes: 0,
  convergingNodes: 0,
  anomalousNodes: 0,
  moduleVersions: { 'demo-kernel': { '1.0.0': 1, '1.1.0': 3 }, alpha: { '2.0.0': 4 } },
  desiredModules: { 'demo-kernel': { version: '1.1.0', deploymentId: 'd' } },
  degraded: false,
  degradedModules: {},
  traffic: { router: 'local', weighted: true, canary: null },
  activeColour: 'green',
  colours: { blue: 2, green: 2 },
  ...extra,
});

describe('environments at a glance', () => {
  it('versions per module, most nodes first, with the desired version and the live colour', () => {
    const v = environmentView(cluster());
    expect(v.modules).toEqual([
      { module: 'alpha', versions: [{ version: '2.0.0', nodes: 4 }], desired: undefined },
      {
        module: 'demo-kernel',
        versions: [
          { version: '1.1.0', nodes: 3 },
          { version: '1.0.0', nodes: 1 },
        ],
        desired: '1.1.0',
      },
    ]);
    expect(v.colour).toEqual({ active: 'green', blue: 2, green: 2 });
    expect(v.health).toBe('ok');
    expect(v.unreported).toBe(0);
  });

  it('health: unhealthy or degraded is bad, converging or anomalous a warning, nothing reported unknown', () => {
    expect(environmentView(cluster({ healthyNodes: 3, unhealthyNodes: 1 })).health).toBe('bad');
    expect(environmentView(cluster({ degraded: true, degradedModules: { 'demo-kernel': {} } }))).toMatchObject({
      health: 'bad',
      degradedModules: ['demo-kernel'],
    });
    expect(environmentView(cluster({ healthyNodes: 3, convergingNodes: 1 })).health).toBe('warn');
    expect(environmentView(cluster({ anomalousNodes: 1 })).health).toBe('warn');
    expect(environmentView(cluster({ healthyNodes: 0 }))).toMatchObject({ health: 'unknown', unreported: 4 });
    expect(environmentView(cluster({ nodeCount: 0, healthyNodes: 0 })).health).toBe('ok');
  });
});

describe('approvals', () => {
  const gate = { status: 'Pending' as const, approvers: ['dev-approver'], requestedBy: 'dev-deployer', decisions: [], quorum: 1 };
  it('listed approvers and Admins decide; never the requester, never twice, never a Viewer', () => {
    expect(decisionRight(gate, { roles: ['Approver'], sub: 'dev-approver' })).toEqual({ may: true });
    expect(decisionRight(gate, { roles: ['Admin'], sub: 'someone' })).toEqual({ may: true });
    expect(decisionRight(gate, { roles: ['Approver'], sub: 'other' }).why).toBe('you are not an approver of this environment');
    expect(decisionRight(gate, { roles: ['Viewer'], sub: 'dev-approver' }).why).toBe('only Approvers and Admins decide');
    expect(decisionRight(gate, { roles: ['Admin'], sub: 'dev-deployer' }).why).toBe('nobody approves their own deployment');
    const decided = { ...gate, quorum: 2, decisions: [{ approver: 'dev-approver', decision: 'approve' as const, at: 'x', via: 'api' as const }] };
    expect(decisionRight(decided, { roles: ['Approver'], sub: 'dev-approver' }).why).toBe('you have decided already');
    expect(decisionRight({ ...gate, status: 'Approved' }, { roles: ['Admin'], sub: 'a' }).why).toBe('already Approved');
    expect(decisionRight(gate, undefined).may).toBe(false);
  });
  it('says who may decide', () => {
    expect(whoMayDecide(gate)).toBe('dev-approver or an Admin');
    expect(whoMayDecide({ approvers: [], quorum: 2 })).toBe('no listed approver or an Admin (2 approvals needed)');
  });
});

describe('audit search', () => {
  it('drops blanks, sends times as instants, refuses what the API would', () => {
    expect(auditQuery({ deploymentId: ' dep-1 ', subject: '', actor: '  ', order: 'newest' })).toEqual({ deploymentId: 'dep-1', order: 'newest' });
    expect(auditQuery({ from: '2026-11-29T10:00:00Z', category: 'approval' })).toEqual({ from: '2026-11-29T10:00:00.000Z', category: 'approval' });
    expect(() => auditQuery({ from: 'yesterday' })).toThrow(/not a date/);
    expect(() => auditQuery({ category: 'everything' })).toThrow(/unknown category/);
  });
});

describe('live events', () => {
  it('each seq once (replay and live delivery overlap), and the last seq to resume after', () => {
    const log = new EventLog();
    const e = (seq: number) => ({ type: 'deployment.status', seq, deploymentId: 'd' });
    expect(log.accept(e(5))).toBe(true);
    expect(log.accept(e(5))).toBe(false);
    expect(log.accept(e(3))).toBe(true);
    expect(log.lastSeq).toBe(5);
    expect(log.accept({ type: 'subscribed', seq: 9 })).toBe(false);
    expect(log.lastSeq).toBe(9);
    expect(log.accept({ type: 'error' })).toBe(true);
  });
  it('a page reloads for the events that concern it only', () => {
    expect(concerns({ type: 'deployment.stage', deploymentId: 'a' }, { deploymentId: 'a' })).toBe(true);
    expect(concerns({ type: 'deployment.stage', deploymentId: 'b' }, { deploymentId: 'a' })).toBe(false);
    expect(concerns({ type: 'approval.requested', deploymentId: 'b' }, { approvals: true })).toBe(true);
    expect(concerns({ type: 'node.status', environment: 'QA' }, { clusters: true })).toBe(true);
    expect(concerns({ type: 'node.status', environment: 'QA' }, { deployments: true })).toBe(false);
  });
});
