/**
 * Step Functions, locally: the service's JSON API (StartExecution, DescribeExecution,
 * ListExecutions, StopExecution, GetExecutionHistory, SendTaskSuccess/Failure/Heartbeat,
 * List/DescribeStateMachine) over the ASL files in statemachines/, run unchanged by
 * aws-local-stepfunctions. Task states are bound by their Resource: Lambda ARNs to the in-process
 * functions, `states:startExecution(.sync)` to this service. Executions live in memory; a restart
 * of the local cloud is like a Region outage for them.
 */
import { randomUUID } from 'node:crypto';
import { StateMachine } from 'aws-local-stepfunctions';
import { ACCOUNT, REGION, type LocalLambda } from './lambda.ts';

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED';

export interface HistoryEvent {
  id: number;
  previousEventId: number;
  timestamp: number;
  type: string;
  [details: string]: unknown;
}

interface Execution {
  executionArn: string;
  stateMachineArn: string;
  name: string;
  status: ExecutionStatus;
  startDate: number;
  stopDate?: number;
  input: string;
  output?: string;
  error?: string;
  cause?: string;
  history: HistoryEvent[];
  abort: () => void;
  done: Promise<void>;
}

interface Machine {
  name: string;
  arn: string;
  definition: string;
  createdAt: number;
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

type TaskHandler = (input: unknown) => Promise<unknown>;

interface TaskStateRef {
  name: string;
  resource: string;
}

/** Every Task state, at any depth (Map item processors, Parallel branches). */
function taskStates(definition: { States: Record<string, Record<string, unknown>> }): TaskStateRef[] {
  const out: TaskStateRef[] = [];
  for (const [name, state] of Object.entries(definition.States)) {
    if (state.Type === 'Task') out.push({ name, resource: String(state.Resource) });
    const nested = (state.ItemProcessor ?? state.Iterator) as typeof definition | undefined;
    if (nested) out.push(...taskStates(nested));
    for (const branch of (state.Branches as (typeof definition)[] | undefined) ?? []) out.push(...taskStates(branch));
  }
  return out;
}

/** Where `$$.Task.Token` points for the interpreter; each waiting task swaps in a real token. */
const TOKEN_PLACEHOLDER = '__LOCAL_TASK_TOKEN__';
/** Hidden Parameters key carrying a TimeoutSecondsPath value (see prepareForInterpreter). */
const TIMEOUT_KEY = '__timeoutSeconds';

interface WaitingTask {
  executionArn: string;
  stateName: string;
  resolve: (output: unknown) => void;
  reject: (e: Error) => void;
  timer?: NodeJS.Timeout;
}

/**
 * Step Functions resolves TimeoutSecondsPath against the state's input; the interpreter resolves it
 * after Parameters. Carry the value through Parameters under a hidden key so both agree; the task
 * binding strips it again before the integration sees the input.
 */
function prepareForInterpreter(definition: { States: Record<string, Record<string, unknown>> }): void {
  for (const state of Object.values(definition.States)) {
    if (state.Type === 'Task' && typeof state.TimeoutSecondsPath === 'string' && state.Parameters && typeof state.Parameters === 'object') {
      (state.Parameters as Record<string, unknown>)[`${TIMEOUT_KEY}.$`] = state.TimeoutSecondsPath;
      state.TimeoutSecondsPath = `$.${TIMEOUT_KEY}`;
    }
    const nested = (state.ItemProcessor ?? state.Iterator) as typeof definition | undefined;
    if (nested) prepareForInterpreter(nested);
    for (const branch of (state.Branches as (typeof definition)[] | undefined) ?? []) prepareForInterpreter(branch);
  }
}

function replaceDeep(value: unknown, from: string, to: string): unknown {
  if (value === from) return to;
  if (Array.isArray(value)) return value.map((v) => replaceDeep(v, from, to));
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, replaceDeep(v, from, to)]));
  return value;
}

export class LocalStepFunctions {
  private readonly machines = new Map<string, Machine>();
  private readonly executions = new Map<string, Execution>();
  private readonly waiting = new Map<string, WaitingTask>();
  /** Tokens of tasks that timed out or whose execution ended: answering them is TaskTimedOut. */
  private readonly expiredTokens = new Set<string>();

  constructor(private readonly lambda: LocalLambda) {}

  createStateMachine(name: string, definition: string): Machine {
    const parsed = JSON.parse(definition) as { States: Record<string, Record<string, unknown>> };
    for (const t of taskStates(parsed)) this.bind(t); // fail fast on resources the local cloud cannot serve
    const m: Machine = { name, arn: stateMachineArn(name), definition, createdAt: now() };
    this.machines.set(m.arn, m);
    return m;
  }

