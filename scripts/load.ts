/**
 * `npm run load`: load tests against the embedded local cloud, with autocannon.
 *
 * It starts its own local cloud (a child process, as `npm start` runs it, in a temporary data
 * directory) so the cloud's resident memory can be read from /proc, raises the per-user rate
 * limits through the Admin API as an operator would (and puts them back at the end), and runs:
 *
 *   reads      each authenticated read and /health at 50 connections: req/s, p50/p95/p99, and the
 *              DynamoDB calls per request counted by the local cloud (/_local/meter)
 *   sustained  100 req/s over a mix of reads for 2 min
 *   spike      0 → 500 req/s
 *   soak       50 req/s for 10 min, resident memory sampled: growth after warm-up and slope
 *   stress     the rate doubled step by step until p99 > 1 s or errors > 1 %: the breaking point
 *   create     POST /api/v1/deployments at 10 connections, each a new deployment that starts its
 *              pipeline (one signed module per request, registered first, so no lock refuses it)
 *
 *   npm run load                                   # every scenario (about 17 minutes)
 *   npm run load -- --scenarios reads,stress       # a subset
 *   npm run load -- --soak-minutes 2 --seconds 5   # shorter runs (CI-sized)
 *   npm run load -- --scenarios reads --baseline ../other-checkout
 *                     # the reads first against another checkout's local cloud (its own
 *                     # node_modules), then this one's, and the ratios side by side
 *
 * The seed's target (p95 < 500 ms) is checked and printed per scenario. Figures are printed, not
 * asserted: see docs/performance.md for the results on the reference machine.
 *
 * Options are whole numbers (--seconds, --sustained-seconds 1-3600; --soak-minutes 1-1440;
 * --connections 1-10000; --creates 1-100000); a bad one is refused (exit 2) before anything starts.
 * Ctrl-C, SIGTERM or SIGHUP stop the run: the rate limits are put back, the local cloud is stopped
 * and its data directory removed, then the script exits 130, 143 or 129 (a second signal, 1.5 s or
 * more after the first, exits at once; the cloud still stops, since it stops when this process
 * goes: KMOD_STOP_WITH_STDIN).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand } from '@aws-sdk/lib-dynamodb';
import autocannon from 'autocannon';
import { TABLES } from '../functions/lib/tables.ts';
import { loadPki, signedModuleVersion } from '../localcloud/devPki.ts';
import { demoArtifact } from '../localcloud/seed.ts';
import { percentileOfSorted, perRequest } from './lib/stats.ts';
import { parseOptionsOrExit, wholeNumberOrExit } from './lib/usage.ts';
import { type EventLoopDelay, type MeterUnit, timeBreakdown } from './lib/meterReport.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// `create` last: the deployments it starts keep running in the background.
const ALL = ['reads', 'sustained', 'spike', 'soak', 'stress', 'create'] as const;
type Scenario = (typeof ALL)[number];

const USAGE = `usage: npm run load -- [--scenarios LIST] [--seconds N] [--sustained-seconds N] [--soak-minutes N]
                     [--creates N] [--connections N] [--baseline DIR]

Load tests against a local cloud of its own: npm start's code on a free port, in a new temporary
data directory removed at the end. PORT and KMOD_DATA_DIR are not used, and a cloud you already
run is neither used nor disturbed. Ctrl-C puts the rate limits it raised back and stops that cloud.

  --scenarios LIST       comma-separated, of ${ALL.join(', ')}
                         (default: all, in that order, about 17 minutes)
  --seconds N            reads: seconds per endpoint and for the bare-table rate (default 15);
                         stress: seconds per step, at most 10
  --sustained-seconds N  sustained: 100 req/s over the four reads for N seconds (default 120)
  --soak-minutes N       soak: 50 req/s for N minutes, the memory sampled every 10 s (default 10)
  --creates N            create: N POSTs /api/v1/deployments at 10 connections (default 200)
  --connections N        reads: connections per endpoint and for the bare-table rate (default 50)
  --baseline DIR         reads: first against another checkout with its own node_modules, then
                         this one, side by side
  --help                 this text

Each scenario prints a table (req/s, p50/p95/p99 ms, errors %, DynamoDB calls per request where
counted) and its goal met or NOT met. Results and how to read them: docs/performance.md`;

const values = parseOptionsOrExit('load', USAGE, {
  scenarios: { type: 'string', default: ALL.join(',') },
  seconds: { type: 'string', default: '15' },
  'soak-minutes': { type: 'string', default: '10' },
  'sustained-seconds': { type: 'string', default: '120' },
  creates: { type: 'string', default: '200' },
  connections: { type: 'string', default: '50' },
  baseline: { type: 'string' },
  help: { type: 'boolean', default: false },
});
/** A bad option is a usage error before any cloud starts (a NaN duration ran autocannon's default; NaN connections sent nothing and printed p95 0 ms as the target met). */
function usageError(message: string): never {
  console.error(`load: ${message}\n${USAGE}`);
  process.exit(2);
}
const whole = (name: 'seconds' | 'soak-minutes' | 'sustained-seconds' | 'creates' | 'connections', max: number) =>
  wholeNumberOrExit('load', USAGE, `--${name}`, values[name], max);
