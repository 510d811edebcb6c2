/**
 * The local traffic router (docs/adr/0020-traffic-routers.md): real requests through a reverse
 * proxy per environment, a Blue-Green deployment and its rollback under continuous load, and the
 * traffic-weighted canary with the shares the router measured.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitApprovingGates, waitForDeployment } from './harness.ts';

let cloud: LocalCloud;
const cloudFile = join(mkdtempSync(join(tmpdir(), 'kmod-router-')), 'cloud.json');

beforeAll(async () => {
  cloud = await startTestCloud({
    cloudFile,
    env: {
      AGENT_TIMEOUT_MS: '3000',
      NODES_PER_BATCH: '3',
      SMOKE_TEST_TIMEOUT_SECONDS: '20',
      CANARY_BAKE_SECONDS: '10',
      CANARY_POLL_SECONDS: '1',
      // Each canary wave is judged on at least 1,000 requests through the router (a loaded machine
      // serves fewer than 100/s): the bake goes on until the router has counted them.
      CANARY_MIN_WAVE_REQUESTS: '1000',
      CANARY_MAX_BAKE_SECONDS: '150',
    },
  });
});
afterAll(async () => {
  await cloud?.stop();
});

interface Sample {
  sentAt: number;
  doneAt: number;
  status: number;
  node?: string;
  colour?: string;
  version?: string;
  error?: string;
}

async function get(url: string, headers: Record<string, string> = {}): Promise<Sample> {
  const sentAt = Date.now();
  try {
    const r = await fetch(`${url}/work`, { headers });
    const body = (await r.json()) as { modules?: Record<string, string> };
    return {
      sentAt,
      doneAt: Date.now(),
      status: r.status,
      node: r.headers.get('x-kmod-node') ?? undefined,
      colour: r.headers.get('x-kmod-colour') ?? undefined,
      version: body.modules?.['demo-kernel'],
    };
  } catch (e) {
    return { sentAt, doneAt: Date.now(), status: 0, error: (e as Error).message };
  }
}

/** Continuous load: `perSecond` requests a second through the router until stopped. */
function load(url: string, perSecond = 50) {
  const samples: Sample[] = [];
  const inFlight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    const p = get(url).then((s) => {
      samples.push(s);
    });
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  }, 1000 / perSecond);
  return {
    samples,
    async stop() {
      clearInterval(timer);
      await Promise.all(inFlight);
      return samples;
    },
  };
}

async function deploy(targetEnvironment: string, version = '1.1.0') {
  const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body: { moduleName: 'demo-kernel', version, targetEnvironment } });
  expect(r.status, JSON.stringify(r.body)).toBe(202);
  return r.body.executionId as string;
}

const stage = (d: any, name: string) => d.stages.find((s: { name: string }) => s.name === name);

describe('the local router', () => {
  it('is listed in cloud.json as routers, one per routed environment', () => {
    const file = JSON.parse(readFileSync(cloudFile, 'utf8'));
    expect(Object.keys(file.routers).sort()).toEqual(['Production', 'Staging']);
    expect(file.routers.Staging).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(file.routers).toEqual(cloud.routers);
  });

  it('answers from the live colour, naming node and colour; the preview header reaches the idle colour', async () => {
    const live = await Promise.all(Array.from({ length: 10 }, () => get(cloud.routers.Staging!)));
    expect(live.every((s) => s.status === 200 && s.colour === 'blue' && s.version === '1.0.0')).toBe(true);
    expect(new Set(live.map((s) => s.node))).toEqual(new Set(['stg-01', 'stg-02', 'stg-03', 'stg-04', 'stg-05']));
    const preview = await Promise.all(Array.from({ length: 5 }, () => get(cloud.routers.Staging!, { 'x-kmod-preview': '1' })));
    expect(new Set(preview.map((s) => s.colour))).toEqual(new Set(['green']));
    const prod = await Promise.all(Array.from({ length: 40 }, () => get(cloud.routers.Production!)));
    expect(new Set(prod.map((s) => s.node)).size).toBe(20);
    expect(prod.every((s) => s.colour === 'none')).toBe(true);
  });

  it('the control API needs its token', async () => {
    const r = await fetch(`${cloud.routers.Staging}/_kmod/router/routes`, { method: 'PUT', body: JSON.stringify({ groups: [] }) });
    expect(r.status).toBe(401);
    const after = await get(cloud.routers.Staging!);
    expect(after.status).toBe(200);
  });
});

