/**
 * A meter of billable calls, counted by the local cloud: which AWS API calls each API route (or
 * other unit of work) makes. On AWS every DynamoDB call is paid per request, so calls per request
 * is the figure that matters for both speed here and cost there (issue 14).
 *
 * The unit of work is carried by AsyncLocalStorage: the local gateway runs each request, its
 * authorizer included, inside `run(label)`; every SDK call made under it counts against that
 * label. Calls made outside any unit (timers, the local cloud itself) count as `background`.
 *
 *   GET    /_local/meter   { units: [{ label, requests, calls: { "dynamodb:GetItem": n, … }, callsPerRequest, meanCallMs, meanRequestMs }],
 *                           eventLoopDelayMs: { p50, p99, max } }
 *   DELETE /_local/meter   start counting afresh
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { IncomingMessage, ServerResponse } from 'node:http';

export interface MeteredUnit {
  label: string;
  requests: number;
  calls: Record<string, number>;
  /** DynamoDB capacity units consumed, as DynamoDB reports them (ReturnConsumedCapacity TOTAL). */
  capacity: { read: number; write: number };
  /** Calls per request, all services. */
  callsPerRequest: number;
  /** DynamoDB calls per request. */
  dynamodbPerRequest: number;
  /** Mean time of one call of each operation (ms), from the SDK's send to its answer: where a request's time goes. */
  meanCallMs: Record<string, number>;
  /** Mean time of one request of this unit (ms), its authorizer included; 0 for background work. */
  meanRequestMs: number;
}

const BACKGROUND = 'background';
const WRITES = new Set(['PutItem', 'UpdateItem', 'DeleteItem', 'BatchWriteItem', 'TransactWriteItems']);
/** DynamoDB operations that can report the capacity they consumed. */
const REPORTS_CAPACITY = new Set([...WRITES, 'GetItem', 'Query', 'Scan', 'BatchGetItem', 'TransactGetItems']);
const round = (n: number) => Math.round(n * 100) / 100;

/**
 * How long work ready to run waited for the local cloud's one event loop (ms). Everything here —
 * gateway, functions, Step Functions, the simulated fleet — shares it, so under load a call's time
 * is mostly this wait, which on AWS (a Lambda per request) does not exist.
 */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
}

/** The event loop is sampled this often; a sample records the interval, so an idle loop shows this much. */
const LOOP_SAMPLE_MS = 10;

export class CallMeter {
  private readonly scope = new AsyncLocalStorage<string>();
  private readonly loopDelay = monitorEventLoopDelay({ resolution: LOOP_SAMPLE_MS });

  constructor() {
    // Sampled from the start (the sampling timer does not keep the process alive).
    this.loopDelay.enable();
  }
  private readonly units = new Map<
    string,
    { requests: number; calls: Map<string, number>; callMs: Map<string, number>; requestMs: number; timed: number; capacity: { read: number; write: number } }
  >();

  private unit(label: string) {
    let u = this.units.get(label);
    if (!u) this.units.set(label, (u = { requests: 0, calls: new Map(), callMs: new Map(), requestMs: 0, timed: 0, capacity: { read: 0, write: 0 } }));
    return u;
  }

  /** Capacity units a DynamoDB call consumed, counted against the current unit of work. */
  private consumed(operation: string, consumed: unknown): void {
    const parts = (Array.isArray(consumed) ? consumed : consumed ? [consumed] : []) as {
      CapacityUnits?: number;
      ReadCapacityUnits?: number;
      WriteCapacityUnits?: number;
    }[];
    const capacity = this.unit(this.scope.getStore() ?? BACKGROUND).capacity;
    for (const c of parts) {
      if (c.ReadCapacityUnits !== undefined || c.WriteCapacityUnits !== undefined) {
        capacity.read += c.ReadCapacityUnits ?? 0;
        capacity.write += c.WriteCapacityUnits ?? 0;
      } else if (WRITES.has(operation)) capacity.write += c.CapacityUnits ?? 0;
      else capacity.read += c.CapacityUnits ?? 0;
    }
  }

  /** Run one request (or other unit of work) of `label`; calls made under it count against it. */
  run<T>(label: string, fn: () => T): T {
    const u = this.unit(label);
    u.requests++;
    const started = performance.now();
    const out = this.scope.run(label, fn);
    if (out instanceof Promise) {
      const timed = () => {
        u.requestMs += performance.now() - started;
        u.timed++;
      };
      out.then(timed, timed);
    }
    return out;
  }

