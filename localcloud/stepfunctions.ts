/**
 * Step Functions, locally: the service's JSON API (StartExecution, DescribeExecution,
 * ListExecutions, StopExecution, GetExecutionHistory, SendTaskSuccess/Failure/Heartbeat,
 * List/DescribeStateMachine) over the ASL files in statemachines/, run unchanged by
 * aws-local-stepfunctions. Task states are bound by their Resource: Lambda ARNs to the in-process
 * functions, `states:startExecution(.sync)` to this service.
 *
 * Executions are durable (docs/adr/0014-durable-local-executions.md): each one's record, a journal
 * of its task outcomes and its history are kept on disk (executionStore.ts), and a restart runs
 * every execution that was still RUNNING again from its input, its tasks answering from the
 * journal (executionJournal.ts) until they catch up; a waiting task token stays valid and a Wait
 * keeps its deadline. Each execution's end is announced as the EventBridge "Step Functions
 * Execution Status Change" event AWS sends.
 */
import { randomUUID } from 'node:crypto';
import { StateMachine } from 'aws-local-stepfunctions';
import { ExecutionJournal, replayedError, type JournalEntry, type TaskInvocation } from './executionJournal.ts';
import { type ExecutionFiles, type ExecutionRecord, type ExecutionStatus, type ExecutionStore, type HistoryEvent, executionParts } from './executionStore.ts';
import { ACCOUNT, REGION, type LocalLambda } from './lambda.ts';

export type { ExecutionStatus, HistoryEvent } from './executionStore.ts';

/** What the local service keeps of an execution in memory. */
interface Execution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  startDate: number;
  stopDate?: number;
  parentExecutionArn?: string;
  definitionHash: string;
  statusEventDelivered?: boolean;
  /** Input, output, error, cause and history: dropped from memory once the execution is old (read from disk). */
  detail?: { input: string; output?: string; error?: string; cause?: string; history: HistoryEvent[] };
  abort: () => void;
  /** Settles when the execution has ended (or its run was suspended); exists before the run starts. */
  done: Promise<void>;
  settleDone: () => void;
  files?: ExecutionFiles;
}

interface Machine {
  name: string;
  arn: string;
  definition: string;
  createdAt: number;
}

/** The EventBridge event AWS sends when an execution changes status (`aws.states`). */
export interface ExecutionStatusChangeEvent {
  version: '0';
  id: string;
  'detail-type': 'Step Functions Execution Status Change';
  source: 'aws.states';
  account: string;
  time: string;
  region: string;
  resources: string[];
  detail: {
    executionArn: string;
    stateMachineArn: string;
    name: string;
    status: ExecutionStatus;
    startDate: number;
    stopDate: number | null;
    input: string | null;
    output: string | null;
    inputDetails: { included: boolean };
    outputDetails: { included: boolean } | null;
    error: string | null;
    cause: string | null;
  };
}

export interface LocalStepFunctionsOptions {
  /** Where executions are kept; without one they live in memory only. */
  store?: ExecutionStore;
  /** Receives every status change (EventBridge); a terminal one counts as delivered once this resolves. */
  onStatusChange?: (event: ExecutionStatusChangeEvent) => Promise<void>;
  /** Finished executions whose input, output and history stay in memory (older ones: read from disk). */
  finishedInMemory?: number;
}

