/**
 * Operators' live events over the WebSocket API (issue 11 item 2, docs/adr/0028-live-events.md):
 * the same `wsUrl` dial-out agents use, `?token=<jwt>` as the REST API takes it. Refused without a
 * good token; bad messages answered with an error frame; a subscriber to all receives every
 * `deployment.status` of a deployment in seq order through `Succeeded`, with its stages; a client
 * that drops mid-way and reconnects with `after` misses nothing; subscriptions filter.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;

beforeAll(async () => {
  cloud = await startTestCloud({ fleet: { Development: 3, QA: 1, Staging: 2, Production: 1 } });
}, 120_000);
afterAll(async () => {
  await cloud?.stop();
});

type Frame = { type: string; seq?: number; deploymentId?: string; status?: string; [k: string]: unknown };

/** A client that keeps every frame it receives and can wait for one. */
class Client {
  readonly frames: Frame[] = [];
  private waiters: { test: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      this.frames.push(f);
      const due = this.waiters.filter((w) => w.test(f));
      this.waiters = this.waiters.filter((w) => !due.includes(w));
      for (const w of due) w.resolve(f);
    });
  }

  static open(token: string | undefined): Promise<Client> {
    const url = token === undefined ? cloud.wsUrl : `${cloud.wsUrl}?token=${encodeURIComponent(token)}`;
    const ws = new WebSocket(url);
    const client = new Client(ws);
    return new Promise((resolve, reject) => {
      ws.once('open', () => resolve(client));
      ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode })));
      ws.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.ws.send(typeof msg === 'string' ? msg : JSON.stringify(msg));
  }

  next(test: (f: Frame) => boolean, timeoutMs = 30_000): Promise<Frame> {
    const found = this.frames.find(test);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching frame in ${timeoutMs} ms; got ${JSON.stringify(this.frames.slice(-5))}`)), timeoutMs);
      this.waiters.push({
        test,
        resolve: (f) => {
          clearTimeout(t);
          resolve(f);
        },
      });
    });
  }

  async request(msg: unknown, type: string): Promise<Frame> {
    const before = this.frames.length;
    this.send(msg);
    return this.next((f) => this.frames.indexOf(f) >= before && (f.type === type || f.type === 'error'));
  }

  close(): Promise<void> {
    return new Promise((r) => {
      this.ws.once('close', () => r());
      this.ws.close();
    });
  }
}

const refusal = (token: string | undefined) =>
  Client.open(token).then(
    (c) => {
      c.ws.close();
      return 0;
    },
    (e: { status?: number }) => e.status ?? -1,
  );

const statusEvents = (c: Client, id: string) => c.frames.filter((f) => f.type === 'deployment.status' && f.deploymentId === id);

describe('events over WebSocket', () => {
  it('refuses a connect without a token, with a bad one and with one of a disabled principal', async () => {
    expect(await refusal(undefined)).toBe(401);
    expect(await refusal('not-a-jwt')).toBe(401);
    // A token the issuer signed for a principal the directory does not hold is refused as the REST API refuses it.
    expect(await refusal(await cloud.issuer.mint({ sub: 'nobody-known', username: 'nobody', groups: ['Admin'] }))).toBe(401);
    // An expired token.
    expect(await refusal(await cloud.issuer.mint({ sub: 'dev-viewer', username: 'vic.viewer', groups: ['Viewer'] }, { ttlSeconds: -60 }))).toBe(401);
    // A disabled principal (the dev Viewer, enabled again after) is refused at connect.
    expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-viewer/disable', { token: cloud.tokens.Admin })).status).toBe(200);
    try {
      expect(await refusal(cloud.tokens.Viewer)).toBe(401);
    } finally {
      expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-viewer/enable', { token: cloud.tokens.Admin })).status).toBe(200);
    }
    expect(await refusal(cloud.tokens.Viewer)).toBe(0);
  });

  it('lets one user open many connections at once: each connection is the subject of its own audit chain', async () => {
    // On the user's one chain, 200 at once contended for its head and $connect failed with 500.
    const clients = await Promise.all(Array.from({ length: 40 }, () => Client.open(cloud.tokens.Viewer)));
    await Promise.all(clients.map((c) => c.close()));
    const r = await api(cloud, 'GET', '/api/v1/audit?actor=dev-viewer&order=newest&limit=200', { token: cloud.tokens.Admin });
    expect(r.status).toBe(200);
    const opened = (r.body.items as { action: string; subject: string; chain: string; seq: number }[]).filter((e) => e.action === 'events.connection.opened');
    expect(opened.length).toBeGreaterThanOrEqual(40);
    for (const e of opened) {
      expect(e.subject).toMatch(/^connection#/);
      expect([e.chain, e.seq]).toEqual([`${e.subject}|security`, 1]);
    }
    expect(new Set(opened.map((e) => e.chain)).size).toBe(opened.length);
    const verify = await api(cloud, 'GET', '/api/v1/audit/verify', { token: cloud.tokens.Admin });
    expect(verify.body.verified, JSON.stringify(verify.body)).toBe(true);
  });

  it('answers bad messages with an error frame and keeps the connection', async () => {
    const c = await Client.open(cloud.tokens.Viewer);
    expect(await c.request('not json', 'error')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'subscribe' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'subscribe', environment: 'Moon' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'subscribe', all: true, deploymentId: 'x' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'subscribe', all: true, after: -1 }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'dance' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ type: 'ping' }, 'pong')).toMatchObject({ type: 'pong' });
    // Still open and working.
    expect(await c.request({ action: 'subscribe', all: true }, 'subscribed')).toMatchObject({ type: 'subscribed', subscription: 'all' });
    expect(await c.request({ action: 'unsubscribe', all: true }, 'unsubscribed')).toMatchObject({ type: 'unsubscribed', subscription: 'all' });
    // A message never picks the connect or disconnect route: it is an unknown action, and the subscription stays live.
    expect(await c.request({ action: '$disconnect' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: '$connect' }, 'subscribed')).toMatchObject({ type: 'error', code: 'BadMessage' });
    expect(await c.request({ action: 'subscribe', all: true }, 'subscribed')).toMatchObject({ type: 'subscribed' });
    // An `after` beyond the newest event is acknowledged as the newest, never as a cursor past it.
    const newest = (await c.request({ action: 'subscribe', environment: 'QA' }, 'subscribed')).seq as number;
    const ahead = await c.request({ action: 'subscribe', environment: 'QA', after: 9_007_199_254_740_991 }, 'subscribed');
    const newestAfter = (await c.request({ action: 'subscribe', environment: 'QA' }, 'subscribed')).seq as number;
    expect(ahead).toMatchObject({ type: 'subscribed', replayed: 0 });
    expect(ahead.seq).toBeGreaterThanOrEqual(newest);
    expect(ahead.seq).toBeLessThanOrEqual(newestAfter);
    await c.close();
  });

  it('holds at most 100 subscriptions per connection: the next is an error frame, a repeated one is fine', async () => {
    const c = await Client.open(cloud.tokens.Viewer);
    for (let i = 0; i < 100; i++) expect((await c.request({ action: 'subscribe', deploymentId: `dep-${i}` }, 'subscribed')).type, String(i)).toBe('subscribed');
    expect(await c.request({ action: 'subscribe', deploymentId: 'dep-100' }, 'subscribed')).toMatchObject({ type: 'error', code: 'TooManySubscriptions' });
    expect((await c.request({ action: 'subscribe', deploymentId: 'dep-7' }, 'subscribed')).type).toBe('subscribed');
    expect((await c.request({ action: 'unsubscribe', deploymentId: 'dep-7' }, 'unsubscribed')).type).toBe('unsubscribed');
    expect((await c.request({ action: 'subscribe', deploymentId: 'dep-100' }, 'subscribed')).type).toBe('subscribed');
    await c.close();
  });

  it('ends the open session of a principal disabled after it connected: no more events, no replay', async () => {
    const viewer = await Client.open(cloud.tokens.Viewer);
    const admin = await Client.open(cloud.tokens.Admin);
    for (const c of [viewer, admin]) expect((await c.request({ action: 'subscribe', all: true }, 'subscribed')).type).toBe('subscribed');
    const closed = new Promise<void>((r) => viewer.ws.once('close', () => r()));
    expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-viewer/disable', { token: cloud.tokens.Admin })).status).toBe(200);
    try {
      const started = await api(cloud, 'POST', '/api/v1/deployments', {
        token: cloud.tokens.Deployer,
        body: { moduleName: 'demo-kernel', version: '1.0.0', targetEnvironment: 'Development' },
      });
      expect(started.status).toBe(202);
      const id = started.body.executionId as string;
      // (waitForDeployment reads as the Viewer, who is disabled here: the Admin's stream says when it is done.)
      await admin.next((f) => f.type === 'deployment.status' && f.deploymentId === id && f.status === 'Succeeded', 90_000);
      await closed;
      expect(statusEvents(viewer, id)).toEqual([]);
      expect(statusEvents(admin, id).map((f) => f.status)).toEqual(['Pending', 'Running', 'Succeeded']);
    } finally {
      expect((await api(cloud, 'POST', '/api/v1/admin/users/dev-viewer/enable', { token: cloud.tokens.Admin })).status).toBe(200);
    }
    await admin.close();
  });

  it('delivers every deployment.status in seq order through Succeeded; a client that reconnects with after misses nothing', async () => {
    const all = await Client.open(cloud.tokens.Viewer);
    const dropper = await Client.open(cloud.tokens.Deployer);
    const production = await Client.open(cloud.tokens.Approver);
    const other = await Client.open(cloud.tokens.Viewer);
    for (const [c, msg] of [
      [all, { action: 'subscribe', all: true }],
      [dropper, { action: 'subscribe', all: true }],
      [production, { action: 'subscribe', environment: 'Production' }],
      [other, { action: 'subscribe', deploymentId: 'some-other-deployment' }],
    ] as const)
      expect((await c.request(msg, 'subscribed')).type).toBe('subscribed');

    const started = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(started.status).toBe(202);
    const id = started.body.executionId as string;

    // The dropper goes away after its first event of this deployment, and comes back later.
    const first = await dropper.next((f) => f.deploymentId === id);
    const lastSeen = Math.max(...dropper.frames.filter((f) => typeof f.seq === 'number').map((f) => f.seq!));
    await dropper.close();
    expect(first.seq).toBeLessThanOrEqual(lastSeen);

    const done = await waitForDeployment(cloud, id);
    expect(done.status).toBe('Succeeded');
    await all.next((f) => f.type === 'deployment.status' && f.deploymentId === id && f.status === 'Succeeded');

    const seen = statusEvents(all, id);
    // Each status once, in the order the record went through them (created Pending, then Running, then Succeeded).
    expect(seen.map((f) => f.status)).toEqual(['Pending', 'Running', 'Succeeded']);
    // Strictly increasing seq, in the order received; every event carries at, seq and its environment.
    const seqs = all.frames.filter((f) => f.deploymentId === id).map((f) => f.seq!);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    for (const f of all.frames.filter((x) => x.deploymentId === id)) expect(f).toMatchObject({ at: expect.any(String), environment: 'Development' });
    // Stage progress: the Development stage's nodes counted through to all three.
    const stages = all.frames.filter((f) => f.type === 'deployment.stage' && f.deploymentId === id && f.stage === 'Development');
    expect(stages.at(-1)).toMatchObject({ status: 'Succeeded', nodesTotal: 3, nodesDeployed: 3 });
    // Node changes came too (each node's new version), with the environment's totals.
    await all.next((f) => f.type === 'cluster.metrics' && f.environment === 'Development' && (f.versions as any)?.['demo-kernel']?.['1.1.0'] === 3);
    expect(all.frames.some((f) => f.type === 'node.status' && f.environment === 'Development')).toBe(true);

    // Reconnect with after: the replay and whatever comes live together are exactly what `all` got.
    const back = await Client.open(cloud.tokens.Deployer);
    const ack = await back.request({ action: 'subscribe', all: true, after: lastSeen }, 'subscribed');
    expect(ack).toMatchObject({ type: 'subscribed', subscription: 'all' });
    expect(ack.replayed).toBeGreaterThan(0);
    const before = dropper.frames.filter((f) => f.deploymentId === id);
    const combined = [...before, ...back.frames.filter((f) => f.deploymentId === id)];
    const bySeq = new Map(combined.map((f) => [f.seq, f]));
    expect([...bySeq.keys()].sort((a, b) => a! - b!)).toEqual(seqs);
    expect(statusEvents(back, id).map((f) => f.status)).toContain('Succeeded');

    // Subscriptions filter: a Production subscriber and one for another deployment saw none of it.
    expect(production.frames.filter((f) => f.deploymentId === id)).toEqual([]);
    expect(other.frames.filter((f) => f.deploymentId === id)).toEqual([]);
    // A deployment subscription with after replays that deployment only.
    const one = await Client.open(cloud.tokens.Viewer);
    const oneAck = await one.request({ action: 'subscribe', deploymentId: id, after: 0 }, 'subscribed');
    expect(oneAck.replayed).toBe(seqs.length);
    expect(one.frames.filter((f) => f.seq !== undefined && f.type !== 'subscribed').every((f) => f.deploymentId === id)).toBe(true);

    for (const c of [all, back, production, other, one]) await c.close();
  }, 180_000);

  it('an approval gate: approval.requested with who may decide, WaitingForApproval, approval.decided, then Running again, in seq order', async () => {
    const c = await Client.open(cloud.tokens.Approver);
    expect((await c.request({ action: 'subscribe', environment: 'Staging' }, 'subscribed')).type).toBe('subscribed');
    const started = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Staging' },
    });
    expect(started.status).toBe(202);
    const id = started.body.executionId as string;
    const done = await waitApprovingGates(cloud, id, 150_000);
    expect(done.status, JSON.stringify(done.failure)).toBe('Succeeded');
    await c.next((f) => f.type === 'deployment.status' && f.deploymentId === id && f.status === 'Succeeded');
    const mine = c.frames.filter((f) => f.deploymentId === id);
    const kinds = mine.filter((f) => f.type !== 'deployment.stage').map((f) => (f.type === 'deployment.status' ? `status:${f.status}` : f.type));
    expect(kinds).toEqual([
      'status:Pending',
      'status:Running',
      'approval.requested',
      'status:WaitingForApproval',
      'approval.decided',
      'status:Running',
      'status:Succeeded',
    ]);
    expect(mine.find((f) => f.type === 'approval.requested')).toMatchObject({ environment: 'Staging', stage: 'Staging', approvers: ['dev-approver'] });
    expect(mine.find((f) => f.type === 'approval.decided')).toMatchObject({ environment: 'Staging', status: 'Approved' });
    const seqs = mine.map((f) => f.seq!);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    await c.close();
  }, 200_000);

  it('pings operator connections (the keepalive the schedule runs)', async () => {
    const c = await Client.open(cloud.tokens.Viewer);
    const r = (await cloud.lambda.invoke('kmod-WsEvents', {})) as { pinged: number };
    expect(r.pinged).toBeGreaterThanOrEqual(1);
    expect(await c.next((f) => f.type === 'ping')).toMatchObject({ type: 'ping', seq: expect.any(Number), at: expect.any(String) });
    await c.close();
  });
});