  private bind(task: TaskStateRef, executionArn = ''): TaskHandler {
    const r = task.resource;
    const strip = (input: unknown): { input: unknown; timeoutSeconds?: number } => {
      if (!input || typeof input !== 'object' || !(TIMEOUT_KEY in input)) return { input };
      const { [TIMEOUT_KEY]: t, ...rest } = input as Record<string, unknown>;
      return { input: rest, timeoutSeconds: Number(t) };
    };
    if (/^arn:aws:lambda:[^:]+:\d{12}:function:[^:]+$/.test(r)) {
      return (input) => handled(this.lambda.invoke(r, strip(input).input));
    }
    const lambdaInvoke = /^arn:aws:states:::lambda:invoke(\.waitForTaskToken)?$/.exec(r);
    if (lambdaInvoke) {
      return (raw) =>
        handled(
          (async () => {
            const { input, timeoutSeconds } = strip(raw);
            const p = input as { FunctionName: string; Payload?: unknown };
            if (!lambdaInvoke[1]) {
              const payload = await this.lambda.invoke(p.FunctionName, p.Payload ?? {});
              return { ExecutedVersion: '$LATEST', Payload: payload, StatusCode: 200 };
            }
            return this.waitForToken(executionArn, task.name, timeoutSeconds, async (token) => {
              await this.lambda.invoke(p.FunctionName, replaceDeep(p.Payload ?? {}, TOKEN_PLACEHOLDER, token));
            });
          })(),
        );
    }
    const sync = /^arn:aws:states:::states:startExecution(\.sync(:2)?)?$/.exec(r);
    if (sync) {
      return (input) =>
        handled(
          (async () => {
            const p = input as { StateMachineArn: string; Name?: string; Input?: unknown };
            const started = this.startExecution({ stateMachineArn: p.StateMachineArn, name: p.Name, input: JSON.stringify(p.Input ?? {}) });
            if (!sync[1]) return started;
            const child = this.executions.get(started.executionArn)!;
            await child.done;
            const described = this.describeExecution(child.executionArn);
            if (child.status !== 'SUCCEEDED') {
              const e = new Error(JSON.stringify(described));
              e.name = 'States.TaskFailed';
              throw e;
            }
            // `.sync:2` returns the child's output as JSON, `.sync` as a string.
            return sync[2] ? { ...described, Output: JSON.parse(described.output ?? 'null') } : described;
          })(),
        );
    }
    throw new Error(`Task state ${task.name}: resource ${r} is not supported by the local cloud`);
  }

  startExecution(req: { stateMachineArn: string; name?: string; input?: string }): { executionArn: string; startDate: number } {
    const machine = this.machines.get(req.stateMachineArn);
    if (!machine) throw new ServiceError('StateMachineDoesNotExist', `State Machine Does Not Exist: '${req.stateMachineArn}'`);
    const name = req.name ?? randomUUID();
    if (!/^[A-Za-z0-9_-]{1,80}$/.test(name)) throw new ServiceError('InvalidName', `Invalid Name: '${name}'`);
    const input = req.input ?? '{}';
    let parsedInput: unknown;
    try {
      parsedInput = JSON.parse(input);
    } catch {
      throw new ServiceError('InvalidExecutionInput', 'Invalid execution input: not JSON');
    }
    const executionArn = `arn:aws:states:${REGION}:${ACCOUNT}:execution:${machine.name}:${name}`;
    const existing = this.executions.get(executionArn);
    if (existing) {
      // As on AWS: the same name and input while running is an idempotent start.
      if (existing.status === 'RUNNING' && existing.input === input) return { executionArn, startDate: existing.startDate };
      throw new ServiceError('ExecutionAlreadyExists', `Execution Already Exists: '${executionArn}'`);
    }
    const definition = JSON.parse(machine.definition) as { States: Record<string, Record<string, unknown>> };
    prepareForInterpreter(definition);
    const handlers: Record<string, TaskHandler> = {};
    for (const t of taskStates(definition)) handlers[t.name] = this.bind(t, executionArn);
    const sm = new StateMachine(definition as never, { validationOptions: { checkArn: false } });
    const startDate = now();
    const run = sm.run(parsedInput as never, {
      overrides: { taskResourceLocalHandlers: handlers as never },
      context: {
        Execution: { Id: executionArn, Name: name, RoleArn: `arn:aws:iam::${ACCOUNT}:role/local-states`, StartTime: new Date(startDate * 1000).toISOString() },
        StateMachine: { Id: machine.arn, Name: machine.name },
        Task: { Token: TOKEN_PLACEHOLDER },
      },
    });
    const exec: Execution = {
      executionArn,
      stateMachineArn: machine.arn,
      name,
      status: 'RUNNING',
      startDate,
      input,
      history: [],
      abort: run.abort,
      done: Promise.resolve(),
    };
    this.executions.set(executionArn, exec);
    const collecting = this.collectHistory(exec, run.eventLogs as AsyncGenerator<Record<string, unknown>>, definition);
    exec.done = run.result
      .then(
        (output: unknown) => {
          if (exec.status !== 'RUNNING') return;
          exec.status = 'SUCCEEDED';
          exec.output = JSON.stringify(output ?? null);
          exec.stopDate = now();
        },
        (e: Error & { cause?: Error }) => {
          if (exec.status !== 'RUNNING') return;
          const inner = e.cause ?? e;
          const timedOut = e.name === 'ExecutionTimeoutError';
          const aborted = e.name === 'ExecutionAbortedError';
          exec.status = timedOut ? 'TIMED_OUT' : aborted ? 'ABORTED' : 'FAILED';
          exec.error = timedOut ? 'States.Timeout' : inner.name;
          exec.cause = timedOut ? 'The execution timed out' : inner.message;
          exec.stopDate = now();
        },
      )
      .then(() => this.expireTokensOf(executionArn))
      .then(() => collecting);
    return { executionArn, startDate };
  }