export class ServiceError extends Error {
  constructor(
    readonly type: string,
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

const now = () => Date.now() / 1000;

export const stateMachineArn = (name: string) => `arn:aws:states:${REGION}:${ACCOUNT}:stateMachine:${name}`;
export const executionArnOf = (machine: string, name: string) => `arn:aws:states:${REGION}:${ACCOUNT}:execution:${machine}:${name}`;

/** Finished executions kept in memory in full by default (see LocalStepFunctionsOptions.finishedInMemory). */
export const FINISHED_IN_MEMORY = 50;
/** Closed executions are kept this long, as on AWS. */
const RETENTION_SECONDS = 90 * 86_400;

type TaskHandler = (input: unknown) => Promise<unknown>;
type Definition = { States: Record<string, Record<string, unknown>> };

interface TaskStateRef {
  name: string;
  resource: string;
  /** TimeoutSeconds, or the interpreter's default (60 s) when neither it nor TimeoutSecondsPath is set. */
  timeoutSeconds?: number;
}

/** Every Task state, at any depth (Map item processors, Parallel branches). */
function taskStates(definition: Definition): TaskStateRef[] {
  const out: TaskStateRef[] = [];
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Task')
      out.push({
        name,
        resource: String(state.Resource),
        timeoutSeconds: typeof state.TimeoutSeconds === 'number' ? state.TimeoutSeconds : state.TimeoutSecondsPath ? undefined : 60,
      });
    for (const nested of nestedDefinitions(state)) out.push(...taskStates(nested));
  }
  return out;
}

function nestedDefinitions(state: Record<string, unknown>): Definition[] {
  const nested = (state.ItemProcessor ?? state.Iterator) as Definition | undefined;
  return [...(nested ? [nested] : []), ...((state.Branches as Definition[] | undefined) ?? [])];
}

/** Where `$$.Task.Token` points for the interpreter; each waiting task swaps in a real token. */
const TOKEN_PLACEHOLDER = '__LOCAL_TASK_TOKEN__';
/** Hidden Parameters key carrying a TimeoutSecondsPath value (see prepareForInterpreter). */
const TIMEOUT_KEY = '__timeoutSeconds';
/** The Resource of a Wait state rewritten as a task (see prepareForInterpreter). */
const WAIT_RESOURCE = 'local:wait';
/** The rewritten Wait's own task timeout: the longest a Node.js timer can run (the wait itself may be longer). */
const WAIT_TASK_TIMEOUT_SECONDS = 2_147_483;

interface WaitingTask {
  executionArn: string;
  stateName: string;
  resolve: (output: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/**
 * Adapt a definition to the interpreter; returns the names of the Wait states it rewrote.
 *
 * - Step Functions resolves TimeoutSecondsPath against the state's input; the interpreter resolves
 *   it after Parameters. Carry the value through Parameters under a hidden key so both agree; the
 *   task binding strips it again before the integration sees the input.
 * - A Wait state becomes a task of this service that journals its deadline when first entered, so a
 *   resumed execution sleeps only what is left (the history still names it a Wait state).
 */
function prepareForInterpreter(definition: Definition, waits = new Set<string>()): Set<string> {
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Task' && typeof state.TimeoutSecondsPath === 'string' && state.Parameters && typeof state.Parameters === 'object') {
      (state.Parameters as Record<string, unknown>)[`${TIMEOUT_KEY}.$`] = state.TimeoutSecondsPath;
      state.TimeoutSecondsPath = `$.${TIMEOUT_KEY}`;
    }
    if (state.Type === 'Wait') {
      const { Seconds, SecondsPath, Timestamp, TimestampPath, Type: _wait, ...rest } = state;
      const when =
        Seconds !== undefined
          ? { seconds: Seconds }
          : SecondsPath !== undefined
            ? { 'seconds.$': SecondsPath }
            : Timestamp !== undefined
              ? { timestamp: Timestamp }
              : { 'timestamp.$': TimestampPath };
      definition.States[name] = {
        ...rest,
        Type: 'Task',
        Resource: WAIT_RESOURCE,
        Parameters: { 'input.$': '$', ...when },
        TimeoutSeconds: WAIT_TASK_TIMEOUT_SECONDS,
      };
      waits.add(name);
    }
    for (const nested of nestedDefinitions(state)) prepareForInterpreter(nested, waits);
  }
  return waits;
}

function replaceDeep(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((v) => replaceDeep(v, from, to));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceDeep(v, from, to)]));
  return value;
}

/** The error a task gets when it outlives its timeout, as the interpreter names it. */
function timeoutError(): Error {
  const e = new Error('States.Timeout');
  e.name = 'States.Timeout';
  return e;
}

/** What a task of an execution that is no longer running gets instead of running. */
function stoppedError(exec: { executionArn: string; status: string }): Error {
  const e = new Error(`${exec.executionArn} is ${exec.status === 'RUNNING' ? 'suspended' : exec.status}: no task of it starts`);
  e.name = 'States.Runtime';
  return e;
}

/** Resolves at `deadline` (epoch ms), however far away; never keeps the process alive. */
function sleepUntil(deadline: number): Promise<void> {
  return new Promise((resolve) => {
    const tick = () => {
      const left = deadline - Date.now();
      if (left <= 0) return resolve();
      setTimeout(tick, Math.min(left, 2_147_483_647)).unref();
    };
    tick();
  });
}

/** What a task binding may use besides its input. */
interface TaskContext {
  exec: Execution;
  journal: ExecutionJournal;
  inv: TaskInvocation;
  timeoutSeconds?: number;
  /** A waiting task's deadline is its token's, not the invocation's (a replay keeps it). */
  setDeadline: (epochMs: number) => void;
}

type Integration = (input: unknown, ctx: TaskContext) => Promise<unknown>;

export class LocalStepFunctions {
  private readonly machines = new Map<string, Machine>();
  /**
   * Definitions already checked against the States Language schema. Validating one takes
   * 100–700 ms of CPU here (asl-validator); AWS validates at CreateStateMachine, not at each
   * StartExecution, so each distinct definition is checked once: in the background once the cloud
   * is up (checkDefinitionsInBackground), or at its first execution if that comes first.
   */
  private readonly validated = new Set<string>();
  private readonly executions = new Map<string, Execution>();
  private readonly waiting = new Map<string, WaitingTask>();
  /** Tokens of tasks that timed out or whose execution ended: answering them is TaskTimedOut. */
  private readonly expiredTokens = new Set<string>();
  /** Finished executions still held in full, oldest first. */
  private readonly finishedInMemory: string[] = [];
  private readonly keepFinished: number;
  /** Set by suspendAll: runs are stopped without their status changing (they resume at the next start). */
  private suspended = false;

  constructor(
    private readonly lambda: Pick<LocalLambda, 'invoke'>,
    private readonly opts: LocalStepFunctionsOptions = {},
  ) {
    this.keepFinished = opts.finishedInMemory ?? FINISHED_IN_MEMORY;
  }