const scenarios = values.scenarios.split(',').map((s) => s.trim()) as Scenario[];
for (const s of scenarios) if (!ALL.includes(s)) usageError(`unknown scenario "${s}": one of ${ALL.join(', ')}`);
const SECONDS = whole('seconds', 3600);
const SOAK_MINUTES = whole('soak-minutes', 1440);
const SUSTAINED_SECONDS = whole('sustained-seconds', 3600);
const CREATES = whole('creates', 100_000);
const CONNECTIONS = whole('connections', 10_000);
const SEED_P95_MS = 500;

interface Cloud {
  apiUrl: string;
  dynamodbUrl: string;
  tokens: Record<'Admin' | 'Deployer' | 'Viewer' | 'Approver', string>;
  pid: number;
  child: ChildProcess;
  dataDir: string;
}

/**
 * What an interruption must undo: every local cloud this run started, each with the rate limits to
 * put back once raised. A signal (Ctrl-C, SIGTERM, SIGHUP) releases them all before exiting; the end
 * of a run releases its own. Releasing twice waits on the first.
 */
interface Started {
  child: ChildProcess;
  dataDir: string;
  cloud?: Cloud;
  putBack?: () => Promise<void>;
  released?: Promise<void>;
}
const started = new Set<Started>();
const inFlight = new Set<autocannon.Instance>();
let interrupted: NodeJS.Signals | undefined;
let interruptedAt = 0;

class Interrupted extends Error {}
function checkInterrupted(): void {
  if (interrupted) throw new Interrupted(`interrupted by ${interrupted}`);
}

function release(s: Started): Promise<void> {
  s.released ??= (async () => {
    try {
      if (s.putBack) await s.putBack();
    } finally {
      await stopChild(s);
      started.delete(s);
    }
  })();
  return s.released;
}

const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 } as const;
for (const signal of Object.keys(SIGNAL_EXIT) as (keyof typeof SIGNAL_EXIT)[]) {
  process.on(signal, () => {
    // A second signal does not wait; the clouds stop anyway when this process goes (their stdin ends).
    // One Ctrl-C can arrive twice within milliseconds (from the terminal, and forwarded by npm and
    // tsx): only a signal a while after the first counts as a second.
    if (interrupted) {
      if (performance.now() - interruptedAt > 1500) process.exit(SIGNAL_EXIT[signal]);
      return;
    }
    interrupted = signal;
    interruptedAt = performance.now();
    console.error(`\ninterrupted (${signal}): putting the rate limits back and stopping the local cloud…`);
    for (const i of inFlight) i.stop();
    Promise.allSettled([...started].map(release)).then((results) => {
      for (const r of results) if (r.status === 'rejected') console.error(`  could not undo everything: ${(r.reason as Error).message}`);
      process.exit(SIGNAL_EXIT[signal]);
    });
  });
}

