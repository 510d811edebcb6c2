import { describe, expect, it } from 'vitest';
import { environmentsUpTo, isEnvironment } from '../../functions/domain/environments.ts';
import { failedOutcome, initialStages, newExecutionId, orderedStages } from '../../functions/domain/deployment.ts';
import { checkManifest } from '../../functions/domain/manifest.ts';
import { planBatches } from '../../functions/domain/strategy.ts';
import { judgeNodeHealth, DEFAULT_HEALTH_THRESHOLDS } from '../../functions/domain/health.ts';
import { checkAgentAddress } from '../../functions/domain/ssrf.ts';
import { describeCaughtError } from '../../functions/lib/task.ts';
import type { HealthReport } from '../../functions/agent/protocol.ts';

describe('environments', () => {
  it('promotes in order up to the target', () => {
    expect(environmentsUpTo('Development')).toEqual(['Development']);
    expect(environmentsUpTo('Staging')).toEqual(['Development', 'QA', 'Staging']);
    expect(isEnvironment('Production')).toBe(true);
    expect(isEnvironment('production')).toBe(false);
  });
});

describe('deployment stages', () => {
  it('lists checks, each environment with its strategy, then validation', () => {
    const s = initialStages('QA');
    expect(s.stageOrder).toEqual(['Build', 'Test', 'SecurityScan', 'Development', 'QA', 'Validation']);
    expect(orderedStages(s).map((x) => x.strategy)).toEqual([undefined, undefined, undefined, 'Direct', 'Rolling', undefined]);
    expect(orderedStages(s).every((x) => x.status === 'Pending')).toBe(true);
  });

  it('ends RolledBack only when every failed environment was rolled back', () => {
    const st = orderedStages(initialStages('QA'));
    expect(failedOutcome(st)).toBe('Failed');
    st[3].status = 'RolledBack';
    expect(failedOutcome(st)).toBe('RolledBack');
    st[4].status = 'Failed';
    expect(failedOutcome(st)).toBe('Failed');
  });

  it('makes sortable ids', () => {
    const a = newExecutionId(new Date(1_000_000_000_000), 'aaaaaaaaaaaa');
    const b = newExecutionId(new Date(1_700_000_000_000), '000000000000');
    expect(a < b).toBe(true);
    expect(a).toMatch(/^dep-[a-z0-9]{9}-[a-f0-9]{12}$/);
  });
});

describe('checkManifest (Test stage)', () => {
  const base = {
    schemaVersion: 1,
    name: 'net-filter',
    version: '2.0.0',
    artifact: { sha256: 'a'.repeat(64), sizeBytes: 10 },
    entrypoint: 'init',
    resources: { cpuMillicores: 200, memoryMiB: 64 },
    dependencies: { 'core-lib': '^1.2.0' },
  };

  it('accepts a manifest whose dependencies are satisfied', () => {
    expect(checkManifest(base, { 'core-lib': ['1.1.0', '1.4.2'] })).toEqual({ ok: true, problems: [] });
  });

  it('names unsatisfied or invalid dependencies, oversize resources and schema errors', () => {
    expect(checkManifest(base, { 'core-lib': ['2.0.0'] }).problems).toEqual([expect.stringContaining('no registered version satisfies "^1.2.0"')]);
    expect(checkManifest({ ...base, dependencies: { 'core-lib': 'latest!' } }, {}).problems[0]).toContain('not a valid semver range');
    expect(checkManifest({ ...base, resources: { cpuMillicores: 9000, memoryMiB: 64 } }, { 'core-lib': ['1.2.0'] }).problems[0]).toContain(
      'exceeds the node limit',
    );
    expect(checkManifest({ ...base, dependencies: { 'net-filter': '1.0.0' } }, {}).problems[0]).toContain('cannot depend on itself');
    expect(checkManifest({ ...base, version: 'v2' }, {}).ok).toBe(false);
    expect(checkManifest({ ...base, extra: 1 }, {}).ok).toBe(false);
  });
});

describe('planBatches', () => {
  it('splits nodes into stable batches in natural order', () => {
    expect(planBatches(['n-10', 'n-2', 'n-1'], 2)).toEqual([['n-1', 'n-2'], ['n-10']]);
    expect(planBatches([], 5)).toEqual([]);
    expect(() => planBatches(['a'], 0)).toThrow();
    expect(
      planBatches(
        Array.from({ length: 10_000 }, (_, i) => `n-${i}`),
        50,
      ),
    ).toHaveLength(200);
  });
});

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

describe('SSRF guard', () => {
  const allow = ['127.0.0.1', '10.0.0.0/8', 'agents.internal'];
  it.each([
    ['http://127.0.0.1:8080', true],
    ['https://10.2.3.4', true],
    ['http://agents.internal:9000/x', true],
    ['http://169.254.169.254/latest/meta-data', false],
    ['http://[fd00:ec2::254]/', false],
    ['http://11.0.0.1', false],
    ['http://evil.example', false],
    ['file:///etc/passwd', false],
    ['http://user:pw@127.0.0.1', false],
    ['not a url', false],
  ])('%s allowed=%s', (addr, ok) => {
    expect(checkAgentAddress(addr, allow).ok).toBe(ok);
  });
  it('refuses metadata addresses even when allowlisted', () => {
    expect(checkAgentAddress('http://169.254.169.254', ['169.254.0.0/16'])).toEqual({ ok: false, reason: expect.stringContaining('metadata') });
  });
});

describe('describeCaughtError', () => {
  it('unwraps Lambda and child-execution causes', () => {
    expect(describeCaughtError({ Error: 'NodeDeployFailed', Cause: JSON.stringify({ errorType: 'NodeDeployFailed', errorMessage: 'dev-02 failed' }) })).toEqual(
      {
        code: 'NodeDeployFailed',
        message: 'dev-02 failed',
      },
    );
    const child = JSON.stringify({ status: 'FAILED', error: 'NodeDeployFailed', cause: 'batch 0: dev-02 failed; rolled back 2' });
    expect(describeCaughtError({ Error: 'States.TaskFailed', Cause: child })).toEqual({
      code: 'NodeDeployFailed',
      message: 'batch 0: dev-02 failed; rolled back 2',
    });
    expect(describeCaughtError({ Error: 'X', Cause: 'plain words' })).toEqual({ code: 'X', message: 'plain words' });
    expect(describeCaughtError(undefined).code).toBe('Unknown');
  });
});

describe('traceRoot', () => {
  it('keeps the X-Ray root id of a Lambda trace header', async () => {
    const { traceRoot } = await import('../../functions/lib/audit.ts');
    expect(traceRoot('Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1')).toBe('1-5759e988-bd862e3fe1be46a994272793');
    expect(traceRoot(undefined)).toBeUndefined();
  });
});