  createStateMachine(name: string, definition: string): Machine {
    const parsed = JSON.parse(definition) as Definition;
    for (const t of taskStates(parsed)) this.integration(t); // fail fast on resources the local cloud cannot serve
    const m: Machine = { name, arn: stateMachineArn(name), definition, createdAt: now() };
    this.machines.set(m.arn, m);
    return m;
  }

  /** The service integration a Task state's Resource names. */
  private integration(task: TaskStateRef): Integration {
    const r = task.resource;
    if (r === WAIT_RESOURCE) return (input, ctx) => this.wait(input as { input: unknown; seconds?: number; timestamp?: string }, ctx);
    if (/^arn:aws:lambda:[^:]+:\d{12}:function:[^:]+$/.test(r)) return (input) => this.lambda.invoke(r, input);
    const lambdaInvoke = /^arn:aws:states:::lambda:invoke(\.waitForTaskToken)?$/.exec(r);
    if (lambdaInvoke) {
      return async (input, ctx) => {
        const p = input as { FunctionName: string; Payload?: unknown };
        if (!lambdaInvoke[1]) {
          const payload = await this.lambda.invoke(p.FunctionName, p.Payload ?? {});
          return { ExecutedVersion: '$LATEST', Payload: payload, StatusCode: 200 };
        }
        return this.waitForToken(task.name, ctx, async (token) => {
          await this.lambda.invoke(p.FunctionName, replaceDeep(p.Payload ?? {}, TOKEN_PLACEHOLDER, token));
        });
      };
    }
    const sync = /^arn:aws:states:::states:startExecution(\.sync(:2)?)?$/.exec(r);
    if (sync) {
      return async (input, { exec, inv }) => {
        const p = input as { StateMachineArn: string; Name?: string; Input?: unknown };
        // Without a Name, one derived from the task keeps a replayed start from starting a second child.
        const name = p.Name ?? `${exec.name.slice(0, 40)}-${inv.key.split('#')[1].slice(0, 20)}-${inv.occurrence}`.replace(/[^A-Za-z0-9_-]/g, '_');
        const machine = this.machines.get(p.StateMachineArn);
        const childArn = machine ? executionArnOf(machine.name, name) : '';
        const existing = this.executions.get(childArn);
        // A resumed parent finds the child it started before the restart (resumed too, or finished).
        const child =
          existing?.parentExecutionArn === exec.executionArn
            ? existing
            : this.executions.get(
                this.startExecution({ stateMachineArn: p.StateMachineArn, name, input: JSON.stringify(p.Input ?? {}) }, exec.executionArn).executionArn,
              )!;
        if (!sync[1]) return { executionArn: child.executionArn, startDate: child.startDate };
        await child.done;
        const described = this.describeExecution(child.executionArn);
        if (child.status !== 'SUCCEEDED') {
          const e = new Error(JSON.stringify(described));
          e.name = 'States.TaskFailed';
          throw e;
        }
        // `.sync:2` returns the child's output as JSON, `.sync` as a string.
        return sync[2] ? { ...described, Output: JSON.parse(described.output ?? 'null') } : described;
      };
    }
    throw new Error(`Task state ${task.name}: resource ${r} is not supported by the local cloud`);
  }

  /**
   * The Task state's handler for one execution: answer from the journal when an earlier run
   * recorded this occurrence's outcome; otherwise run the integration and record its outcome
   * before the interpreter goes on.
   */
  private handler(task: TaskStateRef, exec: Execution, journal: ExecutionJournal): TaskHandler {
    const integration = this.integration(task);
    return (raw) =>
      handled(
        (async () => {
          // The interpreter still starts Map iterations queued before a stop (ADR 0001, Map
          // queueing): no task of an execution that was stopped, or suspended for a restart, runs.
          if (exec.status !== 'RUNNING' || this.suspended) throw stoppedError(exec);
          const inv = journal.begin(task.name, raw);
          if (inv.outcome) {
            if (inv.outcome.ok) return inv.outcome.result;
            throw replayedError(inv.outcome.error);
          }
          const { input, timeoutSeconds: fromPath } = strip(raw);
          const timeoutSeconds = fromPath ?? task.timeoutSeconds;
          let deadline = timeoutSeconds ? Date.now() + timeoutSeconds * 1000 : Number.POSITIVE_INFINITY;
          // Only a run still going records anything: not one stopped, or suspended for a restart.
          const live = () => exec.status === 'RUNNING' && !this.suspended;
          try {
            const result = await integration(input, { exec, journal, inv, timeoutSeconds, setDeadline: (d) => (deadline = d) });
            // The interpreter gave up on it at its timeout: a replay must time out too.
            if (live()) Date.now() > deadline ? journal.recordError(inv, timeoutError()) : journal.recordResult(inv, result);
            return result;
          } catch (e) {
            if (live()) journal.recordError(inv, e as Error);
            throw e;
          }
        })(),
      );
  }

