import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { join } from 'node:path';
import { api, startTestCloud, waitApprovingGates } from './harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { rotateKeyFile } from '../../scripts/rotate-keys.ts';
import { rotate, scheduledRotation } from '../../functions/domain/keyRotation.ts';

let cloud: LocalCloud;
// Readers refresh faster than in production (agents every 5 s, Lambda containers after 2 s
// instead of 60 s); each rotation step waits longer than both, as the runbook says.
const STEP_PAUSE_MS = 6000;

beforeAll(async () => {
  cloud = await startTestCloud({ env: { SECRETS_CACHE_SECONDS: '2', CANARY_BAKE_SECONDS: '1' } });
});
afterAll(async () => {
  await cloud?.stop();
});

describe('agent key rotation', () => {
  it('rotates add → promote → retire while agents are called continuously, with no failed call', async () => {
    const file = join(cloud.dataDir, 'secrets', 'agent-keys.json');
    const statuses: string[] = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        const r = await api(cloud, 'GET', '/api/v1/clusters/QA?refresh=true', { token: cloud.tokens.Viewer });
        statuses.push(
          r.status === 200 && r.body.unhealthyNodes === 0 && r.body.healthyNodes === 5
            ? 'ok'
            : `${r.status}:${JSON.stringify(r.body.nodes?.map((n: { health: unknown }) => n.health))}`,
        );
        await new Promise((res) => setTimeout(res, 250));
      }
    })();
    const deployment = api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Production' },
    });
    const before = rotateKeyFile(file, 'add');
    expect(before).toHaveLength(2);
    await new Promise((res) => setTimeout(res, STEP_PAUSE_MS));
    const promoted = rotateKeyFile(file, 'promote');
    expect(promoted[0].id).toBe(before[1].id);
    await new Promise((res) => setTimeout(res, STEP_PAUSE_MS));
    const retired = rotateKeyFile(file, 'retire');
    expect(retired.map((k) => k.id)).toEqual([before[1].id]);
    const d = await waitApprovingGates(cloud, (await deployment).body.executionId);
    await new Promise((res) => setTimeout(res, 1000));
    polling = false;
    await poller;
    expect(d.status).toBe('Succeeded');
    expect(statuses.length).toBeGreaterThan(20);
    expect(statuses.filter((s) => s !== 'ok')).toEqual([]);
  });

  it('refuses steps out of order', () => {
    const one = [{ id: 'a', secret: 'x' }];
    expect(() => rotate(one, 'promote')).toThrow(/add a key first/);
    const two = rotate(one, 'add');
    expect(() => rotate(two, 'add')).toThrow(/already under way/);
    expect(() => rotate(two, 'retire')).toThrow(/promote the next key/);
    expect(rotate(two, 'promote').map((k) => k.id)).toEqual([two[1].id, 'a']);
    expect(rotate(two, 'promote')[0].next).toBeUndefined();
  });

  it('advances one safe step per scheduled rotation: the signer is always a key published a period before', () => {
    let set = scheduledRotation([{ id: 'k0', secret: 's' }]);
    expect(set.map((k) => [k.id, !!k.next])).toEqual([
      ['k0', false],
      [set[1].id, true],
    ]);
    const published = new Set(set.map((k) => k.id));
    for (let period = 0; period < 4; period++) {
      const before = new Set(set.map((k) => k.id));
      set = scheduledRotation(set);
      expect(before.has(set[0].id)).toBe(true); // signs only with a key every reader has had a period to learn
      expect(set).toHaveLength(3);
      expect(set[2].next).toBe(true);
      for (const k of set) published.add(k.id);
    }
    expect(published.size).toBe(6);
  });
});
