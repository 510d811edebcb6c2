/**
 * The agent side of convergence: heartbeat-answer commands run through a real host agent's own
 * deploy and rollback (installer, trust roots), are deduplicated while running, and a failure is
 * reported and retried with backoff.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { Converger, type ConvergeCommand } from '../../../functions/agent/convergence.ts';
import type { ModuleOperationResult } from '../../../functions/agent/protocol.ts';
import { createDevPki, type DevPki } from '../../../localcloud/devPki.ts';
import { current, deployRequest, hostAgent, publish, snapshot, testModule } from './fixtures/helpers.ts';

let pki: DevPki;
let otherPki: DevPki;
beforeAll(async () => {
  [pki, otherPki] = await Promise.all([createDevPki(), createDevPki({ commonName: 'Someone Else' })]);
});

const deployCommand = (request: ReturnType<typeof deployRequest>, from: string | null = null): ConvergeCommand => ({
  action: 'deploy',
  module: 'mod',
  from,
  to: request.version,
  request,
});

describe('the agent converges through its own deploy and rollback', () => {
  it('installs the desired version, reports news once, and treats the repeated command as a replay', async () => {
    const artifacts = new Map<string, Buffer>();
    const v1 = testModule(pki, '1.0.0');
    publish(artifacts, v1);
    const h = hostAgent(pki, { artifacts });
    const lines: string[] = [];
    const converger = new Converger(h.agent, (l) => lines.push(l));
    const answer = [deployCommand(deployRequest(v1, 'converge:dep-a:r1'))];
    expect(await converger.run(answer)).toBe(true);
    expect(current(h.dataDir)).toBe('1.0.0');
    expect(h.agent.modules.mod).toMatchObject({ version: '1.0.0', lastDeploymentId: 'converge:dep-a:r1' });
    expect(lines).toEqual(['converging mod none → 1.0.0 (converge:dep-a:r1)', 'converged mod to 1.0.0']);
    // The same answer again (a heartbeat sent before the command finished): not run again, nothing to report.
    expect(await converger.run(answer)).toBe(false);
    expect(lines).toHaveLength(2);
    expect(converger.failed).toEqual([]);
    // A fresh converger (the agent restarted) asks the agent, which replays the applied command.
    const restarted = new Converger(h.agent, (l) => lines.push(l));
    expect(await restarted.run(answer)).toBe(false);
    expect(lines.at(-1)).toBe('converged mod to 1.0.0 (already applied)');

    const unload: ConvergeCommand = {
      action: 'rollback',
      module: 'mod',
      from: '1.0.0',
      to: null,
      request: { deploymentId: 'converge:dep-b:r2', toVersion: null },
    };
    expect(await converger.run([unload])).toBe(true);
    expect(h.agent.modules.mod).toBeUndefined();
  });

  it('brings a node that drifted off the desired version back with the same command, every time it drifts', async () => {
    const artifacts = new Map<string, Buffer>();
    const [v1, v7] = [testModule(pki, '1.0.0'), testModule(pki, '7.0.0')];
    publish(artifacts, v1);
    publish(artifacts, v7);
    const h = hostAgent(pki, { artifacts });
    const lines: string[] = [];
    const converger = new Converger(h.agent, (l) => lines.push(l));
    const answer = [deployCommand(deployRequest(v1, 'converge:dep-a:r3'))];
    expect(await converger.run(answer)).toBe(true);
    for (const drift of ['by-hand-1', 'by-hand-2']) {
      // Something other than the orchestrator's deployments puts 7.0.0 on the node.
      await h.agent.deploy('mod', deployRequest(v7, drift));
      expect(current(h.dataDir)).toBe('7.0.0');
      // The orchestrator sends the very same command (the desired revision did not change).
      expect(await converger.run([deployCommand(deployRequest(v1, 'converge:dep-a:r3'), '7.0.0')])).toBe(true);
      expect(current(h.dataDir)).toBe('1.0.0');
      expect(lines.at(-1)).toBe('converged mod to 1.0.0');
    }
    // An agent restart (a fresh converger) with the node in place: a replay, nothing changes.
    expect(await new Converger(h.agent, (l) => lines.push(l)).run(answer)).toBe(false);
  });

  it('refuses a command whose signature does not chain to the agent’s own roots, changing nothing, and reports why', async () => {
    const artifacts = new Map<string, Buffer>();
    const foreign = testModule(otherPki, '1.0.0');
    publish(artifacts, foreign);
    const h = hostAgent(pki, { artifacts });
    const before = snapshot(h.dataDir);
    let now = 0;
    const converger = new Converger(h.agent, () => undefined, { retryBaseMs: 1000, now: () => now });
    const answer = [deployCommand(deployRequest(foreign, 'converge:dep-a:r1'))];
    expect(await converger.run(answer)).toBe(true);
    expect(snapshot(h.dataDir)).toEqual(before);
    expect(h.agent.modules.mod).toBeUndefined();
    expect(converger.failed).toEqual([{ module: 'mod', deploymentId: 'converge:dep-a:r1', code: 'SignatureInvalid', message: expect.any(String) }]);
    // Not retried before the backoff has passed; the failure stays reported meanwhile.
    expect(await converger.run(answer)).toBe(false);
    now = 1000;
    expect(await converger.run(answer)).toBe(true);
    // The desired state moved on: the old command is not retried, nor reported any more.
    expect(await converger.run([])).toBe(false);
    expect(converger.failed).toEqual([]);
  });
});

describe('converger bookkeeping', () => {
  it('runs a command once while it is in flight, and ignores malformed commands', async () => {
    let release!: () => void;
    const calls: string[] = [];
    const target = {
      modules: {} as Record<string, { version: string }>,
      deploy: async (module: string, req: { deploymentId: string; version: string }): Promise<ModuleOperationResult> => {
        calls.push(req.deploymentId);
        await new Promise<void>((r) => (release = r));
        target.modules[module] = { version: req.version };
        return { nodeId: 'n', module, version: req.version, replayed: false };
      },
      rollback: async (): Promise<ModuleOperationResult> => {
        throw new Error('not expected');
      },
    };
    const lines: string[] = [];
    const converger = new Converger(target, (l) => lines.push(l));
    const cmd = deployCommand({ deploymentId: 'converge:dep-a:r1', version: '1.1.0', artifactUrl: 'http://x/a', sha256: 'ab' });
    const first = converger.run([cmd, { action: 'format-disk', module: 'mod' }]);
    await new Promise((r) => setImmediate(r));
    expect(await converger.run([cmd])).toBe(false); // already running
    release();
    expect(await first).toBe(true);
    expect(calls).toEqual(['converge:dep-a:r1']);
    expect(lines[0]).toMatch(/^convergence command ignored/);
    expect(await converger.run('not a list')).toBe(false);
  });
});