  /** A Wait state: sleep until its deadline, recorded when first entered. */
  private async wait(p: { input: unknown; seconds?: number; timestamp?: string }, { journal, inv }: TaskContext): Promise<unknown> {
    let deadline = inv.wait?.deadline;
    if (deadline === undefined) {
      deadline = p.seconds !== undefined ? Date.now() + Number(p.seconds) * 1000 : Date.parse(String(p.timestamp));
      if (Number.isNaN(deadline)) throw Object.assign(new Error(`Wait: not a timestamp: ${p.timestamp}`), { name: 'States.Runtime' });
      journal.recordWait(inv, deadline);
    }
    await sleepUntil(deadline);
    return p.input;
  }

  /**
   * `.waitForTaskToken`: start the integration with a fresh token (journaled first), then wait for
   * SendTask*. A replay re-registers the same token with the same deadline and starts the
   * integration again only if it had not been started.
   */
  private async waitForToken(stateName: string, ctx: TaskContext, start: (token: string) => Promise<void>): Promise<unknown> {
    const { exec, journal, inv } = ctx;
    const token = inv.token?.token ?? randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
    const deadline = inv.token ? inv.token.deadline : ctx.timeoutSeconds ? Date.now() + ctx.timeoutSeconds * 1000 : undefined;
    if (!inv.token) journal.recordToken(inv, token, deadline);
    if (deadline !== undefined) ctx.setDeadline(deadline);
    const done = new Promise<unknown>((resolve, reject) => {
      const w: WaitingTask = { executionArn: exec.executionArn, stateName, resolve, reject };
      // The gate's own deadline, kept across restarts: the token expires and the task times out.
      if (deadline !== undefined) {
        w.timer = setTimeout(() => this.expireToken(token), Math.max(0, deadline - Date.now()));
        w.timer.unref();
      }
      this.waiting.set(token, w);
    });
    done.catch(() => undefined);
    if (!inv.token?.invoked) {
      await start(token);
      if (exec.status === 'RUNNING' && !this.suspended) journal.recordInvoked(inv);
    }
    return done;
  }

