/**
 * Telemetry shared by every function (docs/adr/0030-telemetry.md): Powertools Logger, Tracer and
 * Metrics (CloudWatch EMF), and the log keys and annotations of the work in hand
 * (lib/traceContext.ts keeps the work in hand and its trace context).
 */
import { Logger } from '@aws-lambda-powertools/logger';
import { Tracer } from '@aws-lambda-powertools/tracer';
import type { MiddlewareObj } from '@middy/core';
import { onClientCreated } from './aws.ts';
import { cloudwatchMetricsIfMade, SERVICE_NAME } from './emf.ts';
import { type Correlation, correlationStore, definedOnly } from './traceContext.ts';

export const logger = new Logger({ serviceName: SERVICE_NAME });
// Tracing is on in Lambda (X-Ray); the local cloud sets POWERTOOLS_TRACE_ENABLED=false.
export const tracer = new Tracer({ serviceName: SERVICE_NAME });
// Every AWS SDK client the functions make (lib/aws.ts) is captured: each call is a subsegment of
// the invocation's trace (a no-op where tracing is off). Every function imports this module
// (through lib/http.ts or lib/task.ts) before it makes its first client.
onClientCreated((client) => void tracer.captureAWSv3Client(client as never));

/**
 * Middy middleware: publish the invocation's stored metrics (agent call latency and errors) when
 * it ends, as Powertools' logMetrics does, but without its warning on every invocation that
 * stored none (most API requests).
 */
export function flushMetrics(): MiddlewareObj {
  const flush = () => {
    const emf = cloudwatchMetricsIfMade();
    if (emf?.hasStoredMetrics()) emf.publishStoredMetrics();
  };
  return { after: flush, onError: flush };
}

/** Run `fn` with `correlation` as the work in hand (nested calls add to the outer one). */
export function withCorrelation<T>(correlation: Correlation, fn: () => T): T {
  const merged = { ...correlationStore.getStore(), ...definedOnly(correlation) };
  logger.appendKeys({ ...merged });
  return correlationStore.run(merged, fn);
}

/** Add keys to the work in hand (for example the execution id once a deployment is created). */
export function addCorrelation(correlation: Correlation): void {
  const store = correlationStore.getStore();
  if (store) Object.assign(store, definedOnly(correlation));
  logger.appendKeys({ ...definedOnly(correlation) });
}

/** Tracer annotations (searchable in X-Ray) for the keys that find a deployment. */
export function annotateTrace(c: Correlation): void {
  for (const key of ['executionId', 'environment', 'module', 'route'] as const) {
    const v = c[key];
    if (v) tracer.putAnnotation(key, v);
  }
}