/** The local cloud as `npm start` runs it, in its own process and data directory. */
async function startCloud(root = ROOT): Promise<Cloud> {
  checkInterrupted();
  const dataDir = mkdtempSync(join(tmpdir(), 'kmod-load-'));
  // Node itself with tsx's loader (resolved from `root`), as `npm start` runs it: no tsx CLI in
  // between, which kills its child with SIGKILL when it is slow (30 ms) to acknowledge a signal.
  const child = spawn(process.execPath, ['--import', 'tsx', 'localcloud/main.ts', '--fresh'], {
    cwd: root,
    // One address sends everything here: the edge limit is an operator's deploy-time setting (WAF on AWS).
    // RATE_LIMIT_PER_IP: for a --baseline checkout from before the edge took the per-address limit.
    // KMOD_STOP_WITH_STDIN: the cloud stops when this process goes, however it goes (stdin ends).
    env: {
      ...process.env,
      KMOD_DATA_DIR: dataDir,
      PORT: '0',
      WAF_RATE_LIMIT_PER_ADDRESS: '100000000',
      RATE_LIMIT_PER_IP: '100000000',
      LOG_LEVEL: 'ERROR',
      KMOD_STOP_WITH_STDIN: '1',
    },
    stdio: ['pipe', 'pipe', 'inherit'],
    // Its own process group: a terminal's Ctrl-C reaches this script alone, which puts the limits
    // back through the cloud's API before stopping it (the cloud, signalled too, stopped first).
    detached: true,
  });
  const s: Started = { child, dataDir };
  started.add(s);
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 120_000;
  while (!out.includes('local cloud is up')) {
    checkInterrupted();
    if (child.exitCode !== null) throw new Error(`the local cloud exited (${child.exitCode}):\n${out}`);
    if (Date.now() > deadline) throw new Error(`the local cloud did not start in 120 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  const file = JSON.parse(readFileSync(join(dataDir, 'cloud.json'), 'utf8')) as Omit<Cloud, 'pid' | 'child' | 'dataDir'>;
  s.cloud = { ...file, pid: child.pid!, child, dataDir };
  return s.cloud;
}

/** Stop a cloud and remove its data directory (one that already exited is not waited for). */
async function stopChild({ child, dataDir }: Pick<Started, 'child' | 'dataDir'>) {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGINT');
    await exited;
  }
  child.stdin?.destroy();
  rmSync(dataDir, { recursive: true, force: true });
}

/** Resident memory of the cloud process and its children (DynamoDB Local's JVM is separate: reported apart). */
function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : Number.NaN;
}

async function api(cloud: Cloud, method: string, path: string, token: string, body?: unknown) {
  const r = await fetch(`${cloud.apiUrl}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  if (!r.ok) throw new Error(`${method} ${path} → ${r.status} ${text}`);
  return text ? JSON.parse(text) : undefined;
}

interface Target {
  name: string;
  path: string;
  token?: string;
}

interface Result {
  scenario: string;
  target: string;
  rate: string;
  requests: number;
  rps: number;
  p50: number;
  p95: number;
  p99: number;
  errorsPercent: number;
  dynamodbPerRequest?: number;
}

async function run(
  cloud: Cloud,
  t: Target,
  o: { seconds: number; connections: number; rate?: number; amount?: number; requests?: autocannon.Request[] },
): Promise<Result> {
  checkInterrupted();
  const times: number[] = [];
  const startedAt = Date.now();
  const r = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: `${cloud.apiUrl}${t.path}`,
        connections: o.connections,
        duration: o.seconds,
        ...(o.rate ? { overallRate: o.rate } : {}),
        ...(o.amount ? { amount: o.amount } : {}),
        ...(o.requests ? { requests: o.requests } : {}),
        headers: t.token ? { authorization: `Bearer ${t.token}` } : {},
      },
      (err, result) => (err ? reject(err) : resolve(result)),
    );
    inFlight.add(instance);
    instance.on('done', () => inFlight.delete(instance));
    // Every response time, for exact percentiles (autocannon's summary has p90 and p97.5, not p95).
    instance.on('response', (_client, _status, _bytes, ms) => times.push(ms));
  });
  // A run stopped by a signal is not a result.
  checkInterrupted();
  times.sort((a, b) => a - b);
  const at = (p: number) => Math.round(percentileOfSorted(times, p) ?? 0);
  const total = r.requests.total;
  // autocannon's `errors` are connection errors, timeouts included: requests sent that got no answer.
  const failed = r.non2xx + r.errors;
  const sent = total + r.errors;
  const seconds = o.amount ? (Date.now() - startedAt) / 1000 : o.seconds;
  return {
    scenario: '',
    target: t.name,
    rate: o.rate ? `${o.rate}/s` : `${o.connections} conn`,
    requests: total,
    rps: Math.round(total / seconds),
    p50: at(50),
    p95: at(95),
    p99: at(99),
    errorsPercent: sent ? Math.round((failed / sent) * 10000) / 100 : 0,
  };
}

