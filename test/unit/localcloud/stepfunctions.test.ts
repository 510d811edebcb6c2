/**
 * Durable local executions (ADR 0014): an execution stopped with the local cloud (suspendAll, which
 * writes nothing more, like a kill) is run again by the next instance over the same store, its
 * tasks answering from the journal. The functions are fakes the tests hold on to; the interpreter,
 * the journal and the files are the real ones.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ExecutionStore } from '../../../localcloud/executionStore.ts';
import { executionArnOf, LocalStepFunctions, stateMachineArn, type ExecutionStatusChangeEvent } from '../../../localcloud/stepfunctions.ts';

const fn = (name: string) => `arn:aws:lambda:us-east-1:000000000000:function:${name}`;

const FLOW = {
  StartAt: 'First',
  States: {
    First: { Type: 'Task', Resource: fn('step'), Parameters: { n: 1 }, ResultPath: '$.first', TimeoutSeconds: 60, Next: 'Each' },
    Each: {
      Type: 'Map',
      ItemsPath: '$.items',
      MaxConcurrency: 1,
      ItemProcessor: {
        ProcessorConfig: { Mode: 'INLINE' },
        StartAt: 'Item',
        States: { Item: { Type: 'Task', Resource: fn('item'), TimeoutSeconds: 60, End: true } },
      },
      ResultPath: '$.done',
      Next: 'Pause',
    },
    Pause: { Type: 'Wait', SecondsPath: '$.pause', Next: 'Last' },
    Last: { Type: 'Task', Resource: fn('step'), Parameters: { n: 2 }, ResultPath: '$.last', TimeoutSeconds: 60, End: true },
  },
};

const GATE = {
  StartAt: 'Gate',
  States: {
    Gate: {
      Type: 'Task',
      Resource: 'arn:aws:states:::lambda:invoke.waitForTaskToken',
      Parameters: { FunctionName: fn('notify'), Payload: { 'token.$': '$$.Task.Token', 'who.$': '$.who' } },
      TimeoutSecondsPath: '$.timeout',
      ResultPath: '$.decision',
      Catch: [{ ErrorEquals: ['States.ALL'], ResultPath: '$.error', Next: 'Closed' }],
      End: true,
    },
    Closed: { Type: 'Pass', End: true },
  },
};

const PARENT = {
  StartAt: 'RunChild',
  States: {
    RunChild: {
      Type: 'Task',
      Resource: 'arn:aws:states:::states:startExecution.sync:2',
      Parameters: { StateMachineArn: stateMachineArn('child'), 'Name.$': "States.Format('{}-child', $$.Execution.Name)", Input: { 'v.$': '$.v' } },
      TimeoutSeconds: 600,
      End: true,
    },
  },
};
const CHILD = { StartAt: 'Work', States: { Work: { Type: 'Task', Resource: fn('item'), TimeoutSeconds: 60, End: true } } };

type Handler = (event: any) => unknown;

/** One local Step Functions over a store, with fake functions that record their calls. */
function service(
  dir: string,
  handlers: Record<string, Handler>,
  opts: { events?: ExecutionStatusChangeEvent[]; failEvents?: boolean; finishedInMemory?: number } = {},
) {
  const calls: { fn: string; event: any }[] = [];
  const sfn = new LocalStepFunctions(
    {
      invoke: async (arn: string, event: unknown) => {
        const name = arn.split(':')[6];
        calls.push({ fn: name, event });
        return handlers[name](event);
      },
    },
    {
      store: new ExecutionStore(dir, executionArnOf),
      onStatusChange: async (e) => {
        opts.events?.push(e);
        if (opts.failEvents) throw new Error('target down');
      },
      finishedInMemory: opts.finishedInMemory,
    },
  );
  for (const [name, def] of Object.entries({ flow: FLOW, gate: GATE, parent: PARENT, child: CHILD })) sfn.createStateMachine(name, JSON.stringify(def));
  return { sfn, calls };
}

/** A promise the test settles, for a task that is in flight when the cloud goes down. */
function gate<T = unknown>() {
  let open!: (v: T) => void;
  const p = new Promise<T>((r) => (open = r));
  return { p, open };
}