  /** Count one call of `service` (e.g. `dynamodb`) and operation (e.g. `GetItem`); returns what records its duration. */
  count(service: string, operation: string): (ms: number) => void {
    const u = this.unit(this.scope.getStore() ?? BACKGROUND);
    const key = `${service}:${operation}`;
    u.calls.set(key, (u.calls.get(key) ?? 0) + 1);
    return (ms) => u.callMs.set(key, (u.callMs.get(key) ?? 0) + ms);
  }

  report(): MeteredUnit[] {
    return [...this.units.entries()]
      .map(([label, u]) => {
        const calls = Object.fromEntries([...u.calls.entries()].sort(([a], [b]) => a.localeCompare(b)));
        const total = Object.values(calls).reduce((s, n) => s + n, 0);
        const dynamodb = Object.entries(calls).reduce((s, [k, n]) => s + (k.startsWith('dynamodb:') ? n : 0), 0);
        const per = (n: number) => (u.requests > 0 ? round(n / u.requests) : 0);
        const capacity = { read: round(u.capacity.read), write: round(u.capacity.write) };
        const meanCallMs = Object.fromEntries(Object.entries(calls).map(([k, n]) => [k, round((u.callMs.get(k) ?? 0) / n)]));
        const meanRequestMs = u.timed > 0 ? round(u.requestMs / u.timed) : 0;
        return { label, requests: u.requests, calls, capacity, callsPerRequest: per(total), dynamodbPerRequest: per(dynamodb), meanCallMs, meanRequestMs };
      })
      .sort((a, b) => a.label.localeCompare(b.label));
  }

  reset(): void {
    this.units.clear();
    this.loopDelay.reset();
  }

  /** The event loop's delay since the meter was started or reset. */
  eventLoopDelay(): EventLoopDelay {
    const ms = (ns: number) => (Number.isFinite(ns) ? round(Math.max(0, ns / 1e6 - LOOP_SAMPLE_MS)) : 0);
    return { p50: ms(this.loopDelay.percentile(50)), p99: ms(this.loopDelay.percentile(99)), max: ms(this.loopDelay.max) };
  }

  /** Every unit's counts summed: what a whole run (a deployment in a quiet cloud) cost. */
  total(): { calls: Record<string, number>; capacity: { read: number; write: number } } {
    const calls: Record<string, number> = {};
    const capacity = { read: 0, write: 0 };
    for (const u of this.units.values()) {
      for (const [k, n] of u.calls) calls[k] = (calls[k] ?? 0) + n;
      capacity.read += u.capacity.read;
      capacity.write += u.capacity.write;
    }
    return { calls, capacity };
  }

  /**
   * The SDK middleware that counts each call a client sends (added to every client the functions
   * create). DynamoDB calls are asked for the capacity they consume, which is what on-demand
   * tables bill; the handlers never read that field.
   */
  middleware(service: string) {
    return {
      fn:
        (next: (args: { input: Record<string, unknown> }) => Promise<{ output: Record<string, unknown> }>, context: { commandName?: string }) =>
        async (args: { input: Record<string, unknown> }) => {
          const operation = (context.commandName ?? 'Unknown').replace(/Command$/, '');
          const took = this.count(service, operation);
          const capacity = service === 'dynamodb' && REPORTS_CAPACITY.has(operation);
          if (capacity) args.input.ReturnConsumedCapacity ??= 'TOTAL';
          const started = performance.now();
          try {
            const result = await next(args);
            if (capacity) this.consumed(operation, result.output?.ConsumedCapacity);
            return result;
          } finally {
            took(performance.now() - started);
          }
        },
      options: { step: 'initialize' as const, name: 'kmodCallMeter', override: true },
    };
  }

  /** `/_local/meter`: read or reset the counts. */
  control() {
    return (req: IncomingMessage, res: ServerResponse) => {
      const send = (status: number, body: unknown) => {
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (new URL(req.url ?? '/', 'http://local').pathname !== '/_local/meter') return send(404, { code: 'NotFound', message: 'no such meter route' });
      if (req.method === 'GET') return send(200, { units: this.report(), eventLoopDelayMs: this.eventLoopDelay() });
      if (req.method === 'DELETE') {
        this.reset();
        return send(200, { units: [] });
      }
      return send(405, { code: 'MethodNotAllowed', message: 'GET or DELETE /_local/meter' });
    };
  }
}