async function meter(cloud: Cloud, reset = false): Promise<MeterUnit[]> {
  const r = await fetch(`${cloud.apiUrl}/_local/meter`, { method: reset ? 'DELETE' : 'GET' });
  // A baseline checkout from before the meter existed has none to read.
  if (!r.ok) return [];
  const body = (await r.json()) as { units: MeterUnit[]; eventLoopDelayMs?: EventLoopDelay };
  lastLoopDelay = body.eventLoopDelayMs;
  return body.units;
}

/** The local cloud's event-loop delay as of the last read of the meter (absent from older checkouts). */
let lastLoopDelay: EventLoopDelay | undefined;
const loopDelayText = () =>
  lastLoopDelay
    ? `the local cloud's event loop kept ready work waiting p50 ${lastLoopDelay.p50} ms, p99 ${lastLoopDelay.p99} ms, max ${lastLoopDelay.max} ms`
    : '';

function table(rows: Result[]) {
  const cols: [keyof Result, string][] = [
    ['scenario', 'scenario'],
    ['target', 'endpoint'],
    ['rate', 'load'],
    ['requests', 'requests'],
    ['rps', 'req/s'],
    ['p50', 'p50 ms'],
    ['p95', 'p95 ms'],
    ['p99', 'p99 ms'],
    ['errorsPercent', 'errors %'],
    ['dynamodbPerRequest', 'DynamoDB calls/req'],
  ];
  const text = rows.map((r) => cols.map(([k]) => String(r[k] ?? '')));
  const widths = cols.map(([, h], i) => Math.max(h.length, ...text.map((t) => t[i].length)));
  console.log(`| ${cols.map(([, h], i) => h.padEnd(widths[i])).join(' | ')} |`);
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const t of text) console.log(`| ${t.map((c, i) => c.padEnd(widths[i])).join(' | ')} |`);
}

const seedCheck = (rows: Result[]) => {
  const worst = rows.reduce((m, r) => Math.max(m, r.p95), 0);
  console.log(`seed target p95 < ${SEED_P95_MS} ms: ${worst < SEED_P95_MS ? 'met' : 'NOT met'} (worst p95 ${worst} ms)\n`);
};

interface Session {
  cloud: Cloud;
  pid: number;
  reads: Target[];
  executionId: string;
}

/** A local cloud from `root`, limits raised as an operator would (put back at the end), one deployment to read back, warmed up. */
async function withCloud<T>(root: string, fn: (s: Session) => Promise<T>): Promise<T> {
  const cloud = await startCloud(root);
  const s = [...started].find((x) => x.cloud === cloud)!;
  try {
    return await withLimitsRaised(s, cloud, fn);
  } finally {
    await release(s);
  }
}

async function withLimitsRaised<T>(s: Started, cloud: Cloud, fn: (s: Session) => Promise<T>): Promise<T> {
  const pid = cloud.pid;
  const before = await api(cloud, 'GET', '/api/v1/admin/rate-limits', cloud.tokens.Admin);
  s.putBack = async () => {
    await api(cloud, 'PUT', '/api/v1/admin/rate-limits', cloud.tokens.Admin, before);
    console.error(`rate limits put back: ${JSON.stringify(before)}`);
  };
  checkInterrupted();
  await api(cloud, 'PUT', '/api/v1/admin/rate-limits', cloud.tokens.Admin, {
    ...before,
    deploymentCreatePerUser: 100_000,
    metricsPerUser: 100_000,
    // A baseline from before the edge took the per-address limit still counts it in the functions.
    ...('perIp' in before ? { perIp: 1_000_000 } : {}),
  });
  const created = await api(cloud, 'POST', '/api/v1/deployments', cloud.tokens.Deployer, {
    moduleName: 'demo-kernel',
    version: '1.1.0',
    targetEnvironment: 'Development',
  });
  const reads: Target[] = [
    { name: 'GET /api/v1/deployments', path: '/api/v1/deployments', token: cloud.tokens.Viewer },
    { name: 'GET /api/v1/deployments/{id}', path: `/api/v1/deployments/${created.executionId}`, token: cloud.tokens.Viewer },
    { name: 'GET /api/v1/clusters', path: '/api/v1/clusters', token: cloud.tokens.Viewer },
    { name: 'GET /api/v1/clusters/{environment}', path: '/api/v1/clusters/Development', token: cloud.tokens.Viewer },
  ];
  // Warm up (first requests compile and fill caches), then measure.
  for (const t of reads) await run(cloud, t, { seconds: 2, connections: 10 });
  return await fn({ cloud, pid, reads, executionId: created.executionId });
}

