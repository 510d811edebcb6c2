// demo-kernel's workload: a tiny HTTP service that keeps itself busy (about 50 requests/s, some of
// them failing) and exposes the Prometheus series the node agent reads, so a real agent reports
// real numbers. Started by `hooks.mjs load`, stopped by `hooks.mjs unload`.
import { createServer, get } from 'node:http';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const version = process.env.KMOD_VERSION ?? 'dev';
const runDir = process.env.KMOD_RUN_DIR ?? 'run';
const startTime = Date.now() / 1000;
const BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25];
const byStatus = new Map();
const buckets = BUCKETS.map(() => 0);
let sum = 0;
let count = 0;

function observe(status, seconds) {
  byStatus.set(status, (byStatus.get(status) ?? 0) + 1);
  for (const [i, b] of BUCKETS.entries()) if (seconds <= b) buckets[i] += 1;
  sum += seconds;
  count++;
}

function metricsText() {
  const lines = ['# HELP kmod_requests_total Requests handled, by HTTP status.', '# TYPE kmod_requests_total counter'];
  for (const [status, n] of byStatus) lines.push(`kmod_requests_total{status="${status}",version="${version}"} ${n}`);
  lines.push('# HELP kmod_request_duration_seconds Request latency.', '# TYPE kmod_request_duration_seconds histogram');
  for (const [i, b] of BUCKETS.entries()) lines.push(`kmod_request_duration_seconds_bucket{le="${b}"} ${buckets[i]}`);
  lines.push(
    `kmod_request_duration_seconds_bucket{le="+Inf"} ${count}`,
    `kmod_request_duration_seconds_sum ${sum}`,
    `kmod_request_duration_seconds_count ${count}`,
  );
  lines.push('# TYPE process_start_time_seconds gauge', `process_start_time_seconds ${startTime}`);
  return `${lines.join('\n')}\n`;
}

const server = createServer((req, res) => {
  const started = process.hrtime.bigint();
  const url = new URL(req.url ?? '/', 'http://demo');
  if (url.pathname === '/metrics') return res.end(metricsText());
  if (url.pathname === '/healthz') return res.end(JSON.stringify({ status: 'ok', version }));
  if (url.pathname !== '/work') return res.writeHead(404).end();
  // Simulated work: a few ms of delay; 1 request in 200 fails, except the smoke test's probes.
  const fail = url.searchParams.get('probe') === null && Math.random() < 0.005;
  setTimeout(
    () => {
      res.writeHead(fail ? 500 : 200).end(fail ? 'boom' : `demo-kernel ${version}`);
      observe(fail ? 500 : 200, Number(process.hrtime.bigint() - started) / 1e9);
    },
    1 + Math.random() * 4,
  );
});

server.listen(Number(process.env.KMOD_DEMO_PORT ?? 0), '127.0.0.1', () => {
  const { port } = server.address();
  writeFileSync(join(runDir, 'port'), String(port));
  console.log(`demo-kernel ${version} serving on 127.0.0.1:${port}`);
  setInterval(() => get(`http://127.0.0.1:${port}/work`, (r) => r.resume()).on('error', () => {}), 20).unref();
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
