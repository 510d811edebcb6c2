import { afterEach, describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeAgent } from '../../../functions/agent/agent.ts';
import { MAX_CLOCK_SKEW_MS, ReplayCache, signRequest, verifyRequest, type AgentKey } from '../../../functions/agent/protocol.ts';

const k1: AgentKey = { id: 'k1', secret: 'first-secret' };
const k2: AgentKey = { id: 'k2', secret: 'second-secret' };

describe('agent request signing', () => {
  it('verifies a signed request and rejects changes, old timestamps and unknown keys', () => {
    const h = signRequest(k1, 'POST', '/v1/modules/mod/deploy', '{"a":1}', 1_000_000);
    expect(verifyRequest([k1], 'POST', '/v1/modules/mod/deploy', '{"a":1}', h, 1_000_000)).toEqual({ ok: true, keyId: 'k1' });
    expect(verifyRequest([k1], 'POST', '/v1/modules/mod/deploy', '{"a":2}', h, 1_000_000)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(verifyRequest([k1], 'POST', '/v1/modules/x/deploy', '{"a":1}', h, 1_000_000).ok).toBe(false);
    expect(verifyRequest([k1], 'POST', '/v1/modules/mod/deploy', '{"a":1}', h, 1_000_000 + 6 * 60_000)).toMatchObject({
      reason: expect.stringContaining('clock skew'),
    });
    expect(verifyRequest([k2], 'POST', '/v1/modules/mod/deploy', '{"a":1}', h, 1_000_000)).toMatchObject({ reason: 'unknown key id k1' });
    expect(verifyRequest([k1], 'GET', '/v1/health', '', {}, 0)).toMatchObject({ reason: 'missing signature headers' });
  });

  it('accepts both the current and the previous key during a rotation', () => {
    for (const key of [k1, k2]) {
      const h = signRequest(key, 'GET', '/v1/health', '');
      expect(verifyRequest([k2, k1], 'GET', '/v1/health', '', h).ok).toBe(true);
    }
  });
});

describe('replay protection (issue 15 defect 11)', () => {
  const path = '/v1/modules/mod/rollback';
  const body = '{"deploymentId":"d1:rollback","toVersion":"1.0.0"}';

  it('refuses an exact replay within the clock window; a freshly signed identical request passes', () => {
    const seen = new ReplayCache();
    const h = signRequest(k1, 'POST', path, body, 1_000_000);
    expect(verifyRequest([k1], 'POST', path, body, h, 1_000_000, seen)).toEqual({ ok: true, keyId: 'k1' });
    expect(verifyRequest([k1], 'POST', path, body, h, 1_000_000 + 60_000, seen)).toEqual({
      ok: false,
      reason: 'replayed request (this signature was already used)',
    });
    expect(verifyRequest([k1], 'POST', path, body, signRequest(k1, 'POST', path, body, 1_000_001), 1_000_001, seen).ok).toBe(true);
    // Past the window the timestamp check refuses it, so the cache may forget it.
    expect(verifyRequest([k1], 'POST', path, body, h, 1_000_000 + MAX_CLOCK_SKEW_MS + 1, seen)).toMatchObject({
      reason: expect.stringContaining('clock skew'),
    });
  });

  it('keeps entries only for the clock window, and refuses new requests rather than forget live ones when full', () => {
    const seen = new ReplayCache(2);
    const at = (ts: number, now = ts) => verifyRequest([k1], 'GET', '/v1/health', '', signRequest(k1, 'GET', '/v1/health', '', ts), now, seen);
    expect(at(1_000).ok).toBe(true);
    expect(at(2_000).ok).toBe(true);
    expect(at(3_000)).toEqual({ ok: false, reason: 'too many requests within the clock window (replay cache full)' });
    expect(seen.size).toBe(2);
    // Once the first two have left the window they are dropped, and there is room again.
    expect(at(2_000 + MAX_CLOCK_SKEW_MS + 1).ok).toBe(true);
    expect(seen.size).toBe(1);
  });

  it('records nothing for a request whose signature does not verify', () => {
    const seen = new ReplayCache();
    const forged = { ...signRequest(k1, 'POST', path, body, 1_000_000), 'x-agent-signature': 'A'.repeat(43) };
    expect(verifyRequest([k1], 'POST', path, body, forged, 1_000_000, seen).ok).toBe(false);
    expect(seen.size).toBe(0);
  });

  it('signs successive identical calls differently, so an orchestrator retry is never taken for a replay', () => {
    const signatures = new Set(Array.from({ length: 50 }, () => signRequest(k1, 'GET', '/v1/health', '')['x-agent-signature']));
    expect(signatures.size).toBe(50);
  });
});

describe('NodeAgent', () => {
  const agents: NodeAgent[] = [];
  afterEach(async () => {
    await Promise.all(agents.splice(0).map((a) => a.close()));
  });
  const bytes = Buffer.from('module v2');
  const sha = createHash('sha256').update(bytes).digest('hex');
  const make = (extra: Partial<ConstructorParameters<typeof NodeAgent>[0]> = {}) => {
    const a = new NodeAgent({ nodeId: 'n1', keys: () => [k1], simulation: true, initialModules: { mod: '1.0.0' }, fetchArtifact: async () => bytes, ...extra });
    agents.push(a);
    return a;
  };
  const call = async (base: string, method: string, path: string, body?: unknown, key = k1) => {
    const text = body === undefined ? '' : JSON.stringify(body);
    const r = await fetch(base + path, { method, body: method === 'POST' ? text : undefined, headers: signRequest(key, method, path, text) });
    return { status: r.status, body: (await r.json()) as any };
  };

  it('deploys idempotently per deployment id, over signed HTTP', async () => {
    const a = make();
    const base = await a.listen();
    const req = { deploymentId: 'd1', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha };
    const first = await call(base, 'POST', '/v1/modules/mod/deploy', req);
    expect(first).toEqual({ status: 200, body: { nodeId: 'n1', module: 'mod', version: '2.0.0', previousVersion: '1.0.0', replayed: false } });
    const again = await call(base, 'POST', '/v1/modules/mod/deploy', req);
    expect(again.body.replayed).toBe(true);
    expect(a.modules.mod.version).toBe('2.0.0');
    const back = await call(base, 'POST', '/v1/modules/mod/rollback', { deploymentId: 'd1:rb', toVersion: '1.0.0' });
    expect(back.body).toMatchObject({ version: '1.0.0', previousVersion: '2.0.0' });
    expect((await call(base, 'GET', '/v1/health')).body).toMatchObject({ status: 'healthy', modules: { mod: { version: '1.0.0' } } });
  });

  it('refuses unsigned or wrongly signed requests', async () => {
    const base = await make().listen();
    expect((await fetch(`${base}/v1/health`)).status).toBe(401);
    expect((await call(base, 'GET', '/v1/health', undefined, { id: 'k1', secret: 'wrong' })).status).toBe(401);
  });

  it('refuses a captured rollback replayed after a newer deploy (401) and stays on the newer version', async () => {
    const a = make();
    const base = await a.listen();
    expect((await call(base, 'POST', '/v1/modules/mod/deploy', { deploymentId: 'd1', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha })).status).toBe(
      200,
    );
    // The rollback of d1 is captured on the wire; its first delivery never completes (the node hangs),
    // so the agent has not recorded it as applied.
    const path = '/v1/modules/mod/rollback';
    const text = JSON.stringify({ deploymentId: 'd1:rollback', toVersion: '1.0.0' });
    const captured = signRequest(k1, 'POST', path, text);
    a.setFaults({ unresponsive: true });
    await expect(fetch(base + path, { method: 'POST', body: text, headers: captured, signal: AbortSignal.timeout(300) })).rejects.toThrow();
    a.setFaults({});
    // A newer deployment puts 2.0.0 on the node again.
    expect((await call(base, 'POST', '/v1/modules/mod/deploy', { deploymentId: 'd2', version: '2.0.0', artifactUrl: 'http://x/a', sha256: sha })).status).toBe(
      200,
    );
    const before = a.modules;
    const replay = await fetch(base + path, { method: 'POST', body: text, headers: captured });
    expect(replay.status).toBe(401);
    expect(await replay.json()).toEqual({ code: 'Unauthorized', message: 'replayed request (this signature was already used)' });
    expect(a.modules).toEqual(before);
    expect(a.modules.mod.version).toBe('2.0.0');
  });

  it('refuses an artifact whose digest differs', async () => {
    const base = await make().listen();
    const r = await call(base, 'POST', '/v1/modules/mod/deploy', { deploymentId: 'd2', version: '2.0.0', artifactUrl: 'http://x', sha256: 'b'.repeat(64) });
    expect(r).toMatchObject({ status: 422, body: { code: 'DigestMismatch' } });
  });

  it('injects faults: load failure, unhealthy after load, degraded metrics, unloading on rollback to none', async () => {
    const a = make();
    a.setFaults({ failLoad: ['2.0.0'] });
    await expect(a.deploy('m', { deploymentId: 'd3', version: '2.0.0', artifactUrl: 'x', sha256: sha })).rejects.toThrow(/failed to load/);
    a.setFaults({ unhealthyAfterLoad: true, degrade: { errorRatePercent: 20 } });
    expect(a.health().status).toBe('healthy');
    await a.deploy('m', { deploymentId: 'd4', version: '2.0.0', artifactUrl: 'x', sha256: sha });
    expect(a.health()).toMatchObject({ status: 'unhealthy' });
    expect(a.metrics().errorRatePercent).toBeGreaterThan(15);
    a.rollback('m', { deploymentId: 'd4:rb', toVersion: null });
    expect(a.modules.m).toBeUndefined();
    expect(a.health().status).toBe('healthy');
  });

  it('degradeNow shows the degraded metrics at once, whatever version runs, and not after the fault is cleared', () => {
    const a = make();
    a.setFaults({ degrade: { latencyMs: 30 } });
    expect(a.metrics().latencyMs).toBeLessThan(30);
    a.setFaults({ degradeNow: true, degrade: { latencyMs: 30 } });
    expect(a.metrics().latencyMs).toBeGreaterThan(40);
    a.setFaults({});
    expect(a.metrics().latencyMs).toBeLessThan(30);
  });

  it('keeps its state across restarts', async () => {
    const stateFile = join(mkdtempSync(join(tmpdir(), 'agent-')), 'state.json');
    const a = make({ stateFile });
    await a.deploy('m', { deploymentId: 'd5', version: '3.0.0', artifactUrl: 'x', sha256: sha });
    const b = make({ stateFile, initialModules: { m: '0.0.1' } });
    expect(b.modules.m.version).toBe('3.0.0');
  });
});
