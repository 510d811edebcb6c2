import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { loopbackUrl, parsePrometheus, processUsage, sampleProcess, trafficBetween, windowHistogram } from '../../../functions/agent/moduleMetrics.ts';
import { createDevPki, type DevPki } from '../../../localcloud/devPki.ts';
import { combineWindows } from '../../../functions/agent/installer.ts';
import { deployRequest, hostAgent, publish, testModule } from './fixtures/helpers.ts';

let pki: DevPki;
beforeAll(async () => {
  pki = await createDevPki();
});

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
});

const exposition = (c: { ok: number; errors: number; sum: number; start: number }) => `# HELP kmod_requests_total Requests.
# TYPE kmod_requests_total counter
kmod_requests_total{status="200",route="/work"} ${c.ok}
kmod_requests_total{status="404"} 0
kmod_requests_total{status="503"} ${c.errors}
# TYPE kmod_request_duration_seconds histogram
kmod_request_duration_seconds_bucket{le="0.05"} ${c.ok + c.errors}
kmod_request_duration_seconds_bucket{le="+Inf"} ${c.ok + c.errors}
kmod_request_duration_seconds_sum ${c.sum}
kmod_request_duration_seconds_count ${c.ok + c.errors}
some_other_metric{status="500"} 99
process_start_time_seconds ${c.start}
`;

describe('module metrics', () => {
  it('parses the documented Prometheus series and computes rates between samples', () => {
    const a = parsePrometheus(exposition({ ok: 990, errors: 10, sum: 20, start: 0 }), 100_000);
    expect(a).toEqual({
      at: 100_000,
      requests: 1000,
      errors: 10,
      latencySum: 20,
      latencyCount: 1000,
      startTime: 0,
      buckets: [
        [0.05, 1000],
        [Infinity, 1000],
      ],
    });
    // Lifetime rate (no earlier sample): 1000 requests in 100 s since process start.
    expect(trafficBetween(undefined, a)).toEqual({
      requestsPerSecond: 10,
      errorRatePercent: 1,
      latencyMs: 20,
      window: { seconds: 100, requests: 1000, errors: 10, latencyHistogram: { boundsMs: [50], counts: [1000, 0] } },
    });
    const b = parsePrometheus(exposition({ ok: 1490, errors: 60, sum: 25, start: 0 }), 110_000);
    expect(trafficBetween(a, b)).toEqual({
      requestsPerSecond: 55,
      errorRatePercent: 9.09,
      latencyMs: 9.09,
      window: { seconds: 10, requests: 550, errors: 50, latencyHistogram: { boundsMs: [50], counts: [550, 0] } },
    });
  });

  it('turns two scrapes of cumulative histogram buckets into the window’s per-bucket counts', () => {
    const scrape = (b: [string, number][]) =>
      parsePrometheus(b.map(([le, c]) => `kmod_request_duration_seconds_bucket{le="${le}",route="/"} ${c}`).join('\n')).buckets;
    const before = scrape([
      ['0.01', 10],
      ['0.1', 15],
      ['1', 16],
      ['+Inf', 16],
    ]);
    const after = scrape([
      ['0.1', 45],
      ['0.01', 30],
      ['+Inf', 52],
      ['1', 50],
    ]);
    // Between them: 20 requests ≤ 10 ms, 10 in (10, 100] ms, 4 in (100 ms, 1 s], 2 slower.
    expect(windowHistogram(before, after)).toEqual({ boundsMs: [10, 100, 1000], counts: [20, 10, 4, 2] });
    // Label sets of one bound are summed; other bounds than before (the module changed them) give none.
    expect(
      parsePrometheus('kmod_request_duration_seconds_bucket{le="0.1",route="/a"} 3\nkmod_request_duration_seconds_bucket{le="0.1",route="/b"} 4').buckets,
    ).toEqual([[0.1, 7]]);
    expect(
      windowHistogram(
        scrape([
          ['0.5', 1],
          ['+Inf', 1],
        ]),
        after,
      ),
    ).toBeUndefined();
    expect(windowHistogram(undefined, undefined)).toBeUndefined();
  });

  it('combines the windows of several modules: counts summed, histograms added only with the same bounds', () => {
    const t = (requests: number, errors: number, boundsMs?: number[], counts?: number[]) => ({
      requestsPerSecond: 1,
      latencyMs: 1,
      errorRatePercent: 1,
      window: { seconds: 10, requests, errors, ...(boundsMs ? { latencyHistogram: { boundsMs, counts: counts! } } : {}) },
    });
    expect(combineWindows([t(10, 1, [50], [9, 1]), t(20, 2, [50], [20, 0])])).toEqual({
      seconds: 10,
      requests: 30,
      errors: 3,
      latencyHistogram: { boundsMs: [50], counts: [29, 1] },
    });
    expect(combineWindows([t(10, 1, [50], [9, 1]), t(20, 2, [100], [20, 0])])).toEqual({ seconds: 10, requests: 30, errors: 3 });
    expect(combineWindows([t(10, 1), { requestsPerSecond: 1, latencyMs: 1, errorRatePercent: 0 }])).toBeUndefined();
  });

  it('does not rate a restarted process against the samples of the one before it', () => {
    // The same version loaded again: the old process served 1000 requests (5 failed); the new one,
    // started at 100 s, has served 1005 (7 failed). Against the old sample that reads as 2 of 5 = 40 %.
    const old = parsePrometheus(exposition({ ok: 995, errors: 5, sum: 10, start: 0 }), 100_000);
    const restarted = parsePrometheus(exposition({ ok: 998, errors: 7, sum: 10, start: 100 }), 120_000);
    expect(trafficBetween(old, restarted)).toEqual({
      requestsPerSecond: 50.25,
      errorRatePercent: 0.7,
      latencyMs: 9.95,
      window: { seconds: 20, requests: 1005, errors: 7, latencyHistogram: { boundsMs: [50], counts: [1005, 0] } },
    });
  });

  it('reads only loopback addresses', () => {
    for (const ok of ['http://127.0.0.1:9464/metrics', 'http://localhost/metrics', 'http://[::1]:1/m', 'http://127.8.9.1/x'])
      expect(loopbackUrl(ok).href).toBe(new URL(ok).href);
    for (const bad of ['http://10.0.0.1/metrics', 'http://169.254.169.254/latest', 'http://example.com/', 'file:///etc/passwd', 'http://127.0.0.1.nip.io/']) {
      expect(() => loopbackUrl(bad)).toThrow(/loopback/);
    }
  });

  it('reports latency, error rate and requests/s from a real Prometheus endpoint', async () => {
    const counters = { ok: 0, errors: 0, sum: 0, start: Date.now() / 1000 - 10 };
    const server = createServer((_req, res) => res.end(exposition(counters)));
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    counters.ok = 495;
    counters.errors = 5;
    counters.sum = 7.5; // 15 ms each
    const port = (server.address() as AddressInfo).port;
    const artifacts = new Map<string, Buffer>();
    const m = testModule(pki, '1.0.0', { metrics: { prometheus: `http://127.0.0.1:${port}/metrics` } });
    publish(artifacts, m);
    const { agent } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(m, 'd1'));
    const before = Date.now() / 1000;
    const r = await agent.readMetrics();
    const after = Date.now() / 1000;
    expect(r).toMatchObject({ trafficSource: 'module', errorRatePercent: 1, latencyMs: 15 });
    // First scrape: 500 requests over the process lifetime (it started 10 s before the test).
    expect(r.requestsPerSecond).toBeGreaterThanOrEqual(Math.floor((500 / (after - counters.start)) * 100) / 100);
    expect(r.requestsPerSecond).toBeLessThanOrEqual(Math.ceil((500 / (before - counters.start)) * 100) / 100);
  });

  it('reads a JSON metrics file and a pid file the load hook wrote', async () => {
    const artifacts = new Map<string, Buffer>();
    const hooks = {
      load: { command: ['sh', '-c', 'nohup sleep 30 >/dev/null 2>&1 & echo $! > "$KMOD_PID_FILE"'] },
      unload: { command: ['sh', '-c', '[ -e "$KMOD_PID_FILE" ] && kill $(cat "$KMOD_PID_FILE"); rm -f "$KMOD_PID_FILE"'] },
    };
    const files = [{ path: 'metrics.json', data: JSON.stringify({ latencyMs: 12.5, errorRatePercent: 0.25, requestsPerSecond: 321 }) }];
    const m = testModule(pki, '1.0.0', { hooks, files, metrics: { jsonFile: 'metrics.json' } });
    publish(artifacts, m);
    const { agent, installer } = hostAgent(pki, { artifacts });
    await agent.deploy('mod', deployRequest(m, 'd1'));
    const pid = installer.pid('mod', '1.0.0');
    expect(pid).toBeGreaterThan(0);
    const r = await agent.readMetrics();
    expect(r).toMatchObject({ source: 'module', trafficSource: 'module', latencyMs: 12.5, errorRatePercent: 0.25, requestsPerSecond: 321 });
    expect(r.memoryPercent).toBeGreaterThan(0);
    expect(r.memoryPercent).toBeLessThan(5); // a sleep, not the whole host
    expect((await agent.checkHealth()).status).toBe('healthy');
    process.kill(pid!, 'SIGKILL');
    await new Promise((res) => setTimeout(res, 100));
    expect(await agent.checkHealth()).toMatchObject({ status: 'unhealthy', reasons: [expect.stringContaining(`process ${pid} is not running`)] });
    expect((await agent.readMetrics()).source).toBe('host');
  });
});

