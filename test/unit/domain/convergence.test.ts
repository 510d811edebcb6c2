import { describe, expect, it } from 'vitest';
import {
  convergeCommandId,
  convergenceBookkeeping,
  convergenceSteps,
  convergenceView,
  DESIRED_HISTORY_DEPTH,
  promote,
  restore,
  uniformVersion,
  type DesiredModule,
  type DesiredModules,
  type TrackedConvergence,
} from '../../../functions/domain/convergence.ts';

const at = '2026-01-01T00:00:00.000Z';
const later = '2026-01-01T01:00:00.000Z';
const desired = (version: string | null, deploymentId: string | null, revision = 1, extra: Partial<DesiredModule> = {}): DesiredModule => ({
  version,
  deploymentId,
  revision,
  setAt: at,
  setBy: 'deployment',
  ...extra,
});
const noLocks = () => undefined;
const running = (versions: Record<string, string>) => Object.fromEntries(Object.entries(versions).map(([m, version]) => [m, { version }]));

describe('desired state: promotion and rollback', () => {
  it('records a promoted version with what it replaced, and a rollback puts that back', () => {
    const first = promote(undefined, { version: '1.1.0', deploymentId: 'dep-a' }, { version: '1.0.0', deploymentId: null }, at);
    expect(first).toEqual({
      version: '1.1.0',
      deploymentId: 'dep-a',
      revision: 1,
      setAt: at,
      setBy: 'deployment',
      previous: { version: '1.0.0', deploymentId: null },
    });
    const back = restore(first, 'dep-a', later);
    expect(back).toEqual({ version: '1.0.0', deploymentId: null, revision: 2, setAt: later, setBy: 'rollback', rolledBack: 'dep-a' });
  });

  it('prefers the recorded entry over what was inferred from the nodes, and keeps a bounded history', () => {
    let entry: DesiredModule | undefined;
    for (let i = 1; i <= DESIRED_HISTORY_DEPTH + 3; i++)
      entry = promote(entry, { version: `1.${i}.0`, deploymentId: `dep-${i}` }, { version: '9.9.9', deploymentId: null }, at);
    let depth = 0;
    for (let h = entry!.previous; h; h = h.previous) depth++;
    expect(depth).toBe(DESIRED_HISTORY_DEPTH);
    expect(entry!.revision).toBe(DESIRED_HISTORY_DEPTH + 3);
    expect(JSON.stringify(entry)).not.toContain('9.9.9');
  });

  it('rolls back through the history: each rollback restores what its own deployment replaced', () => {
    const one = promote(undefined, { version: '1.1.0', deploymentId: 'dep-1' }, { version: '1.0.0', deploymentId: null }, at);
    const two = promote(one, { version: '1.2.0', deploymentId: 'dep-2' }, undefined, at);
    const afterTwo = restore(two, 'dep-2', later)!;
    expect(afterTwo).toMatchObject({ version: '1.1.0', deploymentId: 'dep-1', revision: 3, setBy: 'rollback' });
    // Rolling dep-1 back on demand now returns to what dep-1 replaced; a retry changes nothing.
    const afterOne = restore(afterTwo, 'dep-1', later)!;
    expect(afterOne).toMatchObject({ version: '1.0.0', deploymentId: null, revision: 4, rolledBack: 'dep-1' });
    expect(restore(afterOne, 'dep-1', later)).toBeUndefined();
  });

  it('changes nothing when the entry is not the rolled-back deployment’s, and removes one that replaced nothing known', () => {
    const entry = promote(undefined, { version: '1.1.0', deploymentId: 'dep-a' }, undefined, at);
    expect(entry.previous).toBeUndefined();
    expect(restore(entry, 'dep-other', later)).toBeUndefined();
    expect(restore(undefined, 'dep-a', later)).toBeUndefined();
    expect(restore(entry, 'dep-a', later)).toBeNull();
  });

  it('carries the blue-green colour that serves the version', () => {
    const entry = promote(
      undefined,
      { version: '1.1.0', deploymentId: 'dep-a', colour: 'green' },
      { version: '1.0.0', deploymentId: null, colour: 'blue' },
      at,
    );
    expect(entry).toMatchObject({ colour: 'green', previous: { version: '1.0.0', colour: 'blue' } });
    expect(restore(entry, 'dep-a', later)).toMatchObject({ version: '1.0.0', colour: 'blue' });
  });

  it('infers a previous version only when every node ran the same one (null: none had the module)', () => {
    expect(uniformVersion(['1.0.0', '1.0.0'])).toEqual({ version: '1.0.0' });
    expect(uniformVersion([null, null])).toEqual({ version: null });
    expect(uniformVersion(['1.0.0', null])).toBeUndefined();
    expect(uniformVersion([])).toBeUndefined();
  });

  it('names convergence commands after the entry: stable across retries, new for every change', () => {
    expect(convergeCommandId({ deploymentId: 'dep-a', revision: 3 })).toBe('converge:dep-a:r3');
    expect(convergeCommandId({ deploymentId: null, revision: 2 })).toBe('converge:inferred:r2');
  });
});