  startExecution(req: { stateMachineArn: string; name?: string; input?: string }, parentExecutionArn?: string): { executionArn: string; startDate: number } {
    const machine = this.machines.get(req.stateMachineArn);
    if (!machine) throw new ServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${req.stateMachineArn}'`);
    const name = req.name ?? randomUUID();
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(name)) throw new ServiceError('InvalidName', `Invalid Name: '${name}'`);
    const input = req.input ?? '{}';
    try {
      JSON.parse(input);
    } catch {
      throw new ServiceError('InvalidExecutionInput', 'Invalid execution input: not JSON');
    }
    const executionArn = executionArnOf(machine.name, name);
    this.checkDefinition(machine.definition);
    const existing = this.executions.get(executionArn);
    if (existing) {
      // As on AWS: the same name and input while running is an idempotent start.
      if (existing.status === 'RUNNING' && existing.detail?.input === input) return { executionArn, startDate: existing.startDate };
      throw new ServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
    }
    const record: ExecutionRecord = {
      executionArn,
      stateMachineArn: machine.arn,
      name,
      status: 'RUNNING',
      startDate: now(),
      input,
      definitionHash: this.opts.store?.saveDefinition(machine.definition) ?? '',
      ...(parentExecutionArn ? { parentExecutionArn } : {}),
    };
    this.opts.store?.save(record);
    const exec = this.register(record, []);
    this.launch(exec, machine.definition, new ExecutionJournal([], (e) => exec.files?.appendJournal(e)), 0);
    this.announce(exec);
    return { executionArn, startDate: record.startDate };
  }

  /**
   * Check every machine's definition ahead of its first execution, one per turn of the event loop
   * (each check is synchronous CPU work). An invalid one is reported; its executions are still refused.
   */
  checkDefinitionsInBackground(report: (machine: string, e: Error) => void): { cancel: () => void } {
    const pending = [...this.machines.values()];
    let timer: NodeJS.Timeout | undefined;
    const next = () => {
      const m = pending.shift();
      if (!m) return;
      try {
        this.checkDefinition(m.definition);
      } catch (e) {
        report(m.name, e as Error);
      }
      timer = setTimeout(next, 0);
    };
    timer = setTimeout(next, 0);
    return { cancel: () => clearTimeout(timer) };
  }

  /** Throws, before anything is recorded, when the States Language schema forbids the definition. */
  private checkDefinition(definitionText: string): void {
    if (this.validated.has(definitionText)) return;
    const definition = JSON.parse(definitionText) as Definition;
    prepareForInterpreter(definition);
    new StateMachine(definition as never, { validationOptions: { checkArn: false } });
    this.validated.add(definitionText);
  }

  /** An execution known to this service, its run not started yet. */
  private register(record: ExecutionRecord, history: HistoryEvent[]): Execution {
    let settleDone!: () => void;
    const done = new Promise<void>((resolve) => (settleDone = resolve));
    const exec: Execution = {
      executionArn: record.executionArn,
      stateMachineArn: record.stateMachineArn,
      name: record.name,
      status: record.status,
      startDate: record.startDate,
      stopDate: record.stopDate,
      parentExecutionArn: record.parentExecutionArn,
      definitionHash: record.definitionHash,
      statusEventDelivered: record.statusEventDelivered,
      detail: { input: record.input, output: record.output, error: record.error, cause: record.cause, history },
      abort: () => undefined,
      done,
      settleDone,
    };
    if (record.status !== 'RUNNING') settleDone();
    this.executions.set(exec.executionArn, exec);
    return exec;
  }

  /**
   * Run an execution: from the start, or again after a restart (its journal answering the tasks
   * that completed, and the first `skipEvents` history events already recorded).
   */
  private launch(exec: Execution, definitionText: string, journal: ExecutionJournal, skipEvents: number): void {
    const definition = JSON.parse(definitionText) as Definition;
    const waits = prepareForInterpreter(definition);
    exec.files = this.opts.store?.open(exec.executionArn);
    const handlers: Record<string, TaskHandler> = {};
    for (const t of taskStates(definition)) handlers[t.name] = this.handler(t, exec, journal);
    // Checked before the execution was recorded (checkDefinition); a resumed one was checked when it started.
    const sm = new StateMachine(definition as never, { validationOptions: { noValidate: true } });
    const run = sm.run(JSON.parse(exec.detail?.input ?? '{}') as never, {
      overrides: {
        taskResourceLocalHandlers: handlers as never,
        // Retries of outcomes replayed from the journal do not wait their interval again.
        retryIntervalOverrides: new Proxy({}, { get: () => (journal.replaying ? 0 : undefined) }) as never,
      },
      context: {
        Execution: {
          Id: exec.executionArn,
          Name: exec.name,
          RoleArn: `arn:aws:iam::${ACCOUNT}:role/local-states`,
          StartTime: new Date(exec.startDate * 1000).toISOString(),
        },
        StateMachine: { Id: exec.stateMachineArn, Name: exec.stateMachineArn.split(':').at(-1) },
        Task: { Token: TOKEN_PLACEHOLDER },
      },
    });
    exec.abort = run.abort;
    const collecting = this.collectHistory(exec, run.eventLogs as AsyncGenerator<Record<string, unknown>>, definition, waits, skipEvents);
    run.result
      .then(
        (output: unknown) => {
          if (exec.status !== 'RUNNING' || this.suspended) return;
          this.end(exec, 'SUCCEEDED', { output: JSON.stringify(output ?? null) });
        },
        (e: Error & { cause?: Error }) => {
          if (exec.status !== 'RUNNING' || this.suspended) return;
          const inner = e.cause ?? e;
          const timedOut = e.name === 'ExecutionTimeoutError';
          const aborted = e.name === 'ExecutionAbortedError';
          this.end(exec, timedOut ? 'TIMED_OUT' : aborted ? 'ABORTED' : 'FAILED', {
            error: timedOut ? 'States.Timeout' : inner.name,
            cause: timedOut ? 'The execution timed out' : inner.message,
          });
        },
      )
      .then(() => collecting)
      .then(() => this.closed(exec))
      .finally(() => exec.settleDone());
  }

  /** The execution ends with this status (its run is over or being stopped). */
  private end(exec: Execution, status: Exclude<ExecutionStatus, 'RUNNING'>, detail: { output?: string; error?: string; cause?: string }): void {
    exec.status = status;
    exec.stopDate = now();
    if (exec.detail) Object.assign(exec.detail, detail);
  }

  /** After the run: persist the end, forget the tokens, bound memory, announce it. */
  private closed(exec: Execution): void {
    exec.files?.close();
    exec.files = undefined;
    if (this.suspended || exec.status === 'RUNNING') return;
    this.opts.store?.save(this.recordOf(exec));
    this.expireTokensOf(exec.executionArn);
    this.finishedInMemory.push(exec.executionArn);
    this.evictOldFinished();
    this.announce(exec);
  }

  private recordOf(exec: Execution): ExecutionRecord {
    const d = exec.detail ?? { ...this.opts.store!.load(exec.executionArn), history: [] };
    return {
      executionArn: exec.executionArn,
      stateMachineArn: exec.stateMachineArn,
      name: exec.name,
      status: exec.status,
      startDate: exec.startDate,
      stopDate: exec.stopDate,
      input: d.input,
      output: d.output,
      error: d.error,
      cause: d.cause,
      definitionHash: exec.definitionHash,
      parentExecutionArn: exec.parentExecutionArn,
      statusEventDelivered: exec.statusEventDelivered,
    };
  }

  /** Old finished executions keep only their summary in memory; the rest is read from disk on demand. */
  private evictOldFinished(): void {
    if (!this.opts.store) return;
    while (this.finishedInMemory.length > this.keepFinished) {
      const e = this.executions.get(this.finishedInMemory.shift()!);
      if (e) e.detail = undefined;
    }
  }

  /** Send the execution's current status as EventBridge would; a terminal one is marked delivered once handled. */
  private announce(exec: Execution): void {
    const send = this.opts.onStatusChange;
    if (!send) return;
    const terminal = exec.status !== 'RUNNING';
    if (terminal && exec.statusEventDelivered) return;
    const d = exec.detail ?? this.opts.store?.load(exec.executionArn);
    const event: ExecutionStatusChangeEvent = {
      version: '0',
      id: randomUUID(),
      'detail-type': 'Step Functions Execution Status Change',
      source: 'aws.states',
      account: ACCOUNT,
      time: new Date((exec.stopDate ?? exec.startDate) * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z'),
      region: REGION,
      resources: [exec.executionArn],
      detail: {
        executionArn: exec.executionArn,
        stateMachineArn: exec.stateMachineArn,
        name: exec.name,
        status: exec.status,
        startDate: Math.round(exec.startDate * 1000),
        stopDate: exec.stopDate === undefined ? null : Math.round(exec.stopDate * 1000),
        input: d?.input ?? null,
        output: d?.output ?? null,
        inputDetails: { included: d?.input !== undefined },
        outputDetails: d?.output === undefined ? null : { included: true },
        error: d?.error ?? null,
        cause: d?.cause ?? null,
      },
    };
    send(event).then(
      () => {
        if (!terminal || this.suspended) return;
        exec.statusEventDelivered = true;
        this.opts.store?.save(this.recordOf(exec));
      },
      () => undefined, // not delivered: sent again at the next start
    );
  }

  /**
   * After a restart: every stored execution becomes known again; each one still RUNNING is run
   * again from its input and its journal; one that cannot be (its record, journal or definition
   * unreadable) ends FAILED, so its Status Change event lets the product settle it. Ends whose
   * event was never handled are announced again.
   */
  resume(): { resumed: string[]; failed: string[] } {
    const store = this.opts.store;
    if (!store) return { resumed: [], failed: [] };
    store.prune(now() - RETENTION_SECONDS);
    const toRun: { exec: Execution; definition: string; entries: JournalEntry[]; history: HistoryEvent[] }[] = [];
    const failed: Execution[] = [];
    const toAnnounce: Execution[] = [];
    for (const stored of store.list()) {
      if (this.executions.has(stored.executionArn)) continue;
      if (!stored.record) {
        const { machine, name } = executionParts(stored.executionArn);
        // What it ran and with which input is lost with its record; its name still says which it was.
        const exec = this.register(
          {
            executionArn: stored.executionArn,
            stateMachineArn: stateMachineArn(machine),
            name,
            status: 'RUNNING',
            startDate: store.modifiedAt(stored.executionArn),
            input: '{}',
            definitionHash: '',
          },
          [],
        );
        this.cannotResume(exec, stored.problem);
        failed.push(exec);
        continue;
      }
      const record = stored.record;
      if (record.status !== 'RUNNING') {
        const exec = this.register(record, []);
        exec.detail = undefined; // finished before the restart: read from disk when asked
        if (!record.statusEventDelivered) toAnnounce.push(exec);
        continue;
      }
      const exec = this.register(record, store.readHistory(record.executionArn));
      const journal = store.readJournal<JournalEntry>(record.executionArn);
      let definition: string | undefined;
      try {
        definition = store.loadDefinition(record.definitionHash);
      } catch {
        /* reported below */
      }
      if (journal.problem || definition === undefined) {
        this.cannotResume(exec, journal.problem ? `its journal is unreadable (${journal.problem})` : 'the definition it ran is missing');
        failed.push(exec);
        continue;
      }
      toRun.push({ exec, definition, entries: journal.entries, history: exec.detail!.history });
    }
    // A child whose parent cannot run again is stopped with it (as stopping a parent stops its `.sync` children).
    const ended = new Set(failed.map((e) => e.executionArn));
    for (const r of [...toRun]) {
      if (!r.exec.parentExecutionArn || !ended.has(r.exec.parentExecutionArn)) continue;
      toRun.splice(toRun.indexOf(r), 1);
      this.end(r.exec, 'ABORTED', { error: 'States.Aborted', cause: `its parent execution ${r.exec.parentExecutionArn} could not be resumed` });
      store.save(this.recordOf(r.exec));
      r.exec.settleDone();
      ended.add(r.exec.executionArn);
      failed.push(r.exec);
    }
    // Every execution is known before any runs: a resumed parent looks up the child it started.
    for (const r of toRun) {
      this.launch(r.exec, r.definition, new ExecutionJournal(r.entries, (e) => r.exec.files?.appendJournal(e)), r.history.length);
    }
    for (const e of [...failed, ...toAnnounce]) this.announce(e);
    return { resumed: toRun.map((r) => r.exec.executionArn), failed: failed.map((e) => e.executionArn) };
  }

  /** An execution that cannot run again ends FAILED with the reason (never left RUNNING). */
  private cannotResume(exec: Execution, problem: string): void {
    this.end(exec, 'FAILED', {
      error: 'States.Runtime',
      cause: `the local cloud could not resume this execution after a restart: ${problem}`,
    });
    this.opts.store?.save(this.recordOf(exec));
    exec.settleDone();
  }

  private async collectHistory(
    exec: Execution,
    events: AsyncGenerator<Record<string, unknown>>,
    definition: Definition,
    waits: Set<string>,
    skipEvents: number,
  ) {
    const lambdaStates = new Set(
      taskStates(definition)
        .filter((t) => t.resource.startsWith('arn:aws:lambda:'))
        .map((t) => t.name),
    );
    // A resumed run replays what the stored history already shows: those events are not repeated.
    let toSkip = skipEvents;
    const push = (type: string, timestamp: number, details: Record<string, unknown> = {}) => {
      if (this.suspended || !exec.detail) return;
      if (toSkip > 0 && !type.startsWith('Execution')) {
        toSkip--;
        return;
      }
      const history = exec.detail.history;
      const id = history.length + 1;
      const event: HistoryEvent = { id, previousEventId: id - 1, timestamp: timestamp / 1000, type, ...details };
      history.push(event);
      exec.files?.appendHistory(event);
    };
    try {
      for await (const ev of events) {
        const ts = Number(ev.timestamp ?? Date.now());
        const state = ev.state as { name: string; type: string; input?: unknown; output?: unknown } | undefined;
        const stateType = state && waits.has(state.name) ? 'Wait' : state?.type;
        switch (ev.type) {
          case 'ExecutionStarted':
            if (skipEvents > 0)
              toSkip--; // recorded when the execution first started
            else push('ExecutionStarted', ts, { executionStartedEventDetails: { input: JSON.stringify(ev.input ?? {}) } });
            break;
          case 'StateEntered':
            push(`${stateType}StateEntered`, ts, { stateEnteredEventDetails: { name: state!.name } });
            // A Lambda task on AWS adds Scheduled and Started events before it exits.
            if (lambdaStates.has(state!.name)) {
              push('LambdaFunctionScheduled', ts);
              push('LambdaFunctionStarted', ts);
            }
            break;
          case 'StateExited':
            if (lambdaStates.has(state!.name)) push('LambdaFunctionSucceeded', ts);
            push(`${stateType}StateExited`, ts, { stateExitedEventDetails: { name: state!.name } });
            break;
          case 'StateFailed':
            push(lambdaStates.has(state!.name) ? 'LambdaFunctionFailed' : 'TaskFailed', ts, { name: state!.name, error: (ev.error as Error)?.name });
            break;
          case 'MapIterationStarted':
          case 'MapIterationSucceeded':
          case 'MapIterationFailed':
            push(ev.type, ts, { mapIterationEventDetails: { name: ev.parentState ? (ev.parentState as { name: string }).name : undefined, index: ev.index } });
            break;
          case 'ExecutionSucceeded':
          case 'ExecutionFailed':
          case 'ExecutionAborted':
            push(ev.type, ts);
            break;
          case 'ExecutionTimeout':
            push('ExecutionTimedOut', ts);
            break;
          default:
            break;
        }
      }
    } catch {
      /* the event stream ends with the execution */
    }
  }

  private expireToken(token: string): void {
    const w = this.waiting.get(token);
    if (!w) return;
    this.settle(token, w);
    w.reject(timeoutError());
  }

  private expireTokensOf(executionArn: string): void {
    for (const [token, w] of this.waiting) if (w.executionArn === executionArn) this.expireToken(token);
  }

  private takeToken(token: unknown): WaitingTask {
    const t = String(token ?? '');
    if (this.expiredTokens.has(t)) throw new ServiceError('TaskTimedOut', 'Task Timed Out');
    const w = this.waiting.get(t);
    if (!w) throw new ServiceError('InvalidToken', 'Invalid Token');
    return w;
  }

  sendTaskSuccess(token: string, output: string): Record<string, never> {
    const w = this.takeToken(token);
    let parsed: unknown;
    try {
      parsed = JSON.parse(output);
    } catch {
      throw new ServiceError('InvalidOutput', 'Invalid Output: not JSON');
    }
    this.settle(token, w);
    w.resolve(parsed);
    return {};
  }

  /** A token answers once: forget it and refuse it from now on. */
  private settle(token: string, w: WaitingTask): void {
    clearTimeout(w.timer);
    this.waiting.delete(token);
    this.expiredTokens.add(token);
  }

  sendTaskFailure(token: string, error?: string, cause?: string): Record<string, never> {
    const w = this.takeToken(token);
    this.settle(token, w);
    const e = new Error(cause ?? '');
    e.name = error ?? 'States.TaskFailed';
    w.reject(e);
    return {};
  }

  private known(executionArn: string): Execution {
    const e = this.executions.get(executionArn);
    if (!e) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return e;
  }

  /** Input, output, error and cause: from memory, or from disk for an old execution. */
  private detailOf(e: Execution): { input?: string; output?: string; error?: string; cause?: string } {
    if (e.detail) return e.detail;
    try {
      return this.opts.store?.load(e.executionArn) ?? {};
    } catch {
      return {};
    }
  }

  describeExecution(executionArn: string) {
    const e = this.known(executionArn);
    const d = this.detailOf(e);
    return { ...executionSummary(e), input: d.input, output: d.output, error: d.error, cause: d.cause };
  }

  /** Resolves when the execution has finished (for tests and tools). */
  async waitFor(executionArn: string): Promise<ReturnType<LocalStepFunctions['describeExecution']>> {
    await this.known(executionArn).done;
    return this.describeExecution(executionArn);
  }

  history(executionArn: string): HistoryEvent[] {
    const e = this.known(executionArn);
    return e.detail?.history ?? this.opts.store?.readHistory(executionArn) ?? [];
  }

  /** Stop an execution, and the children its `.sync` tasks are running (as Step Functions does). */
  stopExecution(executionArn: string, error?: string, cause?: string) {
    const e = this.known(executionArn);
    if (e.status === 'RUNNING') {
      this.end(e, 'ABORTED', { error, cause });
      e.abort();
      for (const child of this.executions.values())
        if (child.parentExecutionArn === executionArn && child.status === 'RUNNING')
          this.stopExecution(child.executionArn, 'States.Aborted', `its parent execution ${executionArn} was stopped`);
    }
    return { stopDate: e.stopDate ?? now() };
  }

  /**
   * The local cloud is stopping: stop every run without changing its status, so the next start
   * resumes it (a stopped process is not a stopped execution on AWS either).
   */
  async suspendAll(): Promise<void> {
    this.suspended = true;
    const running = [...this.executions.values()].filter((e) => e.status === 'RUNNING');
    for (const e of running) e.abort();
    for (const w of this.waiting.values()) clearTimeout(w.timer);
    await Promise.allSettled(running.map((e) => e.done));
  }

  /** The JSON 1.0 protocol: X-Amz-Target selects the operation. */
  async handle(operation: string, body: Record<string, unknown>): Promise<unknown> {
    switch (operation) {
      case 'StartExecution':
        return this.startExecution(body as { stateMachineArn: string; name?: string; input?: string });
      case 'DescribeExecution':
        return this.describeExecution(String(body.executionArn));
      case 'StopExecution':
        return this.stopExecution(String(body.executionArn), body.error as string | undefined, body.cause as string | undefined);
      case 'ListExecutions': {
        const all = [...this.executions.values()]
          .filter((e) => e.stateMachineArn === body.stateMachineArn && (!body.statusFilter || e.status === body.statusFilter))
          .sort((a, b) => b.startDate - a.startDate);
        return page(
          all.map((e) => executionSummary(e)),
          body,
          'executions',
        );
      }
      case 'GetExecutionHistory': {
        const events = [...this.history(String(body.executionArn))];
        if (body.reverseOrder) events.reverse();
        return page(events, body, 'events');
      }
      case 'ListStateMachines':
        return page(
          [...this.machines.values()].map((m) => ({ stateMachineArn: m.arn, name: m.name, type: 'STANDARD', creationDate: m.createdAt })),
          body,
          'stateMachines',
        );
      case 'DescribeStateMachine': {
        const m = this.machines.get(String(body.stateMachineArn));
        if (!m) throw new ServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${String(body.stateMachineArn)}'`);
        return {
          stateMachineArn: m.arn,
          name: m.name,
          status: 'ACTIVE',
          definition: m.definition,
          roleArn: `arn:aws:iam::${ACCOUNT}:role/local-states`,
          type: 'STANDARD',
          creationDate: m.createdAt,
        };
      }
      case 'SendTaskSuccess':
        return this.sendTaskSuccess(String(body.taskToken), String(body.output ?? ''));
      case 'SendTaskFailure':
        return this.sendTaskFailure(String(body.taskToken), body.error as string | undefined, body.cause as string | undefined);
      case 'SendTaskHeartbeat':
        this.takeToken(body.taskToken);
        return {};
      default:
        throw new ServiceError('UnknownOperationException', `operation ${operation} is not supported by the local cloud`);
    }
  }
}