/** `count` new modules (load-0001 …), each version 1.0.0 signed by the cloud's development PKI, registered as a Deployer would. */
async function registerModules(cloud: Cloud, count: number): Promise<string[]> {
  const pki = loadPki(join(cloud.dataDir, 'pki'));
  if (!pki) throw new Error(`no development PKI in ${cloud.dataDir}/pki`);
  const artifact = demoArtifact('1.0.0');
  const names = Array.from({ length: count }, (_, i) => `load-${String(i + 1).padStart(4, '0')}`);
  for (let i = 0; i < names.length; i += 10)
    await Promise.all(
      names
        .slice(i, i + 10)
        .map((name) =>
          api(
            cloud,
            'POST',
            '/api/v1/modules',
            cloud.tokens.Deployer,
            signedModuleVersion({ name, version: '1.0.0', entrypoint: 'demo_kernel_init', resources: { cpuMillicores: 100, memoryMiB: 32 } }, artifact, pki),
          ),
        ),
    );
  return names;
}

/**
 * The machine's own limit for these reads: the table calls the routes make, sent straight to
 * DynamoDB Local at the same concurrency with nothing else (no gateway, authorizer or function).
 */
async function tableCeiling(cloud: Cloud, executionId: string): Promise<{ getItemPerSecond: number; queryPerSecond: number }> {
  const ddb = DynamoDBDocumentClient.from(
    new DynamoDBClient({ endpoint: cloud.dynamodbUrl, region: 'us-east-1', credentials: { accessKeyId: 'local', secretAccessKey: 'local' } }),
  );
  const rate = async (call: () => Promise<unknown>) => {
    let n = 0;
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async () => {
        while (Date.now() < until && !interrupted) {
          await call();
          n++;
        }
      }),
    );
    return Math.round(n / SECONDS);
  };
  const table = (id: string) => `kmod-${id}`;
  const getItemPerSecond = await rate(() => ddb.send(new GetCommand({ TableName: table(TABLES.deployments.id), Key: { executionId }, ConsistentRead: true })));
  const queryPerSecond = await rate(() =>
    ddb.send(
      new QueryCommand({
        TableName: table(TABLES.deployments.id),
        IndexName: 'byCreatedAt',
        KeyConditionExpression: 'listKey = :pk',
        ExpressionAttributeValues: { ':pk': 'deployments' },
        ScanIndexForward: false,
        Limit: 20,
      }),
    ),
  );
  ddb.destroy();
  return { getItemPerSecond, queryPerSecond };
}

/** Each read and /health at full concurrency, with the AWS calls each made. */
async function readsScenario({ cloud, reads }: Session, scenario = 'reads'): Promise<{ rows: Result[]; calls: string[] }> {
  const rows: Result[] = [];
  const calls: string[] = [];
  for (const t of [{ name: 'GET /health', path: '/health' }, ...reads]) {
    await meter(cloud, true);
    const r = await run(cloud, t, { seconds: SECONDS, connections: CONNECTIONS });
    // Only this route ran since the reset: its unit is the one with the requests.
    const unit = (await meter(cloud)).filter((u) => u.label !== 'background').sort((a, b) => b.requests - a.requests)[0];
    rows.push({ ...r, scenario, dynamodbPerRequest: unit?.dynamodbPerRequest });
    if (unit)
      calls.push(
        `${unit.label}: ${
          Object.entries(unit.calls)
            .map(([k, n]) => `${k} ${perRequest(n, unit.requests)}`)
            .join(', ') || 'none'
        }${lastLoopDelay ? `; event loop delay p99 ${lastLoopDelay.p99} ms` : ''}`,
      );
  }
  return { rows, calls };
}

