import { beforeAll, describe, expect, it } from 'vitest';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CRASH_POINTS, SimulatedCrash, type CrashPoint } from '../../../functions/agent/installer.ts';
import { createDevPki, type DevPki } from '../../../localcloud/devPki.ts';
import { current, deployRequest, hostAgent, publish, running, testModule, TEST_HOOKS } from './fixtures/helpers.ts';

let pki: DevPki;
beforeAll(async () => {
  pki = await createDevPki();
});

const crashAt = (point: CrashPoint, op: 'deploy' | 'rollback') => ({
  crashPoint: (p: CrashPoint, j: { op: string }) => {
    if (p === point && j.op === op) throw new SimulatedCrash(`crash at ${p}`);
  },
});

/** After a restart: one version wholly (current, loaded, recorded), no journal. */
async function restartAndCheck(dataDir: string, artifacts: Map<string, Buffer>, expected: string) {
  const restarted = hostAgent(pki, { dataDir, artifacts });
  await restarted.agent.recover();
  expect(current(dataDir)).toBe(expected);
  expect(running(dataDir)).toEqual([expected]);
  expect(existsSync(join(dataDir, 'modules', 'mod', 'journal.json'))).toBe(false);
  expect(restarted.agent.modules.mod.version).toBe(expected);
  return restarted;
}

describe('crash safety of a swap (journal recovery)', () => {
  // A deploy whose new version had not finished loading ends on the old version; once the journal
  // says `loaded`, on the new one.
  for (const point of CRASH_POINTS) {
    const expected = point === 'journal:loaded' ? '2.0.0' : '1.0.0';
    it(`deploy 1.0.0 → 2.0.0 crashing at ${point} restarts on ${expected}`, async () => {
      const artifacts = new Map<string, Buffer>();
      const [v1, v2] = [testModule(pki, '1.0.0'), testModule(pki, '2.0.0')];
      publish(artifacts, v1, v2);
      const first = hostAgent(pki, { artifacts });
      await first.agent.deploy('mod', deployRequest(v1, 'd1'));
      const crashing = hostAgent(pki, { dataDir: first.dataDir, artifacts, installer: crashAt(point, 'deploy') });
      await crashing.agent.recover();
      await expect(crashing.agent.deploy('mod', deployRequest(v2, 'd2'))).rejects.toBeInstanceOf(SimulatedCrash);
      await restartAndCheck(first.dataDir, artifacts, expected);
    });
  }

  for (const point of CRASH_POINTS) {
    it(`rollback 2.0.0 → 1.0.0 crashing at ${point} restarts on 1.0.0`, async () => {
      const artifacts = new Map<string, Buffer>();
      const [v1, v2] = [testModule(pki, '1.0.0'), testModule(pki, '2.0.0')];
      publish(artifacts, v1, v2);
      const h = hostAgent(pki, { artifacts });
      await h.agent.deploy('mod', deployRequest(v1, 'd1'));
      await h.agent.deploy('mod', deployRequest(v2, 'd2'));
      const crashing = hostAgent(pki, { dataDir: h.dataDir, artifacts, installer: crashAt(point, 'rollback') });
      await crashing.agent.recover();
      await expect(crashing.agent.rollback('mod', { deploymentId: 'd2:rollback', toVersion: '1.0.0' })).rejects.toBeInstanceOf(SimulatedCrash);
      await restartAndCheck(h.dataDir, artifacts, '1.0.0');
    });
  }

  it('survives a real kill -9 of the agent process while the new version is loading', async () => {
    const artifacts = new Map<string, Buffer>();
    const hooks = {
      ...TEST_HOOKS,
      load: { command: ['sh', '-c', `[ -e hang ] && { echo $$ > "$KMOD_DATA_DIR/hook.pid"; sleep 30; }; ${TEST_HOOKS.load!.command[2]}`] },
    };
    const [v1, v2] = [testModule(pki, '1.0.0', { hooks }), testModule(pki, '2.0.0', { hooks, files: [{ path: 'hang', data: '' }] })];
    publish(artifacts, v1, v2);
    const h = hostAgent(pki, { artifacts });
    await h.agent.deploy('mod', deployRequest(v1, 'd1'));
    const jobFile = join(h.dataDir, 'job.json');
    writeFileSync(
      jobFile,
      JSON.stringify({ dataDir: h.dataDir, rootPem: pki.rootCertPem, artifactBase64: v2.artifact.toString('base64'), request: deployRequest(v2, 'd2') }),
    );
    const childFile = fileURLToPath(new URL('./fixtures/crash-child.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', childFile, jobFile], { cwd: fileURLToPath(new URL('../../..', import.meta.url)), stdio: 'pipe' });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const hookPid = join(h.dataDir, 'hook.pid');
    for (let i = 0; i < 300 && !existsSync(hookPid); i++) await new Promise((r) => setTimeout(r, 50));
    expect(existsSync(hookPid), out).toBe(true);
    const journal = JSON.parse(readFileSync(join(h.dataDir, 'modules', 'mod', 'journal.json'), 'utf8'));
    expect(journal).toMatchObject({ op: 'deploy', from: '1.0.0', to: '2.0.0', step: 'switched' });
    expect(current(h.dataDir)).toBe('2.0.0'); // mid-swap: the link already points at the new version
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    process.kill(-Number(readFileSync(hookPid, 'utf8')), 'SIGKILL'); // the orphaned hook, started by this test
    await restartAndCheck(h.dataDir, artifacts, '1.0.0');
    expect(out).not.toContain('deploy finished');
  });
});