/** The fields ListExecutions and DescribeExecution share. */
function executionSummary(e: Execution) {
  return { executionArn: e.executionArn, stateMachineArn: e.stateMachineArn, name: e.name, status: e.status, startDate: e.startDate, stopDate: e.stopDate };
}

/** The TimeoutSecondsPath value carried in a task's input (see prepareForInterpreter), taken out again. */
function strip(input: unknown): { input: unknown; timeoutSeconds?: number } {
  if (!input || typeof input !== 'object' || !(TIMEOUT_KEY in input)) return { input };
  const { [TIMEOUT_KEY]: t, ...rest } = input as Record<string, unknown>;
  return { input: rest, timeoutSeconds: Number(t) };
}

/**
 * The interpreter races a task against its timeout and may stop listening to the task; a task that
 * fails after that must not become an unhandled rejection (which would end the process).
 */
function handled<T>(p: Promise<T>): Promise<T> {
  p.catch(() => undefined);
  return p;
}

function page<T>(items: T[], body: Record<string, unknown>, key: string) {
  const max = Math.min(Number(body.maxResults) || 100, 1000);
  const start = body.nextToken ? Number(Buffer.from(String(body.nextToken), 'base64').toString()) : 0;
  const slice = items.slice(start, start + max);
  const next = start + max < items.length ? Buffer.from(String(start + max)).toString('base64') : undefined;
  return { [key]: slice, nextToken: next };
}