async function main() {
  if (values.baseline) {
    console.log(`reads against the baseline checkout ${values.baseline}…`);
    const base = await withCloud(values.baseline, (s) => readsScenario(s, 'baseline'));
    console.log('reads against this checkout…');
    const now = await withCloud(ROOT, (s) => readsScenario(s, 'this'));
    table([...base.rows, ...now.rows]);
    console.log('\nthis checkout / baseline:');
    for (const [i, r] of now.rows.entries()) {
      const b = base.rows[i];
      console.log(`  ${r.target.padEnd(36)} req/s ×${(r.rps / Math.max(1, b.rps)).toFixed(2)}   p99 ×${(r.p99 / Math.max(1, b.p99)).toFixed(2)}`);
    }
    console.log(`\nAWS calls per request, this checkout (/_local/meter):\n  ${now.calls.join('\n  ')}\n`);
    if (scenarios.length === 1 && scenarios[0] === 'reads') return;
  }
  console.log('starting a local cloud for the load tests…');
  await withCloud(ROOT, async (session) => {
    const { cloud, pid, reads } = session;
    if (scenarios.includes('reads') && !values.baseline) {
      const { rows, calls } = await readsScenario(session);
      table(rows);
      console.log(`\nAWS calls per request, by operation (/_local/meter):\n  ${calls.join('\n  ')}\n`);
      const ceiling = await tableCeiling(cloud, session.executionId);
      console.log(
        `the machine's limit, DynamoDB Local alone at ${CONNECTIONS} concurrent calls: GetItem ${ceiling.getItemPerSecond}/s, Query ${ceiling.queryPerSecond}/s`,
      );
      const [, list, one] = rows;
      console.log(
        `  GET /api/v1/deployments served ${list.rps} req/s = ${((list.rps / ceiling.queryPerSecond) * 100).toFixed(0)} % of the bare Query rate; GET /api/v1/deployments/{id} ${one.rps} req/s = ${((one.rps / ceiling.getItemPerSecond) * 100).toFixed(0)} % of the bare GetItem rate\n`,
      );
      seedCheck(rows);
    }
    if (scenarios.includes('sustained')) {
      const seconds = SUSTAINED_SECONDS;
      console.log(`sustained: 100 req/s over ${reads.length} reads for ${seconds} s…`);
      const rows = (await Promise.all(reads.map((t) => run(cloud, t, { seconds, connections: 10, rate: 100 / reads.length })))).map((r) => ({
        ...r,
        scenario: 'sustained',
      }));
      table(rows);
      seedCheck(rows);
    }
    if (scenarios.includes('spike')) {
      console.log('spike: 5 s idle, then 0 → 500 req/s for 20 s…');
      await new Promise((r) => setTimeout(r, 5000));
      const rows = (await Promise.all(reads.map((t) => run(cloud, t, { seconds: 20, connections: 50, rate: 500 / reads.length })))).map((r) => ({
        ...r,
        scenario: 'spike',
      }));
      table(rows);
      seedCheck(rows);
    }
    if (scenarios.includes('soak')) {
      const minutes = SOAK_MINUTES;
      console.log(`soak: 50 req/s for ${minutes} min, resident memory sampled every 10 s…`);
      const samples: { at: number; mb: number }[] = [];
      const t0 = Date.now();
      const timer = setInterval(() => samples.push({ at: (Date.now() - t0) / 1000, mb: rssMb(pid) }), 10_000);
      const rows = (await Promise.all(reads.map((t) => run(cloud, t, { seconds: minutes * 60, connections: 10, rate: 50 / reads.length })))).map((r) => ({
        ...r,
        scenario: 'soak',
      }));
      clearInterval(timer);
      table(rows);
      // Warm-up: the first sixth of the run (at least the first sample) is not counted.
      const warm = samples.slice(Math.max(1, Math.floor(samples.length / 6)));
      if (warm.length >= 2) {
        const first = warm[0];
        const last = warm.at(-1)!;
        const growth = ((last.mb - first.mb) / first.mb) * 100;
        const slope = fitSlope(warm) * 60;
        console.log(
          `soak memory: ${first.mb.toFixed(1)} MB after warm-up → ${last.mb.toFixed(1)} MB at the end (${growth >= 0 ? '+' : ''}${growth.toFixed(1)} %, slope ${slope.toFixed(2)} MB/min); goal < +10 %: ${growth < 10 ? 'met' : 'NOT met'}`,
        );
      } else console.log('soak memory: too short a soak for a slope (at least 20 s needed)');
      seedCheck(rows);
    }
    if (scenarios.includes('stress')) {
      console.log('stress: the rate doubled every step until p99 > 1 s or errors > 1 % or the rate is not served…');
      let rate = 100;
      let breaking: Result | undefined;
      const rows: Result[] = [];
      while (!breaking && rate <= 25_600) {
        const r = { ...(await run(cloud, reads[0], { seconds: Math.min(SECONDS, 10), connections: 100, rate })), scenario: 'stress' };
        rows.push(r);
        if (r.p99 > 1000 || r.errorsPercent > 1 || r.rps < rate * 0.8) breaking = r;
        rate *= 2;
      }
      table(rows);
      if (breaking)
        console.log(`breaking point: ${breaking.rate} asked, ${breaking.rps} req/s served (p99 ${breaking.p99} ms, errors ${breaking.errorsPercent} %)\n`);
    }
    if (scenarios.includes('create')) {
      const count = CREATES;
      console.log(`create: ${count} modules registered, then POST /api/v1/deployments at 10 connections, one new deployment each…`);
      const names = await registerModules(cloud, count);
      let next = 0;
      await meter(cloud, true);
      const r = await run(
        cloud,
        { name: 'POST /api/v1/deployments', path: '/api/v1/deployments', token: cloud.tokens.Deployer },
        {
          seconds: 0,
          connections: 10,
          amount: count,
          requests: [
            {
              method: 'POST',
              headers: { authorization: `Bearer ${cloud.tokens.Deployer}`, 'content-type': 'application/json' },
              setupRequest: (req) => ({
                ...req,
                body: JSON.stringify({ moduleName: names[next++ % names.length], version: '1.0.0', targetEnvironment: 'Development' }),
              }),
            },
          ],
        },
      );
      const units = await meter(cloud);
      const unit = units.find((u) => u.label === 'POST /api/v1/deployments');
      const rows = [{ ...r, scenario: 'create', dynamodbPerRequest: unit?.dynamodbPerRequest }];
      table(rows);
      if (unit) console.log(`where a POST's time went (means, the started pipelines sharing the cores): ${timeBreakdown(unit)}`);
      const background = units.find((u) => u.label === 'background');
      if (background) console.log(`meanwhile the pipelines made ${Object.values(background.calls).reduce((a, b) => a + b, 0)} AWS calls`);
      if (lastLoopDelay) console.log(`${loopDelayText()} (gateway, functions, Step Functions and fleet share it; on AWS each request has its own Lambda)`);
      console.log(`POST /api/v1/deployments p99 ${r.p99} ms; goal ≤ 150 ms at 10 connections: ${r.p99 <= 150 && r.errorsPercent === 0 ? 'met' : 'NOT met'}\n`);
    }
  });
  console.log(`Load generator, local cloud and DynamoDB Local shared this machine (${process.arch}, ${cpus()} cores).`);
}

function cpus() {
  return readFileSync('/proc/cpuinfo', 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('processor')).length;
}

/** Least-squares slope of MB over seconds. */
function fitSlope(points: { at: number; mb: number }[]): number {
  const n = points.length;
  const mx = points.reduce((s, p) => s + p.at, 0) / n;
  const my = points.reduce((s, p) => s + p.mb, 0) / n;
  const num = points.reduce((s, p) => s + (p.at - mx) * (p.mb - my), 0);
  const den = points.reduce((s, p) => s + (p.at - mx) ** 2, 0);
  return den ? num / den : 0;
}

try {
  await main();
} catch (e) {
  if (!interrupted) throw e;
  // The signal's handler is putting the limits back and stopping the clouds; it exits when done.
  await new Promise(() => undefined);
}