describe('a module process and its descendants', () => {
  it.runIf(process.platform === 'linux')('counts the CPU and memory of the processes the module started, not only the pid in its pid file', async () => {
    // The pid file names a shell that does nothing but wait; its child burns CPU.
    const shell = spawn('sh', ['-c', 'node -e "const t=Date.now()+4000; while(Date.now()<t){}" & wait'], { stdio: 'ignore' });
    try {
      await new Promise((r) => setTimeout(r, 400)); // the child has started
      const ticksOf = (pid: number) => {
        const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        return Number(f[11]) + Number(f[12]);
      };
      const child = Number(readFileSync(`/proc/${shell.pid}/task/${shell.pid}/children`, 'utf8').trim().split(' ')[0]);
      const first = sampleProcess(shell.pid!)!;
      const childBefore = ticksOf(child);
      expect(first.processes).toBe(2);
      await new Promise((r) => setTimeout(r, 1500));
      const childAfter = ticksOf(child);
      const second = sampleProcess(shell.pid!)!;
      // What the busy child used in between is in the module's figure (the shell alone used ~nothing).
      expect(childAfter - childBefore).toBeGreaterThan(0);
      expect(second.ticks - first.ticks).toBeGreaterThanOrEqual(childAfter - childBefore);
      expect(processUsage(first, second).cpuPercent).toBeGreaterThan(0);
      expect(second.rssBytes).toBeGreaterThan(20 * 1024 * 1024); // node's resident set, not only the shell's
    } finally {
      shell.kill('SIGKILL');
    }
  });

  it('answers undefined for a process that is gone', () => {
    expect(sampleProcess(2 ** 22 + 12345)).toBeUndefined();
  });
});