describe('Blue-Green through the router, under 50 requests/s', () => {
  let executionId: string;

  it('smoke-tests through the preview route and switches atomically: no request fails, none reaches the old colour after the switch', async () => {
    const traffic = load(cloud.routers.Staging!);
    executionId = await deploy('Staging');
    const d = await waitApprovingGates(cloud, executionId);
    await new Promise((r) => setTimeout(r, 1000));
    const samples = await traffic.stop();
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const s = stage(d, 'Staging');
    expect(s.details.smokeTest).toMatchObject({ nodes: 5, passed: 5, route: 'preview', throughRouter: 5 });
    const switchedAt = Date.parse(s.details.traffic.at);
    const failed = samples.filter((x) => x.status !== 200);
    console.log(`Blue-Green: ${samples.length} requests, ${failed.length} failed`);
    expect(samples.length).toBeGreaterThan(200);
    expect(failed).toEqual([]);
    // Before the switch, everything from blue on 1.0.0; after it returned, everything from green on 1.1.0.
    const before = samples.filter((x) => x.doneAt < switchedAt - 1000);
    const after = samples.filter((x) => x.sentAt > switchedAt);
    expect(before.length).toBeGreaterThan(50);
    expect(after.length).toBeGreaterThan(20);
    expect(before.filter((x) => x.colour !== 'blue' || x.version !== '1.0.0')).toEqual([]);
    expect(after.filter((x) => x.colour !== 'green' || x.version !== '1.1.0')).toEqual([]);
  });

  it('rolls back under load: traffic back on the old colour first, then versions (no live request sees green back on 1.0.0)', async () => {
    const traffic = load(cloud.routers.Staging!);
    await new Promise((r) => setTimeout(r, 500));
    const r = await api(cloud, 'POST', `/api/v1/deployments/${executionId}/rollback`, { token: cloud.tokens.Deployer, body: { reason: 'test' } });
    expect(r.status).toBe(202);
    const d = await waitForDeployment(cloud, executionId, ['RolledBack']);
    const doneAt = Date.now();
    await new Promise((res) => setTimeout(res, 1000));
    const samples = await traffic.stop();
    expect(stage(d, 'Staging').message).toMatch(/traffic switched back to blue/);
    const failed = samples.filter((x) => x.status !== 200);
    console.log(`Blue-Green rollback: ${samples.length} requests, ${failed.length} failed`);
    expect(failed).toEqual([]);
    expect(samples.filter((x) => x.colour === 'green' && x.version === '1.0.0')).toEqual([]);
    const after = samples.filter((x) => x.sentAt > doneAt);
    expect(after.length).toBeGreaterThan(20);
    expect(after.filter((x) => x.colour !== 'blue' || x.version !== '1.0.0')).toEqual([]);
  });
});

/** As many requests as `concurrency` loops can send, until stopped (the canary's waves need ≥ 1,000 each). */
function flood(url: string, concurrency = 6) {
  let running = true;
  const samples: Sample[] = [];
  const loops = Array.from({ length: concurrency }, async () => {
    while (running) samples.push(await get(url));
  });
  return {
    samples,
    async stop() {
      running = false;
      await Promise.all(loops);
      return samples;
    },
  };
}

describe('traffic-weighted canary through the router', () => {
  it('each wave is a share of requests; the share the canary nodes served, as the router counted it, is within ±5 points of the weight', async () => {
    const traffic = flood(cloud.routers.Production!);
    const executionId = await deploy('Production');
    const d = await waitApprovingGates(cloud, executionId, 560_000);
    const samples = await traffic.stop();
    expect(d.status, JSON.stringify(d.failure)).toBe('Succeeded');
    const prod = stage(d, 'Production');
    const waves = [1, 2, 3, 4].map((w) => prod.details[`wave${w}Traffic`]);
    console.log(
      `canary waves: ${JSON.stringify(waves.map((w) => ({ weight: w.weightPercent, requests: w.requests, canary: w.canaryRequests, measured: w.measuredPercent })))}`,
    );
    expect(waves.map((w) => w.weightPercent)).toEqual([10, 30, 50, 100]);
    expect(waves.map((w) => w.canaryNodes)).toEqual([2, 6, 10, 20]);
    for (const w of waves) {
      expect(w.requests).toBeGreaterThanOrEqual(1000);
      expect(w).toMatchObject({ minRequests: 1000, belowMinimum: false });
      expect(Math.abs(w.measuredPercent - w.weightPercent)).toBeLessThanOrEqual(5);
    }
    const failed = samples.filter((x) => x.status !== 200);
    console.log(`canary: ${samples.length} requests through the Production router, ${failed.length} failed`);
    expect(failed).toEqual([]);
    // Done: one group of every node again, all on the new version.
    const after = await Promise.all(Array.from({ length: 40 }, () => get(cloud.routers.Production!)));
    expect(new Set(after.map((s) => s.node)).size).toBe(20);
    expect(after.every((s) => s.version === '1.1.0')).toBe(true);
  }, 600_000);
});