async function until(check: () => boolean, what: string, ms = 10_000) {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const services: LocalStepFunctions[] = [];
afterEach(async () => {
  for (const s of services.splice(0)) await s.suspendAll();
});
function track<T extends { sfn: LocalStepFunctions }>(s: T): T {
  services.push(s.sfn);
  return s;
}

describe('local Step Functions: durable executions', () => {
  it('resumes an execution after a restart: completed tasks answer from the journal, the one in flight runs again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const stuck = gate();
    const before = track(
      service(dir, {
        step: (e) => ({ step: e.n }),
        item: (e) => (e === 'c' ? stuck.p : `did ${e}`),
      }),
    );
    const { executionArn } = before.sfn.startExecution({
      stateMachineArn: stateMachineArn('flow'),
      name: 'run-1',
      input: JSON.stringify({ items: ['a', 'b', 'c', 'd'], pause: 0 }),
    });
    await until(() => before.calls.some((c) => c.event === 'c'), 'item c to start');
    const prefix = before.sfn.history(executionArn).length;
    await before.sfn.suspendAll(); // the process goes away; nothing more is written

    const after = track(service(dir, { step: (e) => ({ step: e.n }), item: (e) => `did ${e}` }));
    expect(after.sfn.resume()).toEqual({ resumed: [executionArn], failed: [] });
    const done = await after.sfn.waitFor(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!)).toEqual({
      items: ['a', 'b', 'c', 'd'],
      pause: 0,
      first: { step: 1 },
      done: ['did a', 'did b', 'did c', 'did d'],
      last: { step: 2 },
    });
    // Only what had not completed ran again: item c (in flight at the restart), then the rest.
    expect(after.calls.map((c) => c.event)).toEqual(['c', 'd', { n: 2 }]);

    const history = after.sfn.history(executionArn);
    expect(history.length).toBeGreaterThan(prefix);
    expect(history.every((e, i) => e.id === i + 1 && e.previousEventId === i)).toBe(true);
    const count = (type: string, name?: string) =>
      history.filter((e) => e.type === type && (!name || (e.stateEnteredEventDetails as { name?: string } | undefined)?.name === name)).length;
    expect(count('ExecutionStarted')).toBe(1);
    expect(count('TaskStateEntered', 'Item')).toBe(4);
    expect(count('WaitStateEntered', 'Pause')).toBe(1);
    expect(count('ExecutionSucceeded')).toBe(1);
    // The history on disk is the same as the one in memory.
    expect(new ExecutionStore(dir, executionArnOf).readHistory(executionArn)).toEqual(history);
  });

  it('keeps a Wait state’s deadline across a restart: only what is left is slept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const before = track(service(dir, { step: (e) => ({ step: e.n }), item: (e) => e }));
    const { executionArn } = before.sfn.startExecution({
      stateMachineArn: stateMachineArn('flow'),
      name: 'bake',
      input: JSON.stringify({ items: [], pause: 4 }),
    });
    await until(() => before.sfn.history(executionArn).some((e) => e.type === 'WaitStateEntered'), 'the wait');
    const waitStarted = Date.now();
    await before.sfn.suspendAll();
    await new Promise((r) => setTimeout(r, 2500)); // the cloud is down for a while

    const after = track(service(dir, { step: (e) => ({ step: e.n }), item: (e) => e }));
    const resumedAt = Date.now();
    after.sfn.resume();
    expect((await after.sfn.waitFor(executionArn)).status).toBe('SUCCEEDED');
    const finished = Date.now();
    // Never before the deadline; well before a fresh 4-second wait would end.
    expect(finished - waitStarted).toBeGreaterThanOrEqual(3900);
    expect(finished - resumedAt).toBeLessThan(3500);
    const types = after.sfn.history(executionArn).map((e) => e.type);
    expect(types.filter((t) => t === 'WaitStateEntered')).toHaveLength(1);
    expect(types.filter((t) => t === 'WaitStateExited')).toHaveLength(1);
  });

  it('a waiting task token stays valid across a restart; the integration is not started again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const before = track(service(dir, { notify: () => ({ mailed: true }) }));
    const { executionArn } = before.sfn.startExecution({
      stateMachineArn: stateMachineArn('gate'),
      name: 'approval',
      input: JSON.stringify({ who: 'amy', timeout: 600 }),
    });
    await until(() => before.calls.length === 1, 'the notification');
    const token = before.calls[0].event.token as string;
    expect(token).toMatch(/^[0-9a-f]{64}$/);
    await new Promise((r) => setTimeout(r, 50)); // the notification has returned
    await before.sfn.suspendAll();

    const after = track(service(dir, { notify: () => ({ mailed: true }) }));
    after.sfn.resume();
    await new Promise((r) => setTimeout(r, 200));
    expect(after.calls).toEqual([]); // the approvers were told before the restart
    expect(after.sfn.sendTaskSuccess(token, JSON.stringify({ approved: true }))).toEqual({});
    const done = await after.sfn.waitFor(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!).decision).toEqual({ approved: true });
    expect(() => after.sfn.sendTaskSuccess(token, '{}')).toThrow(/Task Timed Out/);
  });

  it('a waiting task keeps its own deadline across a restart and times out then, not a full timeout later', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const before = track(service(dir, { notify: () => ({}) }));
    const { executionArn } = before.sfn.startExecution({
      stateMachineArn: stateMachineArn('gate'),
      name: 'expiring',
      input: JSON.stringify({ who: 'amy', timeout: 4 }),
    });
    await until(() => before.calls.length === 1, 'the notification');
    const issued = Date.now();
    await before.sfn.suspendAll();
    await new Promise((r) => setTimeout(r, 2500));

    const after = track(service(dir, { notify: () => ({}) }));
    const resumedAt = Date.now();
    after.sfn.resume();
    const done = await after.sfn.waitFor(executionArn);
    expect(done.status).toBe('SUCCEEDED');
    expect(JSON.parse(done.output!).error).toEqual({ Error: 'States.Timeout', Cause: 'States.Timeout' });
    expect(Date.now() - issued).toBeGreaterThanOrEqual(3900);
    expect(Date.now() - resumedAt).toBeLessThan(3500);
  });

  it('a resumed parent finds the child its .sync task started; both finish once', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const stuck = gate();
    const before = track(service(dir, { item: () => stuck.p }));
    const { executionArn } = before.sfn.startExecution({ stateMachineArn: stateMachineArn('parent'), name: 'p1', input: JSON.stringify({ v: 7 }) });
    await until(() => before.calls.length === 1, 'the child task');
    await before.sfn.suspendAll();

    const after = track(service(dir, { item: (e) => ({ got: e.v }) }));
    const childArn = executionArnOf('child', 'p1-child');
    expect(after.sfn.resume().resumed.sort()).toEqual([childArn, executionArn].sort());
    const parent = await after.sfn.waitFor(executionArn);
    expect(parent.status, parent.cause).toBe('SUCCEEDED');
    expect(JSON.parse(parent.output!).Output).toEqual({ got: 7 });
    expect(after.calls).toHaveLength(1);
    const children = (await after.sfn.handle('ListExecutions', { stateMachineArn: stateMachineArn('child') })) as { executions: { status: string }[] };
    expect(children.executions.map((e) => e.status)).toEqual(['SUCCEEDED']);
  });

  it('stopping a parent stops the child its .sync task runs, and each end is announced as AWS does', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const events: ExecutionStatusChangeEvent[] = [];
    const s = track(service(dir, { item: () => gate().p }, { events }));
    const { executionArn } = s.sfn.startExecution({ stateMachineArn: stateMachineArn('parent'), name: 'p2', input: '{"v":1}' });
    await until(() => s.calls.length === 1, 'the child task');
    s.sfn.stopExecution(executionArn, 'Operator', 'stopped by hand');
    const childArn = executionArnOf('child', 'p2-child');
    expect((await s.sfn.waitFor(executionArn)).status).toBe('ABORTED');
    expect((await s.sfn.waitFor(childArn)).status).toBe('ABORTED');
    await until(() => events.filter((e) => e.detail.status === 'ABORTED').length === 2, 'the ABORTED events');
    const parentEnd = events.find((e) => e.detail.executionArn === executionArn && e.detail.status === 'ABORTED')!;
    expect(parentEnd).toMatchObject({
      version: '0',
      source: 'aws.states',
      'detail-type': 'Step Functions Execution Status Change',
      account: '000000000000',
      region: 'us-east-1',
      resources: [executionArn],
      detail: {
        executionArn,
        stateMachineArn: stateMachineArn('parent'),
        name: 'p2',
        status: 'ABORTED',
        input: '{"v":1}',
        error: 'Operator',
        cause: 'stopped by hand',
      },
    });
    expect(parentEnd.detail.stopDate).toBeGreaterThanOrEqual(parentEnd.detail.startDate);
    expect(events.some((e) => e.detail.executionArn === executionArn && e.detail.status === 'RUNNING')).toBe(true);
    // Delivered: marked so in the record, and not sent again by the next instance.
    await until(() => new ExecutionStore(dir, executionArnOf).load(executionArn).statusEventDelivered === true, 'the delivery mark');
    const again: ExecutionStatusChangeEvent[] = [];
    await s.sfn.suspendAll();
    track(service(dir, { item: () => null }, { events: again })).sfn.resume();
    await new Promise((r) => setTimeout(r, 100));
    expect(again).toEqual([]);
  });

  it('no task of a stopped execution starts, not even a Map iteration the interpreter had queued', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const first = gate();
    const s = track(service(dir, { step: (e) => ({ step: e.n }), item: (e) => (e === 'a' ? first.p : e) }));
    const { executionArn } = s.sfn.startExecution({
      stateMachineArn: stateMachineArn('flow'),
      name: 'stopped',
      input: JSON.stringify({ items: ['a', 'b', 'c'], pause: 0 }),
    });
    await until(() => s.calls.some((c) => c.event === 'a'), 'item a');
    s.sfn.stopExecution(executionArn);
    first.open('a done');
    expect((await s.sfn.waitFor(executionArn)).status).toBe('ABORTED');
    await new Promise((r) => setTimeout(r, 300));
    expect(s.calls.map((c) => c.event)).toEqual([{ n: 1 }, 'a']);
  });

  it('an end whose event was not handled is announced again at the next start', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const s = track(service(dir, { item: () => gate().p }, { failEvents: true }));
    const { executionArn } = s.sfn.startExecution({ stateMachineArn: stateMachineArn('child'), name: 'c1', input: '{}' });
    s.sfn.stopExecution(executionArn);
    await s.sfn.waitFor(executionArn);
    await s.sfn.suspendAll();
    const events: ExecutionStatusChangeEvent[] = [];
    track(service(dir, {}, { events })).sfn.resume();
    await until(() => events.length === 1, 'the event sent again');
    expect(events[0].detail).toMatchObject({ executionArn, status: 'ABORTED' });
  });

  it('an execution whose journal cannot be read ends FAILED with the reason, never left RUNNING', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const before = track(service(dir, { step: (e) => ({ step: e.n }), item: () => gate().p }));
    const { executionArn } = before.sfn.startExecution({
      stateMachineArn: stateMachineArn('flow'),
      name: 'broken',
      input: JSON.stringify({ items: ['a'], pause: 0 }),
    });
    await until(() => before.calls.length === 2, 'the item');
    await before.sfn.suspendAll();
    const journalFile = join(dir, 'executions', 'flow', 'broken.journal.jsonl');
    writeFileSync(journalFile, `garbage\n${readFileSync(journalFile, 'utf8')}`);

    const events: ExecutionStatusChangeEvent[] = [];
    const after = track(service(dir, { step: () => ({}), item: () => 'x' }, { events }));
    expect(after.sfn.resume()).toEqual({ resumed: [], failed: [executionArn] });
    const d = after.sfn.describeExecution(executionArn);
    expect(d).toMatchObject({ status: 'FAILED', error: 'States.Runtime' });
    expect(d.cause).toContain('journal is unreadable (line 1 is not JSON)');
    expect(after.calls).toEqual([]);
    await until(() => events.length === 1, 'the FAILED event');
    expect(events[0].detail).toMatchObject({ executionArn, status: 'FAILED', error: 'States.Runtime' });
  });

  it('an unreadable record still ends FAILED, named by its file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const before = track(service(dir, { item: () => gate().p }));
    const { executionArn } = before.sfn.startExecution({ stateMachineArn: stateMachineArn('child'), name: 'dep-0mwy4c29p-f65fca188182', input: '{}' });
    await before.sfn.suspendAll();
    writeFileSync(join(dir, 'executions', 'child', 'dep-0mwy4c29p-f65fca188182.json'), '{"trunc');
    const events: ExecutionStatusChangeEvent[] = [];
    const after = track(service(dir, {}, { events }));
    expect(after.sfn.resume().failed).toEqual([executionArn]);
    await until(() => events.length === 1, 'the FAILED event');
    expect(events[0].detail).toMatchObject({ executionArn, name: 'dep-0mwy4c29p-f65fca188182', status: 'FAILED', error: 'States.Runtime' });
    expect(events[0].detail.cause).toMatch(/record .* is unreadable/);
  });

  it('keeps only the last N finished executions in memory in full; older ones are read from disk, unchanged', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kmod-sfn-'));
    const s = track(service(dir, { item: (e) => ({ echo: e }) }, { finishedInMemory: 1 }));
    const arns: string[] = [];
    const seen: { history: unknown; described: unknown }[] = [];
    for (let i = 0; i < 3; i++) {
      const { executionArn } = s.sfn.startExecution({ stateMachineArn: stateMachineArn('child'), name: `m${i}`, input: JSON.stringify({ i }) });
      await s.sfn.waitFor(executionArn);
      arns.push(executionArn);
      seen.push({ history: structuredClone(s.sfn.history(executionArn)), described: s.sfn.describeExecution(executionArn) });
    }
    const held = (s.sfn as unknown as { executions: Map<string, { detail?: unknown }> }).executions;
    expect(arns.map((a) => held.get(a)?.detail !== undefined)).toEqual([false, false, true]);
    arns.forEach((a, i) => {
      expect(s.sfn.history(a)).toEqual(seen[i].history);
      expect(s.sfn.describeExecution(a)).toEqual(seen[i].described);
    });
    expect(JSON.parse(s.sfn.describeExecution(arns[0]).output!)).toEqual({ echo: { i: 0 } });
  });
});