describe('what a node must do to converge', () => {
  const state: DesiredModules = { 'demo-kernel': desired('1.1.0', 'dep-a'), 'net-filter': desired(null, 'dep-b', 2) };

  it('deploys the desired version where it differs and unloads a module that should be absent', () => {
    const steps = convergenceSteps(state, { reported: running({ 'demo-kernel': '1.0.0', 'net-filter': '2.0.0' }) }, noLocks);
    expect(steps.map(({ desired: _d, ...s }) => s)).toEqual([
      { module: 'demo-kernel', from: '1.0.0', to: '1.1.0', commandId: 'converge:dep-a:r1' },
      { module: 'net-filter', from: '2.0.0', to: null, commandId: 'converge:dep-b:r2' },
    ]);
  });

  it('asks nothing of a node that already runs the desired state, or of a new node for a module that should be absent', () => {
    expect(convergenceSteps(state, { reported: running({ 'demo-kernel': '1.1.0' }) }, noLocks)).toEqual([]);
    expect(convergenceSteps(state, { reported: {} }, noLocks).map((s) => [s.module, s.from, s.to])).toEqual([['demo-kernel', null, '1.1.0']]);
  });

  it('issues nothing for a module while a deployment holds its lock: the deployment decides', () => {
    const steps = convergenceSteps(state, { reported: {} }, (m) => (m === 'demo-kernel' ? 'dep-running' : undefined));
    expect(steps).toMatchObject([{ module: 'demo-kernel', waitingFor: 'dep-running' }]);
    expect(convergenceBookkeeping({}, steps, state, { reported: {} }, []).issue).toEqual([]);
  });

  it('in blue-green environments converges only the colour that serves the version; the standby keeps what it has', () => {
    const bg: DesiredModules = { 'demo-kernel': desired('1.1.0', 'dep-a', 1, { colour: 'green' }) };
    expect(convergenceSteps(bg, { colour: 'blue', reported: running({ 'demo-kernel': '1.0.0' }) }, noLocks)).toEqual([]);
    expect(convergenceSteps(bg, { colour: 'green', reported: {} }, noLocks)).toMatchObject([{ to: '1.1.0' }]);
  });
});

describe('convergence bookkeeping', () => {
  const state: DesiredModules = { 'demo-kernel': desired('1.1.0', 'dep-a') };
  const node = { reported: running({ 'demo-kernel': '1.0.0' }) };
  const tracked = (commandId: string, extra: Partial<TrackedConvergence> = {}): Record<string, TrackedConvergence> => ({
    'demo-kernel': { commandId, from: '1.0.0', to: '1.1.0', startedAt: at, ...extra },
  });

  it('starts (and audits) a convergence once per desired entry, and issues its command on every heartbeat until done', () => {
    const steps = convergenceSteps(state, node, noLocks);
    const first = convergenceBookkeeping({}, steps, state, node, []);
    expect(first.start.map((s) => s.commandId)).toEqual(['converge:dep-a:r1']);
    expect(first.issue).toHaveLength(1);
    const again = convergenceBookkeeping(tracked('converge:dep-a:r1'), steps, state, node, []);
    expect(again.start).toEqual([]);
    expect(again.issue).toHaveLength(1);
  });

  it('starts again when the desired entry changed under a running convergence', () => {
    const steps = convergenceSteps(state, node, noLocks);
    expect(convergenceBookkeeping(tracked('converge:dep-old:r1'), steps, state, node, []).start).toHaveLength(1);
  });

  it('finishes a convergence when the node reports the desired version, and cancels one no longer wanted', () => {
    const done = { reported: running({ 'demo-kernel': '1.1.0' }) };
    const finished = convergenceBookkeeping(tracked('converge:dep-a:r1'), convergenceSteps(state, done, noLocks), state, done, []);
    expect(finished.converged).toMatchObject([{ module: 'demo-kernel', version: '1.1.0' }]);
    const gone = convergenceBookkeeping(tracked('converge:dep-a:r1'), [], {}, node, []);
    expect(gone.cancelled).toMatchObject([{ module: 'demo-kernel' }]);
    expect(gone.converged).toEqual([]);
  });

  it('records a failure the agent reports for the current command once per reason', () => {
    const steps = convergenceSteps(state, node, noLocks);
    const failure = { module: 'demo-kernel', deploymentId: 'converge:dep-a:r1', code: 'SignatureInvalid', message: 'untrusted root' };
    expect(convergenceBookkeeping(tracked('converge:dep-a:r1'), steps, state, node, [failure]).failed).toHaveLength(1);
    const recorded = tracked('converge:dep-a:r1', { lastError: { code: 'SignatureInvalid', message: 'untrusted root', at } });
    expect(convergenceBookkeeping(recorded, steps, state, node, [failure]).failed).toEqual([]);
    // A failure of an older command says nothing about the current one.
    expect(convergenceBookkeeping(tracked('converge:dep-a:r1'), steps, state, node, [{ ...failure, deploymentId: 'converge:dep-x:r1' }]).failed).toEqual([]);
  });

  it('shows a node as Converging with what is pending, since when, what blocks it and the last error', () => {
    const steps = convergenceSteps(state, node, () => 'dep-running');
    const view = convergenceView(steps, tracked('converge:dep-a:r1', { lastError: { code: 'LoadFailed', message: 'hook failed', at } }));
    expect(view).toEqual({
      state: 'Converging',
      pending: [
        {
          module: 'demo-kernel',
          from: '1.0.0',
          to: '1.1.0',
          desiredBy: 'dep-a',
          since: at,
          waitingFor: 'dep-running',
          lastError: { code: 'LoadFailed', message: 'hook failed', at },
        },
      ],
    });
    expect(convergenceView([], {})).toEqual({ state: 'Converged', pending: [] });
  });
});
