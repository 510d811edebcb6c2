/**
 * The correlation of the work in hand, and W3C trace context for the calls it makes
 * (docs/adr/0030-telemetry.md). Plain Node: no Powertools here, so a process can read trace ids
 * without making the functions' logger before their environment is set.
 *
 * The work in hand lives in AsyncLocalStorage, not in module state: the local cloud runs many
 * invocations in one process at once, and an agent call must carry the trace of the invocation
 * that makes it, not of whichever started last.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash, randomBytes } from 'node:crypto';
import { CORRELATION_ID_PATTERN } from '../agent/protocol.ts';

/** What one unit of work is about: the keys its log lines, annotations and agent calls carry. */
export interface Correlation {
  /** The API request's id (its `x-correlation-id`, or API Gateway's request id). */
  correlationId?: string;
  executionId?: string;
  deploymentId?: string;
  environment?: string;
  module?: string;
  route?: string;
  user?: string;
}

export const correlationStore = new AsyncLocalStorage<Correlation>();

export function currentCorrelation(): Correlation {
  return { ...correlationStore.getStore() };
}

/** The correlation's keys that have a value (what log lines and annotations carry). */
export function definedOnly(c: Correlation): Correlation {
  return Object.fromEntries(Object.entries(c).filter(([, v]) => typeof v === 'string' && v.length > 0)) as Correlation;
}

/** A correlation id a caller may choose (`x-correlation-id`): short, printable, no separators that could forge log fields. The agents accept the same. */
export const CORRELATION_ID = CORRELATION_ID_PATTERN;

/** The headers an agent call carries for the work in hand: W3C `traceparent`, and `x-correlation-id` when there is one. */
export function traceHeaders(c: Correlation = currentCorrelation()): Record<string, string> {
  return { traceparent: traceparent(c), ...(c.correlationId ? { 'x-correlation-id': c.correlationId } : {}) };
}

/** The X-Ray trace id (`Root=1-…`) out of the Lambda trace header, so it can be searched for. */
export function traceRoot(header: string | undefined): string | undefined {
  return (
    header
      ?.split(';')
      .find((p) => p.startsWith('Root='))
      ?.slice(5) ?? undefined
  );
}

/**
 * The W3C trace id (32 hex) of the work in hand. In Lambda it is X-Ray's (Step Functions passes
 * the execution's trace to every task, so one deployment is one trace); elsewhere it is derived
 * from the execution id, so every call a deployment makes shares one trace id there too; work
 * that belongs to no execution gets a fresh one.
 */
export function traceIdOf(c: Correlation = currentCorrelation(), xrayHeader = process.env._X_AMZN_TRACE_ID): string {
  const root = /^1-([0-9a-f]{8})-([0-9a-f]{24})$/.exec(traceRoot(xrayHeader) ?? '');
  if (root) return root[1] + root[2];
  if (c.executionId) return createHash('sha256').update(`kmod-trace:${c.executionId}`).digest('hex').slice(0, 32);
  return randomBytes(16).toString('hex');
}

/** A `traceparent` header (W3C Trace Context, version 00, sampled) for a call made now. */
export function traceparent(c: Correlation = currentCorrelation()): string {
  return `00-${traceIdOf(c)}-${randomBytes(8).toString('hex')}-01`;
}