describe('local Step Functions: definition checks', () => {
  it('refuses a definition the States Language forbids at every start, while a valid one is checked once and then runs', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sfn-valid-'));
    const { sfn } = track(service(dir, { item: (e) => e }));
    // A Pass state that names neither Next nor End: the schema check refuses it.
    sfn.createStateMachine('broken', JSON.stringify({ StartAt: 'P', States: { P: { Type: 'Pass' } } }));
    for (let i = 0; i < 2; i++) {
      expect(() => sfn.startExecution({ stateMachineArn: stateMachineArn('broken'), name: `b${i}` })).toThrow(/definition is invalid/);
      // Refused before anything was recorded: no execution is left RUNNING, in memory or on disk.
      expect(() => sfn.describeExecution(executionArnOf('broken', `b${i}`))).toThrow(/does not exist/i);
    }
    expect(new ExecutionStore(dir, executionArnOf).list().map((e) => e.executionArn)).toEqual([]);
    const arns = [0, 1, 2].map(
      (i) => sfn.startExecution({ stateMachineArn: stateMachineArn('child'), name: `c${i}`, input: JSON.stringify({ i }) }).executionArn,
    );
    await until(() => arns.every((a) => sfn.describeExecution(a).status === 'SUCCEEDED'), 'the three children to succeed');
    expect(arns.map((a) => JSON.parse(sfn.describeExecution(a).output ?? 'null'))).toEqual([{ i: 0 }, { i: 1 }, { i: 2 }]);
  });

  it('checks every definition ahead of the first execution, one per turn of the loop, reporting an invalid one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sfn-valid-'));
    const { sfn } = track(service(dir, { item: (e) => e }));
    sfn.createStateMachine('broken', JSON.stringify({ StartAt: 'P', States: { P: { Type: 'Pass' } } }));
    const reported: string[] = [];
    sfn.checkDefinitionsInBackground((machine, e) => reported.push(`${machine}: ${e.message.split('\n')[0]}`));
    // Nothing is checked synchronously: the caller's turn of the loop is not held up.
    expect(reported).toEqual([]);
    await until(() => reported.length > 0, 'the broken definition to be reported');
    expect(reported).toEqual(['broken: State machine definition is invalid, see error(s) below:']);
    // Still refused at its start, and nothing recorded.
    expect(() => sfn.startExecution({ stateMachineArn: stateMachineArn('broken'), name: 'late' })).toThrow(/definition is invalid/);
  });
});
