import { beforeAll, describe, expect, it } from 'vitest';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createDevPki, type DevPki } from '../../../localcloud/devPki.ts';
import { current, deployRequest, events, hostAgent, publish, running, testModule } from './fixtures/helpers.ts';

let pki: DevPki;
beforeAll(async () => {
  pki = await createDevPki();
});

describe('host installer: install, hooks, switch', () => {
  it('unpacks to modules/<name>/<version>/, runs the hooks with their env, logs their output and switches current', async () => {
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0');
    const v2 = testModule(pki, '2.0.0');
    publish(artifacts, v1, v2);
    const { agent, dataDir, logs } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(v1, 'd1'));
    const r = await agent.deploy('mod', deployRequest(v2, 'd2'));
    expect(r).toMatchObject({ version: '2.0.0', previousVersion: '1.0.0', replayed: false });
    const dir = join(dataDir, 'modules', 'mod');
    expect(readFileSync(join(dir, '2.0.0', 'lib', 'mod.bin'), 'utf8')).toBe('code of 2.0.0');
    expect(JSON.parse(readFileSync(join(dir, '2.0.0', '.kmod', 'manifest.json'), 'utf8')).manifest.version).toBe('2.0.0');
    expect(current(dataDir)).toBe('2.0.0');
    expect(existsSync(join(dir, '1.0.0', 'VERSION'))).toBe(true); // kept for an instant rollback
    expect(running(dataDir)).toEqual(['2.0.0']);
    expect(events(dataDir)).toEqual([
      'preLoad mod 1.0.0 prev=',
      `load mod 1.0.0 prev= dir=${join(dir, '1.0.0')} cwd=${join(dir, '1.0.0')}`,
      'preLoad mod 2.0.0 prev=1.0.0',
      'unload mod 1.0.0 next=2.0.0',
      `load mod 2.0.0 prev=1.0.0 dir=${join(dir, '2.0.0')} cwd=${join(dir, '2.0.0')}`,
    ]);
    expect(logs).toContain('[mod@2.0.0 load] loaded 2.0.0');
    expect(existsSync(join(dir, 'journal.json'))).toBe(false);
    expect(agent.modules.mod.version).toBe('2.0.0');
  });

  it('a failing load hook leaves current on the old version, running again', async () => {
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0');
    const bad = testModule(pki, '2.0.0', { files: [{ path: 'fail-load', data: '' }] });
    publish(artifacts, v1, bad);
    const { agent, dataDir, logs } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(v1, 'd1'));
    await expect(agent.deploy('mod', deployRequest(bad, 'd2'))).rejects.toMatchObject({
      status: 500,
      code: 'LoadFailed',
      message: expect.stringContaining('refusing to load 2.0.0'),
    });
    expect(current(dataDir)).toBe('1.0.0');
    expect(running(dataDir)).toEqual(['1.0.0']);
    expect(agent.modules.mod.version).toBe('1.0.0');
    expect(logs).toContain('[mod@2.0.0 load] refusing to load 2.0.0');
  });

  it('rolls back by switching to the version kept on disk; unloads on a rollback to none', async () => {
    const artifacts = new Map<string, Buffer>();
    const [v1, v2] = [testModule(pki, '1.0.0'), testModule(pki, '2.0.0')];
    publish(artifacts, v1, v2);
    const { agent, dataDir } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(v1, 'd1'));
    await agent.deploy('mod', deployRequest(v2, 'd2'));
    const back = await agent.rollback('mod', { deploymentId: 'd2:rollback', toVersion: '1.0.0' });
    expect(back).toMatchObject({ version: '1.0.0', previousVersion: '2.0.0' });
    expect(current(dataDir)).toBe('1.0.0');
    expect(running(dataDir)).toEqual(['1.0.0']);
    expect(events(dataDir).slice(-2)).toEqual(['unload mod 2.0.0 next=1.0.0', expect.stringMatching(/^load mod 1\.0\.0 prev=2\.0\.0 /)]);
    await expect(agent.rollback('mod', { deploymentId: 'x:rollback', toVersion: '0.9.0' })).rejects.toMatchObject({ status: 409, code: 'VersionNotInstalled' });
    await agent.rollback('mod', { deploymentId: 'd1:rollback', toVersion: null });
    expect(current(dataDir)).toBeNull();
    expect(running(dataDir)).toEqual([]);
    expect(agent.modules.mod).toBeUndefined();
  });

  it('keeps only the running version and the one before it', async () => {
    const artifacts = new Map<string, Buffer>();
    const vs = ['1.0.0', '2.0.0', '3.0.0'].map((v) => testModule(pki, v));
    publish(artifacts, ...vs);
    const { agent, dataDir } = hostAgent(pki, { artifacts });
    for (const [i, v] of vs.entries()) await agent.deploy('mod', deployRequest(v, `d${i}`));
    const dir = join(dataDir, 'modules', 'mod');
    expect(['1.0.0', '2.0.0', '3.0.0'].map((v) => existsSync(join(dir, v)))).toEqual([false, true, true]);
  });

  it('serialises concurrent commands for one module', async () => {
    const artifacts = new Map<string, Buffer>();
    const slow = [{ path: 'slow', data: '' }];
    const [v1, v2, v3] = ['1.0.0', '2.0.0', '3.0.0'].map((v) => testModule(pki, v, { files: slow }));
    publish(artifacts, v1, v2, v3);
    const { agent, dataDir } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(v1, 'd1'));
    const results = await Promise.all([agent.deploy('mod', deployRequest(v2, 'd2')), agent.deploy('mod', deployRequest(v3, 'd3')), agent.runSmokeTest('mod')]);
    expect(results[0]).toMatchObject({ version: '2.0.0', previousVersion: '1.0.0' });
    expect(results[1]).toMatchObject({ version: '3.0.0', previousVersion: '2.0.0' });
    expect(results[2]).toMatchObject({ version: '3.0.0', passed: true });
    // One swap after the other: each unload follows the previous version's load.
    expect(
      events(dataDir)
        .filter((e) => !e.startsWith('preLoad'))
        .map((e) => e.split(' ').slice(0, 3).join(' ')),
    ).toEqual(['load mod 1.0.0', 'unload mod 1.0.0', 'load mod 2.0.0', 'unload mod 2.0.0', 'load mod 3.0.0']);
    expect(running(dataDir)).toEqual(['3.0.0']);
  });

  it('smoke test runs the smokeTest hook; health includes the healthCheck hook', async () => {
    const artifacts = new Map<string, Buffer>();
    const [good, failing] = [testModule(pki, '1.0.0'), testModule(pki, '2.0.0', { files: [{ path: 'fail-smoke', data: '' }] })];
    publish(artifacts, good, failing);
    const { agent, dataDir } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(good, 'd1'));
    expect(await agent.runSmokeTest('mod')).toMatchObject({
      passed: true,
      checks: [{ passed: true }, { name: 'self-test', passed: true, detail: expect.stringContaining('probe answered 200') }],
    });
    await agent.deploy('mod', deployRequest(failing, 'd2'));
    expect(await agent.runSmokeTest('mod')).toMatchObject({
      passed: false,
      checks: [{ passed: true }, { passed: false, detail: expect.stringContaining('probe answered 500') }],
    });
    expect(await agent.checkHealth()).toMatchObject({ status: 'healthy', metrics: { source: 'host', trafficSource: 'none' } });
    writeFileSync(join(dataDir, 'fail-health'), '');
    expect(await agent.checkHealth()).toMatchObject({
      status: 'unhealthy',
      reasons: [expect.stringContaining('mod@2.0.0 healthCheck failed: exit code 1: healthz answered 503')],
    });
  });

  it('kills a hook that overruns its timeout', async () => {
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0', { hooks: { load: { command: ['sh', '-c', 'echo starting; sleep 30'], timeoutSeconds: 1 } } });
    publish(artifacts, v1);
    const { agent, dataDir } = hostAgent(pki, { artifacts });
    const started = Date.now();
    await expect(agent.deploy('mod', deployRequest(v1, 'd1'))).rejects.toThrow(/load hook failed: timed out after 1 s: starting/);
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(current(dataDir)).toBeNull();
  });
});
