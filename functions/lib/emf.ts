/**
 * Powertools Metrics: CloudWatch EMF documents on stdout, which Lambda ships to CloudWatch Logs
 * (docs/adr/0030-telemetry.md). Made on first use, so it reads the environment of the process that
 * runs the function (the local cloud sets POWERTOOLS_METRICS_DISABLED=true before any function
 * runs; its /metrics serves the same counts). Apart from lib/telemetry.ts so the modules that
 * count (lib/metrics.ts, lib/agentClient.ts) do not make the functions' logger on import.
 */
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';

import { CLOUDWATCH_METRICS } from '../domain/cloudwatchMetrics.ts';

export const SERVICE_NAME = CLOUDWATCH_METRICS.service;

let emf: Metrics | undefined;

export function cloudwatchMetrics(): Metrics {
  emf ??= new Metrics({ namespace: CLOUDWATCH_METRICS.namespace, serviceName: SERVICE_NAME });
  return emf;
}

/** The instance if anything has used it (flushing needs nothing made). */
export function cloudwatchMetricsIfMade(): Metrics | undefined {
  return emf;
}

export { MetricUnit };
