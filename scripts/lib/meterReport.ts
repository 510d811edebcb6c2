/** What the local cloud's call meter (`/_local/meter`) reports, as the load and bench scripts print it. */

export interface MeterUnit {
  label: string;
  requests: number;
  dynamodbPerRequest: number;
  calls: Record<string, number>;
  /** Absent from a baseline checkout whose meter did not time calls. */
  meanCallMs?: Record<string, number>;
  meanRequestMs?: number;
}

/**
 * Where a route's time went, from the meter: each operation's calls per request and mean time, and
 * the time of the rest (the gateway, authorizer, handler code and waiting for the cores).
 */
export function timeBreakdown(unit: MeterUnit): string {
  const per = Object.entries(unit.calls).map(([k, n]) => ({ k, perRequest: n / unit.requests, ms: unit.meanCallMs?.[k] }));
  const inCalls = per.reduce((sum, c) => sum + c.perRequest * (c.ms ?? 0), 0);
  const parts = per.map((c) => `${c.k} ${c.perRequest.toFixed(2)} × ${c.ms === undefined ? '?' : c.ms.toFixed(1)} ms`);
  if (unit.meanRequestMs === undefined) return `${unit.label}: ${parts.join(', ')}`;
  // Calls a request makes at once overlap, so "the rest" is a lower bound when any do.
  return `${unit.label}: ${unit.meanRequestMs.toFixed(1)} ms a request = ${parts.join(' + ')} + the rest ${Math.max(0, unit.meanRequestMs - inCalls).toFixed(1)} ms`;
}

/** How long ready work waited for the local cloud's event loop (ms), as `/_local/meter` reports it. */
export interface EventLoopDelay {
  p50: number;
  p99: number;
  max: number;
}
