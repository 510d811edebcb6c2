/**
 * A real Prometheus (Debian's `prometheus` package, installed by .ci/run) scrapes the local
 * cloud's /metrics every second after a Development deployment, and the business metrics are
 * queried through Prometheus' own HTTP API (docs/adr/0027-prometheus-metrics.md).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const PROMETHEUS = process.env.PROMETHEUS_BIN ?? '/usr/bin/prometheus';

let cloud: LocalCloud;
let prometheus: ChildProcess | undefined;
let promUrl: string;
let promDir: string;
let promLog = '';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function query(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const r = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await r.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] }; error?: string };
  expect(body.status, `${expr}: ${body.error}`).toBe('success');
  return body.data.result;
}

/** Poll a query until it returns a sample satisfying `ok` (Prometheus scrapes every second). */
async function eventually(expr: string, ok: (v: number) => boolean, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    let result: Awaited<ReturnType<typeof query>> = [];
    try {
      result = await query(expr);
      last = result;
    } catch (e) {
      // Prometheus is still starting (connection refused) or has not scraped yet.
      last = e;
      if (prometheus?.exitCode !== null) throw new Error(`prometheus exited (${prometheus?.exitCode}):\n${promLog.slice(-2000)}`);
    }
    const v = result.length ? Number(result[0].value[1]) : Number.NaN;
    if (result.length && ok(v)) return v;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`${expr}: no satisfying sample within ${timeoutMs} ms (last ${JSON.stringify(last)}); prometheus log:\n${promLog.slice(-2000)}`);
}

beforeAll(async () => {
  const version = spawnSync(PROMETHEUS, ['--version']);
  if (version.error || version.status !== 0) {
    throw new Error(
      `Prometheus is not installed at ${PROMETHEUS} (apt-get install -y prometheus; .ci/run installs it). This test needs a real Prometheus and does not skip.`,
    );
  }
  cloud = await startTestCloud();
}, 120_000);

afterAll(async () => {
  if (prometheus && prometheus.exitCode === null) {
    const exited = new Promise((r) => prometheus?.once('exit', r));
    prometheus.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (prometheus.exitCode === null) prometheus.kill('SIGKILL');
  }
  if (promDir) rmSync(promDir, { recursive: true, force: true });
  await cloud?.stop();
});

describe('a real Prometheus scraping /metrics', () => {
  it('keeps a scrape of /metrics to a few DynamoDB calls', async () => {
    await fetch(`${cloud.apiUrl}/_local/meter`, { method: 'DELETE' });
    const r = await fetch(`${cloud.apiUrl}/metrics`);
    expect(r.status).toBe(200);
    expect(r.headers.get('content-type')).toContain('text/plain');
    const meter = (await (await fetch(`${cloud.apiUrl}/_local/meter`)).json()) as {
      units: { label: string; requests: number; calls: Record<string, number>; dynamodbPerRequest: number }[];
    };
    const unit = meter.units.find((u) => u.label.includes('/metrics'));
    console.log(`/metrics scrape: ${JSON.stringify(unit ?? meter)}`);
    expect(unit, JSON.stringify(meter)).toBeDefined();
    // 1 query of the last day's deployments, 4 environments' node counts, pending approvals, Degraded marks, 1 BatchGetItem of the metric shards.
    expect(unit!.calls['dynamodb:BatchGetItem']).toBe(1);
    expect(unit!.dynamodbPerRequest).toBeLessThanOrEqual(11);
  });

  it('counts a Development deployment and Prometheus answers queries about it', async () => {
    const r = await api(cloud, 'POST', '/api/v1/deployments', {
      token: cloud.tokens.Deployer,
      body: { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' },
    });
    expect(r.status, JSON.stringify(r.body)).toBe(202);
    const d = await waitForDeployment(cloud, r.body.executionId);
    expect(d.status).toBe('Succeeded');

    const text = await (await fetch(`${cloud.apiUrl}/metrics`)).text();
    expect(text).toMatch(/^kmod_deployments_started_total\{environment="Development"\} 1$/m);
    expect(text).toMatch(/^kmod_deployments_succeeded_total\{environment="Development",strategy="\w+"\} 1$/m);
    expect(text).toContain('# TYPE kmod_stage_duration_seconds histogram');
    expect(text).toMatch(/^kmod_stage_duration_seconds_bucket\{stage="Development",status="Succeeded",le="\+Inf"\} 1$/m);

    promDir = mkdtempSync(join(tmpdir(), 'kmod-prom-'));
    const target = new URL(cloud.apiUrl);
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  evaluation_interval: 1s',
      'scrape_configs:',
      '  - job_name: kmod',
      '    metrics_path: /metrics',
      '    static_configs:',
      `      - targets: ['${target.host}']`,
      '',
    ].join('\n');
    writeFileSync(join(promDir, 'prometheus.yml'), config);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prometheus = spawn(
      PROMETHEUS,
      [`--config.file=${join(promDir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(promDir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout?.on('data', (b) => (promLog += b));
    prometheus.stderr?.on('data', (b) => (promLog += b));

    // The scrape target is up, and the counters are there with their labels.
    await eventually('up{job="kmod"}', (v) => v === 1, 60_000);
    expect(await eventually('kmod_deployments_succeeded_total{environment="Development"}', (v) => v >= 1)).toBeGreaterThanOrEqual(1);
    expect(await eventually('sum(kmod_deployments_started_total)', (v) => v >= 1)).toBe(1);
    expect(await eventually('kmod_nodes{environment="Development"}', (v) => v > 0)).toBe(3);
    // A histogram quantile over the stage durations: a finite, non-negative number of seconds.
    const p90 = await eventually('histogram_quantile(0.9, sum by (le) (kmod_stage_duration_seconds_bucket{stage="Development"}))', (v) => Number.isFinite(v));
    expect(p90).toBeGreaterThanOrEqual(0);
    expect(p90).toBeLessThanOrEqual(60);
    // Every Development node now runs the deployed version.
    expect(await eventually('kmod_module_version_nodes{environment="Development",module="demo-kernel",version="1.1.0"}', (v) => v === 3)).toBe(3);
    // The deployment's health checks recorded each Development node healthy.
    expect(await eventually('kmod_nodes_by_health{environment="Development",status="healthy"}', (v) => v === 3)).toBe(3);
    const failed = await query('kmod_deployments_failed_total{environment="Development"}');
    expect(failed).toEqual([]);
  }, 240_000);
});
