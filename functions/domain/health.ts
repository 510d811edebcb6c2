import type { HealthReport } from '../agent/protocol.ts';

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
  if (m.errorRatePercent > t.maxErrorRatePercent) problems.push(`error rate ${m.errorRatePercent}% > ${t.maxErrorRatePercent}%`);
  return problems;
}
