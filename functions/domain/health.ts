import type { HealthReport } from '../agent/protocol.ts';
import { binomialGreater } from './statistics.ts';

export interface HealthThresholds {
  maxCpuPercent: number;
  maxMemoryPercent: number;
  maxErrorRatePercent: number;
  maxHeartbeatAgeSeconds: number;
}

export const DEFAULT_HEALTH_THRESHOLDS: HealthThresholds = {
  maxCpuPercent: 90,
  maxMemoryPercent: 90,
  maxErrorRatePercent: 5,
  maxHeartbeatAgeSeconds: 120,
};

/**
 * How sure a health check must be before it calls a node's error rate too high, when the agent
 * counted the requests (a real workload's window): one-sided, exact binomial test at this level.
 */
export const ERROR_RATE_SIGNIFICANCE = 0.05;

/** Why a node is unhealthy after a deployment (empty when it is healthy and runs the expected version). */
export function judgeNodeHealth(report: HealthReport, expected: { module: string; version: string | null }, t: HealthThresholds, now = new Date()): string[] {
  const problems = [...report.reasons];
  if (report.status !== 'healthy' && problems.length === 0) problems.push('agent reports unhealthy');
  const running = report.modules[expected.module]?.version ?? null;
  if (running !== expected.version) problems.push(`runs ${expected.module}@${running ?? 'none'}, expected ${expected.version ?? 'none'}`);
  const ageSeconds = (now.getTime() - Date.parse(report.at)) / 1000;
  if (!(ageSeconds <= t.maxHeartbeatAgeSeconds)) problems.push(`last heartbeat ${Math.round(ageSeconds)} s old (max ${t.maxHeartbeatAgeSeconds} s)`);
  const m = report.metrics;
  if (m.cpuPercent > t.maxCpuPercent) problems.push(`CPU ${m.cpuPercent}% > ${t.maxCpuPercent}%`);
  if (m.memoryPercent > t.maxMemoryPercent) problems.push(`memory ${m.memoryPercent}% > ${t.maxMemoryPercent}%`);
  if (m.errorRatePercent > t.maxErrorRatePercent) {
    // Counted requests are judged by what they prove: a few seconds of traffic with one unlucky
    // failure is not a bad node. Rates without counts (the simulated fleet, JSON metrics) by value.
    const w = m.window;
    const counted = w && w.requests > 0 && w.errors >= 0 && w.errors <= w.requests;
    const p = counted ? binomialGreater(w.errors, w.requests, t.maxErrorRatePercent / 100) : 0;
    if (p < ERROR_RATE_SIGNIFICANCE) {
      const evidence = counted ? ` (${w.errors} of ${w.requests} requests, p=${p < 0.001 ? '<0.001' : p.toFixed(3)})` : '';
      problems.push(`error rate ${m.errorRatePercent}% > ${t.maxErrorRatePercent}%${evidence}`);
    }
  }
  return problems;
}
