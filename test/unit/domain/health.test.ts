import { describe, expect, it } from 'vitest';
import { judgeNodeHealth, DEFAULT_HEALTH_THRESHOLDS } from '../../../functions/domain/health.ts';
import type { HealthReport } from '../../../functions/agent/protocol.ts';

describe('judgeNodeHealth', () => {
  const report = (over: Partial<HealthReport> = {}, metrics: Partial<HealthReport['metrics']> = {}): HealthReport => ({
    nodeId: 'n1',
    protocolVersion: '1',
    status: 'healthy',
    reasons: [],
    at: new Date().toISOString(),
    uptimeSeconds: 10,
    modules: { m: { version: '1.1.0', loadedAt: '' } },
    metrics: { nodeId: 'n1', at: '', cpuPercent: 20, memoryPercent: 40, latencyMs: 10, errorRatePercent: 0.5, requestsPerSecond: 10, ...metrics },
    ...over,
  });
  const expected = { module: 'm', version: '1.1.0' };

  it('passes a healthy node on the expected version', () => {
    expect(judgeNodeHealth(report(), expected, DEFAULT_HEALTH_THRESHOLDS)).toEqual([]);
  });

  it('flags wrong version, stale heartbeat and each threshold', () => {
    expect(judgeNodeHealth(report({ modules: {} }), expected, DEFAULT_HEALTH_THRESHOLDS)).toEqual(['runs m@none, expected 1.1.0']);
    expect(judgeNodeHealth(report({ at: new Date(Date.now() - 600_000).toISOString() }), expected, DEFAULT_HEALTH_THRESHOLDS)[0]).toMatch(/heartbeat/);
    expect(judgeNodeHealth(report({}, { cpuPercent: 95, memoryPercent: 91, errorRatePercent: 7 }), expected, DEFAULT_HEALTH_THRESHOLDS)).toEqual([
      'CPU 95% > 90%',
      'memory 91% > 90%',
      'error rate 7% > 5%',
    ]);
    expect(judgeNodeHealth(report({ status: 'unhealthy', reasons: ['crashed'] }), expected, DEFAULT_HEALTH_THRESHOLDS)).toEqual(['crashed']);
  });
});
