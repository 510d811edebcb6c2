import { describe, expect, it } from 'vitest';
import { ExecutionJournal, parseJsonLines, replayedError, taskKey, type JournalEntry } from '../../../localcloud/executionJournal.ts';

/** A journal whose entries are kept in an array, as the store appends them to a file. */
function journal(entries: JournalEntry[] = []) {
  const written: JournalEntry[] = [];
  return { j: new ExecutionJournal(entries, (e) => written.push(e)), written };
}

describe('taskKey', () => {
  it('is the same for the same state and input, whatever the key order', () => {
    expect(taskKey('DeployBatch', { executionId: 'dep-1', batch: 3 })).toBe(taskKey('DeployBatch', { batch: 3, executionId: 'dep-1' }));
  });

  it('tells apart states, and inputs that differ anywhere', () => {
    const k = taskKey('DeployBatch', { executionId: 'dep-1', batch: 3 });
    expect(taskKey('VerifyBatch', { executionId: 'dep-1', batch: 3 })).not.toBe(k);
    expect(taskKey('DeployBatch', { executionId: 'dep-1', batch: 4 })).not.toBe(k);
    expect(taskKey('DeployBatch', { executionId: 'dep-1', batch: 3, extra: null })).not.toBe(k);
  });
});

describe('ExecutionJournal', () => {
  it('answers a later run with what an earlier one recorded, occurrence by occurrence', () => {
    const first = journal();
    // A task retried with the same input: the first attempt failed, the second succeeded.
    first.j.recordError(first.j.begin('Deploy', { batch: 0 }), { name: 'Lambda.ServiceException', message: 'throttled' });
    first.j.recordResult(first.j.begin('Deploy', { batch: 0 }), { deployed: 2 });
    first.j.recordResult(first.j.begin('Deploy', { batch: 1 }), { deployed: 1 });
    expect(first.written.map((e) => [e.kind, e.o])).toEqual([
      ['error', 0],
      ['result', 1],
      ['result', 0],
    ]);

    const again = journal(first.written);
    expect(again.j.replaying).toBe(true);
    // The Map may run its iterations in another order this time: inputs tell them apart.
    expect(again.j.begin('Deploy', { batch: 1 }).outcome).toEqual({ ok: true, result: { deployed: 1 } });
    expect(again.j.begin('Deploy', { batch: 0 }).outcome).toEqual({ ok: false, error: { name: 'Lambda.ServiceException', message: 'throttled' } });
    expect(again.j.replaying).toBe(true);
    expect(again.j.begin('Deploy', { batch: 0 }).outcome).toEqual({ ok: true, result: { deployed: 2 } });
    expect(again.j.replaying).toBe(false);
    // Past the journal: a task that never completed runs for real.
    const next = again.j.begin('Deploy', { batch: 0 });
    expect(next.outcome).toBeUndefined();
    expect(next.occurrence).toBe(2);
    again.j.recordResult(next, { deployed: 2 });
    expect(again.j.replaying).toBe(false);
    expect(again.written).toHaveLength(1);
  });

  it('keeps a waiting task token, and whether its integration was started with it', () => {
    const first = journal();
    const gate = first.j.begin('RequestApproval', { env: 'Staging' });
    first.j.recordToken(gate, 'tok-1', 1_000_000);
    const resumedBeforeInvoke = journal(first.written).j.begin('RequestApproval', { env: 'Staging' });
    expect(resumedBeforeInvoke.token).toEqual({ token: 'tok-1', deadline: 1_000_000, invoked: false });
    expect(resumedBeforeInvoke.outcome).toBeUndefined();

    first.j.recordInvoked(gate);
    expect(journal(first.written).j.begin('RequestApproval', { env: 'Staging' }).token).toEqual({ token: 'tok-1', deadline: 1_000_000, invoked: true });
    // A journal holding a token but no outcome is not "replaying": the wait itself is live.
    expect(journal(first.written).j.replaying).toBe(false);
  });

  it("keeps a Wait state's deadline", () => {
    const first = journal();
    first.j.recordWait(first.j.begin('Bake', { wave: 0 }), 123_456);
    expect(journal(first.written).j.begin('Bake', { wave: 0 }).wait).toEqual({ deadline: 123_456 });
    expect(journal(first.written).j.begin('Bake', { wave: 1 }).wait).toBeUndefined();
  });

  it('records undefined results as null, so they replay as what the interpreter saw', () => {
    const first = journal();
    first.j.recordResult(first.j.begin('Finish', {}), undefined);
    expect(journal(first.written).j.begin('Finish', {}).outcome).toEqual({ ok: true, result: null });
  });
});

describe('replayedError', () => {
  it('carries the name and message Retry and Catch match on', () => {
    const e = replayedError({ name: 'NodeDeployFailed', message: 'batch 2: 1 of 5 nodes failed' });
    expect(e).toBeInstanceOf(Error);
    expect([e.name, e.message]).toEqual(['NodeDeployFailed', 'batch 2: 1 of 5 nodes failed']);
  });
});

describe('parseJsonLines', () => {
  it('reads appended lines', () => {
    expect(parseJsonLines('{"a":1}\n{"a":2}\n')).toEqual({ entries: [{ a: 1 }, { a: 2 }] });
    expect(parseJsonLines('')).toEqual({ entries: [] });
  });

  it('drops a torn last line (the process died mid-write)', () => {
    expect(parseJsonLines('{"a":1}\n{"a":')).toEqual({ entries: [{ a: 1 }] });
  });

  it('refuses a file with an unreadable line before its end', () => {
    expect(parseJsonLines('{"a":1}\nnot json\n{"a":3}\n')).toEqual({ entries: [{ a: 1 }], problem: 'line 2 is not JSON' });
    // A bad last line that was written whole (newline-terminated) is damage, not a torn write.
    expect(parseJsonLines('{"a":1}\n{"a":\n').problem).toBe('line 2 is not JSON');
  });
});