  private async collectHistory(
    exec: Execution,
    events: AsyncGenerator<Record<string, unknown>>,
    definition: { States: Record<string, Record<string, unknown>> },
  ) {
    const lambdaStates = new Set(
      taskStates(definition)
        .filter((t) => t.resource.startsWith('arn:aws:lambda:'))
        .map((t) => t.name),
    );
    const push = (type: string, timestamp: number, details: Record<string, unknown> = {}) => {
      const id = exec.history.length + 1;
      exec.history.push({ id, previousEventId: id - 1, timestamp: timestamp / 1000, type, ...details });
    };
    try {
      for await (const ev of events) {
        const ts = Number(ev.timestamp ?? Date.now());
        const state = ev.state as { name: string; type: string; input?: unknown; output?: unknown } | undefined;
        switch (ev.type) {
          case 'ExecutionStarted':
            push('ExecutionStarted', ts, { executionStartedEventDetails: { input: JSON.stringify(ev.input ?? {}) } });
            break;
          case 'StateEntered':
            push(`${state!.type}StateEntered`, ts, { stateEnteredEventDetails: { name: state!.name } });
            // A Lambda task on AWS adds Scheduled and Started events before it exits.
            if (lambdaStates.has(state!.name)) {
              push('LambdaFunctionScheduled', ts);
              push('LambdaFunctionStarted', ts);
            }
            break;
          case 'StateExited':
            if (lambdaStates.has(state!.name)) push('LambdaFunctionSucceeded', ts);
            push(`${state!.type}StateExited`, ts, { stateExitedEventDetails: { name: state!.name } });
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

  /** `.waitForTaskToken`: start the integration with a fresh token, then wait for SendTask*. */
  private async waitForToken(
    executionArn: string,
    stateName: string,
    timeoutSeconds: number | undefined,
    start: (token: string) => Promise<void>,
  ): Promise<unknown> {
    const token = randomUUID().replace(/-/g, '') + randomUUID().replace(/-/g, '');
    const done = new Promise<unknown>((resolve, reject) => {
      const w: WaitingTask = { executionArn, stateName, resolve, reject };
      if (timeoutSeconds) {
        // The interpreter times the task out by itself; forget the token at the same moment.
        w.timer = setTimeout(() => this.expireToken(token), timeoutSeconds * 1000);
        w.timer.unref();
      }
      this.waiting.set(token, w);
    });
    done.catch(() => undefined);
    await start(token);
    return done;
  }

  private expireToken(token: string): void {
    const w = this.waiting.get(token);
    if (w) this.settle(token, w);
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

  describeExecution(executionArn: string) {
    const e = this.executions.get(executionArn);
    if (!e) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return {
      ...executionSummary(e),
      input: e.input,
      output: e.output,
      error: e.error,
      cause: e.cause,
    };
  }

  /** Resolves when the execution has finished (for tests and tools). */
  async waitFor(executionArn: string): Promise<ReturnType<LocalStepFunctions['describeExecution']>> {
    const e = this.executions.get(executionArn);
    if (!e) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    await e.done;
    return this.describeExecution(executionArn);
  }

  history(executionArn: string): HistoryEvent[] {
    const e = this.executions.get(executionArn);
    if (!e) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    return e.history;
  }

  stopExecution(executionArn: string, error?: string, cause?: string) {
    const e = this.executions.get(executionArn);
    if (!e) throw new ServiceError('ExecutionDoesNotExist', `Execution Does Not Exist: '${executionArn}'`);
    if (e.status === 'RUNNING') {
      e.status = 'ABORTED';
      e.error = error;
      e.cause = cause;
      e.stopDate = now();
      e.abort();
    }
    return { stopDate: e.stopDate ?? now() };
  }

  async stopAll(): Promise<void> {
    for (const e of this.executions.values())
      if (e.status === 'RUNNING') this.stopExecution(e.executionArn, 'LocalCloudStopped', 'the local cloud was stopped');
    await Promise.allSettled([...this.executions.values()].map((e) => e.done));
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
