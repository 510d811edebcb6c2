/**
 * `npm run bench`: how a Direct deployment scales with the environment's size, measured on the
 * embedded local cloud (real HTTP agents, DynamoDB Local, the ASL run by the interpreter).
 *
 * For 3, 20, 1,000 and 10,000 nodes it prints Step Functions history events (pipeline and the
 * Direct child execution, against the 25,000-event limit of a Standard execution), batches,
 * events per batch, wall time per deployment (p50/p95 over the runs) and time per node; then what
 * one deployment would cost on AWS: the billable usage the local cloud counted (state transitions,
 * Lambda requests and GB-seconds, DynamoDB capacity units, SNS publishes, API requests) priced
 * with scripts/lib/prices.ts, beside AWS CodeDeploy's on-premises price, and the cost of a million
 * authenticated reads. Each size runs in its own process with a fresh local cloud.
 *
 *   npm run bench                      # all sizes (10,000 nodes takes a few minutes)
 *   npm run bench -- --sizes 3,20      # a subset
 *   npm run bench -- --ws 200 --runs 3 # operators' live events: 200 WebSocket subscribers (scripts/lib/benchWs.ts)
 *   npm run bench -- --sizes 1000 --baseline ../other-checkout   # before/after, side by side
 *   npm run bench -- --start --runs 5 [--baseline ../other-checkout]
 *                                      # npm start to healthy, fresh and with existing data (scripts/lib/benchStart.ts)
 *
 * Sizes are whole numbers from 1 to 100,000 nodes, --runs 1-100, --ws 1-10,000 clients; a bad one
 * is refused (exit 2) before any cloud starts.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BillableUsage, costOf, PRICES_AS_OF, PRICES_USD, usd } from './lib/prices.ts';
import { percentile, SHORT_STABILISATION } from './lib/stats.ts';
import { parseOptionsOrExit, wholeNumberOrExit } from './lib/usage.ts';

const USAGE = `usage: npm run bench -- [--sizes N,N,…] [--runs N] [--baseline DIR]
       npm run bench -- --start [--runs N] [--baseline DIR]
       npm run bench -- --ws CLIENTS [--runs N]

Every measurement starts local clouds of its own, on free ports and in new temporary data
directories (removed afterwards): PORT and KMOD_DATA_DIR are not used, and a cloud you already run
is neither used nor disturbed.

  --sizes N,N,…    Direct deployments to Development at these node counts (default 3,20,1000,10000;
                   10,000 takes several minutes), then the per-node breakdown and the AWS cost
  --runs N         deployments per size (default 5 below 1,000 nodes, 3 below 10,000, else 1);
                   with --start, starts of each kind (default 5); with --ws, deployments (default 3)
  --baseline DIR   the same sizes (or starts) measured in another checkout with its own
                   node_modules first, side by side (not with --ws)
  --start          npm start to a healthy /health, fresh and with existing data, and the phases
  --ws CLIENTS     live events: Production deployments without, then with CLIENTS WebSocket clients
  --help           this text

Sizes are whole numbers from 1 to 100,000 nodes, --runs 1-100, --ws 1-10,000 clients; a bad one is
refused (exit 2) before any cloud starts. For example:
  npm run bench -- --sizes 3,20 --runs 1
  npm run bench -- --sizes 1000 --baseline ../other-checkout

Results and how to read them: docs/performance.md`;

const values = parseOptionsOrExit('bench', USAGE, {
  sizes: { type: 'string', default: '3,20,1000,10000' },
  // Internal: one size measured in a child process (see measureIn below).
  size: { type: 'string' },
  runs: { type: 'string' },
  ws: { type: 'string' },
  start: { type: 'boolean' },
  baseline: { type: 'string' },
  help: { type: 'boolean', default: false },
});
const whole = (flag: string, raw: string, max: number) => wholeNumberOrExit('bench', USAGE, flag, raw, max);
const RUNS = values.runs === undefined ? undefined : whole('--runs', values.runs, 100);
// Every count checked before anything starts.
const SIZES = values.sizes.split(',').map((s) => whole('--sizes', s.trim(), 100_000));
const WS_CLIENTS = values.ws === undefined ? undefined : whole('--ws', values.ws, 10_000);
const ONE_SIZE = values.size === undefined ? undefined : whole('--size', values.size, 100_000);

if (values.start) {
  const { benchStart } = await import('./lib/benchStart.ts');
  await benchStart(RUNS ?? 5, values.baseline);
  process.exit();
}

if (values.ws) {
  const { benchWs } = await import('./lib/benchWs.ts');
  await benchWs(WS_CLIENTS as number, RUNS ?? 3);
  process.exit();
}

interface Sample {
  nodes: number;
  runs: number;
  batches: number;
  pipelineEvents: number;
  childEvents: number;
  wallMs: number[];
  startupMs: number;
  lambdaInvocations: number;
  /** One deployment's billable usage (the last run). */
  usage: BillableUsage;
  /** 200 authenticated reads' billable usage. */
  reads: BillableUsage & { requests: number };
  /** Where one deployment's time goes, and the machine's limit for the same work (the last run). */
  breakdown: Breakdown;
}

/** The same agent calls and table calls a deployment made, timed with nothing else (scripts/bench.ts limitOf). */
interface Breakdown {
  /** Agent requests one deployment made, by method and path's last segment. */
  agentCalls: Record<string, number>;
  /** DynamoDB calls one deployment made, by operation. */
  tableCalls: Record<string, number>;
  /** Concurrency of the replay: Map MaxConcurrency (capped by the batches) × AGENT_CONCURRENCY. */
  concurrency: number;
  /** Signing as many requests alone (HMAC-SHA256 over the body digest), ms. */
  signMs: number;
  /** As many signed agent calls alone (GET /v1/health), ms. */
  agentMs: number;
  /** As many table calls alone (reads as GetItem, writes as UpdateItem on the nodes), ms. */
  tableMs: number;
  /** Both at once, at the same concurrency: the machine's limit for this deployment's calls, ms. */
  limitMs: number;
}

type Cloud = Awaited<ReturnType<typeof import('../localcloud/cloud.ts')['startLocalCloud']>>;

/** Counters of everything billable, to take differences of. */
function snapshot(cloud: Cloud) {
  const t = cloud.meter.total();
  return {
    lambdaRequests: cloud.lambda.invocations,
    lambdaGbSeconds: cloud.lambda.billedGbSeconds,
    dynamoReadUnits: t.capacity.read,
    dynamoWriteUnits: t.capacity.write,
    snsPublishes: t.calls['sns:Publish'] ?? 0,
  };
}

function usageSince(
  before: ReturnType<typeof snapshot>,
  after: ReturnType<typeof snapshot>,
  rest: Pick<BillableUsage, 'stateTransitions' | 'apiRequests'>,
): BillableUsage {
  return {
    ...rest,
    lambdaRequests: after.lambdaRequests - before.lambdaRequests,
    lambdaGbSeconds: after.lambdaGbSeconds - before.lambdaGbSeconds,
    dynamoReadUnits: after.dynamoReadUnits - before.dynamoReadUnits,
    dynamoWriteUnits: after.dynamoWriteUnits - before.dynamoWriteUnits,
    snsPublishes: after.snsPublishes - before.snsPublishes,
  };
}

/** Count the requests the functions make to the simulated agents (they run in this process). */
function countAgentCalls(addresses: string[]): { counts: Map<string, number>; restore: () => void } {
  const counts = new Map<string, number>();
  const original = globalThis.fetch;
  const prefixes = [...new Set(addresses.map((a) => new URL(a).origin))];
  globalThis.fetch = ((input: Parameters<typeof fetch>[0], init?: RequestInit) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    if (prefixes.some((p) => url.startsWith(p))) {
      const key = `${init?.method ?? 'GET'} ${new URL(url).pathname.split('/').pop()}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
    }
    return original(input, init);
  }) as typeof fetch;
  return { counts, restore: () => void (globalThis.fetch = original) };
}

/** Run `n` tasks, `concurrency` at a time; the wall time in ms. */
async function timed(n: number, concurrency: number, task: (i: number) => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, concurrency) }, async () => {
      while (next < n) await task(next++);
    }),
  );
  return performance.now() - t0;
}

/**
 * The machine's limit for one deployment: the same number of signed agent calls and of table calls
 * at the deployment's concurrency, with no interpreter, Lambda plumbing, handler logic or checks.
 */
async function limitOf(
  cloud: Cloud,
  agentCalls: number,
  tableCalls: Record<string, number>,
  concurrency: number,
): Promise<Omit<Breakdown, 'agentCalls' | 'tableCalls' | 'concurrency'>> {
  const { agentClient } = await import('../functions/lib/agentClient.ts');
  const { signRequest } = await import('../functions/agent/protocol.ts');
  const { agentKeys } = await import('../functions/lib/secrets.ts');
  const { GetCommand, UpdateCommand } = await import('@aws-sdk/lib-dynamodb');
  const targets = [...cloud.fleet.nodes.values()].map((n) => ({ nodeId: n.agent.nodeId, address: n.address }));
  const writes = Object.entries(tableCalls)
    .filter(([op]) => /Put|Update|Delete|Write/.test(op))
    .reduce((a, [, n]) => a + n, 0);
  const reads = Object.values(tableCalls).reduce((a, n) => a + n, 0) - writes;
  const table = cloud.tableNames.nodes;
  const tableCall = (i: number) => {
    const t = targets[i % targets.length];
    const Key = { environment: 'Development', nodeId: t.nodeId };
    return i < writes
      ? cloud.ddb.send(new UpdateCommand({ TableName: table, Key, UpdateExpression: 'SET benchProbe = :n', ExpressionAttributeValues: { ':n': i } }))
      : cloud.ddb.send(new GetCommand({ TableName: table, Key }));
  };
  const agentCall = (i: number) => agentClient.health(targets[i % targets.length]);
  const [key] = await agentKeys();
  const body = JSON.stringify({ deploymentId: 'bench', version: '1.1.0', padding: 'x'.repeat(2000) });
  const t0 = performance.now();
  for (let i = 0; i < agentCalls; i++) signRequest(key, 'POST', '/v1/modules/demo-kernel/deploy', body);
  const signMs = performance.now() - t0;
  const agentMs = await timed(agentCalls, concurrency, agentCall);
  const tableMs = await timed(writes + reads, concurrency, tableCall);
  const limitMs = Math.max(...(await Promise.all([timed(agentCalls, concurrency, agentCall), timed(writes + reads, concurrency, tableCall)]).then((a) => a)));
  return { signMs, agentMs, tableMs, limitMs };
}

async function measure(nodes: number, runs: number): Promise<Sample> {
  const { startLocalCloud } = await import('../localcloud/cloud.ts');
  const dataDir = mkdtempSync(join(tmpdir(), 'kmod-bench-'));
  // Ctrl-C reaches this process too (the same process group): stop the cloud and remove its data
  // before exiting 130, as at the end of a run — also when it comes while the cloud starts.
  let wasInterrupted = false;
  let stopping: Promise<void> | undefined;
  // Set once the cloud is up; until then an interrupt is acted on when the start returns.
  let stopOnce: (() => Promise<void>) | undefined;
  const interrupted = () => {
    wasInterrupted = true;
    if (stopOnce) void stopOnce().then(() => process.exit(130));
  };
  process.once('SIGINT', interrupted);
  process.once('SIGTERM', interrupted);
  const cloud = await startLocalCloud({
    dataDir,
    fresh: true,
    apiPort: 0,
    fleet: { Development: nodes, QA: 0, Staging: 0, Production: 0 },
    // One process hosts the orchestrator and every simulated agent: agent calls get more time than
    // on a real network (as in test/integration/scale.test.ts).
    // Adaptive stabilisation waits 2 minutes by default: shrunk (SHORT_STABILISATION).
    // --runs up to 100 deployments by one user: above the per-user default (10 a minute), which is not what is measured here.
    env: { NODES_PER_BATCH: '100', AGENT_CONCURRENCY: '8', AGENT_TIMEOUT_MS: '120000', RATE_LIMIT_DEPLOYMENTS_PER_USER: '1000', ...SHORT_STABILISATION },
  });
  stopOnce = () =>
    (stopping ??= cloud
      .stop()
      .catch(() => undefined)
      .then(() => rmSync(dataDir, { recursive: true, force: true })));
  if (wasInterrupted) {
    await stopOnce();
    process.exit(130);
  }
  const headers = { authorization: `Bearer ${cloud.tokens.Deployer}`, 'content-type': 'application/json' };
  const wallMs: number[] = [];
  const counter = countAgentCalls([...cloud.fleet.nodes.values()].map((n) => n.address));
  let agentCalls: Record<string, number> = {};
  let tableCalls: Record<string, number> = {};
  let last = { pipelineEvents: 0, childEvents: 0, batches: 0 };
  let usage: BillableUsage | undefined;
  try {
    for (let i = 0; i < runs; i++) {
      const version = i % 2 === 0 ? '1.1.0' : '1.0.0';
      const before = snapshot(cloud);
      const callsBefore = { ...cloud.meter.total().calls };
      counter.counts.clear();
      const t0 = performance.now();
      const r = await fetch(`${cloud.apiUrl}/api/v1/deployments`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ moduleName: 'demo-kernel', version, targetEnvironment: 'Development' }),
      });
      if (r.status !== 202) throw new Error(`POST /api/v1/deployments answered ${r.status}: ${await r.text()}`);
      const { executionId } = (await r.json()) as { executionId: string };
      const described = await cloud.sfn.waitFor(`arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${executionId}`);
      wallMs.push(performance.now() - t0);
      if (described.status !== 'SUCCEEDED') throw new Error(`deployment ${executionId} ended ${described.status}: ${described.cause}`);
      const pipelineArn = `arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${executionId}`;
      const childArn = `arn:aws:states:us-east-1:000000000000:execution:kmod-Direct:${executionId}-Development`;
      // Standard workflows bill each state entered.
      const transitions = [pipelineArn, childArn].reduce((n, arn) => n + cloud.sfn.history(arn).filter((e) => e.type.endsWith('StateEntered')).length, 0);
      usage = usageSince(before, snapshot(cloud), { stateTransitions: transitions, apiRequests: 1 });
      agentCalls = Object.fromEntries(counter.counts);
      tableCalls = Object.fromEntries(
        Object.entries(cloud.meter.total().calls)
          .filter(([op]) => op.startsWith('dynamodb:'))
          .map(([op, n]) => [op, n - (callsBefore[op] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      );
      const d = (await (await fetch(`${cloud.apiUrl}/api/v1/deployments/${executionId}`, { headers })).json()) as {
        stages: { name: string; details?: { batches?: number } }[];
      };
      last = {
        pipelineEvents: cloud.sfn.history(`arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${executionId}`).length,
        childEvents: cloud.sfn.history(`arn:aws:states:us-east-1:000000000000:execution:kmod-Direct:${executionId}-Development`).length,
        batches: d.stages.find((s) => s.name === 'Development')?.details?.batches ?? 0,
      };
    }
    // A million reads, scaled from 200: the gateway request, the authorizer and the function, their table reads.
    const readsBefore = snapshot(cloud);
    for (let i = 0; i < 200; i++) await (await fetch(`${cloud.apiUrl}/api/v1/deployments`, { headers })).arrayBuffer();
    const reads = { ...usageSince(readsBefore, snapshot(cloud), { stateTransitions: 0, apiRequests: 200 }), requests: 200 };
    counter.restore();
    const concurrency = Math.min(20, last.batches) * 8;
    const totalAgentCalls = Object.values(agentCalls).reduce((a, n) => a + n, 0);
    const breakdown: Breakdown = { agentCalls, tableCalls, concurrency, ...(await limitOf(cloud, totalAgentCalls, tableCalls, concurrency)) };
    return { nodes, runs, ...last, wallMs, breakdown, startupMs: cloud.startupMs, lambdaInvocations: cloud.lambda.invocations, usage: usage!, reads };
  } finally {
    process.off('SIGINT', interrupted);
    process.off('SIGTERM', interrupted);
    await stopOnce();
    // Interrupted: the run failed because its cloud was stopped; the handler exits 130.
    if (wasInterrupted) await new Promise(() => undefined);
  }
}

if (values.size) {
  const sample = await measure(ONE_SIZE as number, RUNS ?? 1);
  process.stdout.write(`BENCH ${JSON.stringify(sample)}\n`);
  process.exit(0);
}

const sizes = SIZES;
/** One size measured by a checkout's own bench (this one, or --baseline's) in a child process. */
function measureIn(script: string, cwd: string, n: number, runs: number): Sample {
  const out = execFileSync(process.execPath, ['--import', 'tsx', script, '--size', String(n), '--runs', String(runs)], {
    cwd,
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(
    out
      .split('\n')
      .find((l) => l.startsWith('BENCH '))!
      .slice(6),
  ) as Sample;
}
const rows: Sample[] = [];
const baselineRows: Sample[] = [];
for (const n of sizes) {
  // --runs sets the runs per size (default: 5 below 1,000 nodes, 3 below 10,000, then 1).
  const runs = RUNS ?? (n >= 10_000 ? 1 : n >= 1000 ? 3 : 5);
  // With --baseline, the other checkout's bench measures the same size just before this one's (same machine load).
  if (values.baseline) {
    process.stderr.write(`measuring ${n} nodes in the baseline ${values.baseline} (${runs} run${runs > 1 ? 's' : ''})…\n`);
    const dir = resolve(values.baseline);
    baselineRows.push(measureIn(join(dir, 'scripts', 'bench.ts'), dir, n, runs));
  }
  process.stderr.write(`measuring ${n} nodes (${runs} run${runs > 1 ? 's' : ''})…\n`);
  rows.push(measureIn(fileURLToPath(import.meta.url), process.cwd(), n, runs));
}
if (baselineRows.length) {
  console.log(`\nDirect deployment, baseline ${values.baseline} against this checkout, measured one after the other per size\n`);
  console.log('nodes   baseline p50 ms  this p50 ms  baseline ms/node  this ms/node');
  rows.forEach((r, i) => {
    const b = baselineRows[i];
    const [bp, tp] = [percentile(b.wallMs, 50), percentile(r.wallMs, 50)];
    console.log(
      [
        String(r.nodes).padEnd(7),
        bp.toFixed(0).padStart(15),
        tp.toFixed(0).padStart(12),
        (bp / r.nodes).toFixed(2).padStart(17),
        (tp / r.nodes).toFixed(2).padStart(13),
      ].join(' '),
    );
  });
}

const base = rows[0];
console.log('\nDirect deployment to Development, NODES_PER_BATCH=100, embedded local cloud\n');
console.log('nodes   batches  pipeline-ev  direct-ev  ev/batch  ev-ratio  node-ratio  wall p50 ms  wall p95 ms  ms/node  runs');
for (const r of rows) {
  const p50 = percentile(r.wallMs, 50);
  console.log(
    [
      String(r.nodes).padEnd(7),
      String(r.batches).padStart(7),
      String(r.pipelineEvents).padStart(12),
      String(r.childEvents).padStart(10),
      (r.childEvents / Math.max(1, r.batches)).toFixed(1).padStart(9),
      ((r.childEvents + r.pipelineEvents) / (base.childEvents + base.pipelineEvents)).toFixed(2).padStart(9),
      (r.nodes / base.nodes).toFixed(0).padStart(11),
      p50.toFixed(0).padStart(12),
      percentile(r.wallMs, 95).toFixed(0).padStart(12),
      (p50 / r.nodes).toFixed(2).padStart(8),
      String(r.runs).padStart(5),
    ].join(' '),
  );
}
console.log("\nWhere the time goes (the last run of each size) and the machine's limit: the same signed agent calls and table calls");
console.log("with nothing else, at the deployment's concurrency (Map MaxConcurrency 20 × AGENT_CONCURRENCY 8, capped by the batches)\n");
console.log('nodes   agent-calls  table-calls  sign ms/node  agent ms/node  table ms/node  limit ms/node  deploy ms/node  deploy/limit');
for (const r of rows) {
  const b = r.breakdown;
  const agent = Object.values(b.agentCalls).reduce((a, n) => a + n, 0);
  const table = Object.values(b.tableCalls).reduce((a, n) => a + n, 0);
  const last = r.wallMs.at(-1)!;
  console.log(
    [
      String(r.nodes).padEnd(7),
      String(agent).padStart(11),
      String(table).padStart(12),
      (b.signMs / r.nodes).toFixed(3).padStart(13),
      (b.agentMs / r.nodes).toFixed(2).padStart(14),
      (b.tableMs / r.nodes).toFixed(2).padStart(14),
      (b.limitMs / r.nodes).toFixed(2).padStart(14),
      (last / r.nodes).toFixed(2).padStart(15),
      `${(last / b.limitMs).toFixed(1)}×`.padStart(13),
    ].join(' '),
  );
}
for (const r of rows) {
  const fmt = (o: Record<string, number>) =>
    Object.entries(o)
      .sort(([, a], [, b]) => b - a)
      .map(([k, n]) => `${k} ${n}`)
      .join(', ');
  console.log(`  ${r.nodes} nodes: agent calls ${fmt(r.breakdown.agentCalls)}; table calls ${fmt(r.breakdown.tableCalls)}`);
}

const worst = rows.reduce((a, b) => (b.childEvents > a.childEvents ? b : a));
console.log(`\nlargest child execution: ${worst.childEvents} history events of 25,000 allowed (${((worst.childEvents / 25_000) * 100).toFixed(1)} %)`);

console.log(`\nWhat one deployment costs on AWS (the last run of each size; prices ${PRICES_AS_OF}, free tiers left out)\n`);
console.log('nodes   transitions  lambda-req  lambda-GB-s  ddb-RRU  ddb-WRU  sns  cost        per node     CodeDeploy on-prem');
for (const r of rows) {
  const c = costOf(r.usage);
  console.log(
    [
      String(r.nodes).padEnd(7),
      String(r.usage.stateTransitions).padStart(11),
      String(r.usage.lambdaRequests).padStart(11),
      r.usage.lambdaGbSeconds.toFixed(1).padStart(12),
      r.usage.dynamoReadUnits.toFixed(0).padStart(8),
      r.usage.dynamoWriteUnits.toFixed(0).padStart(8),
      String(r.usage.snsPublishes).padStart(4),
      usd(c.total).padStart(11),
      usd(c.total / r.nodes).padStart(12),
      usd(r.nodes * PRICES_USD.codeDeployOnPremisesInstanceUpdate).padStart(19),
    ].join(' '),
  );
}
const biggest = rows.at(-1)!;
const parts = costOf(biggest.usage);
console.log(
  `\nat ${biggest.nodes} nodes: ${(
    ['stateTransitions', 'lambdaRequests', 'lambdaGbSeconds', 'dynamoReadUnits', 'dynamoWriteUnits', 'snsPublishes', 'apiRequests'] as const
  )
    .map((k) => `${k} ${usd(parts[k])}`)
    .join(', ')}`,
);
const reads = rows[0].reads;
const perMillion = costOf(reads).total * (1e6 / reads.requests);
console.log(
  `a million authenticated reads (GET /api/v1/deployments): ${usd(perMillion)} (${(reads.lambdaRequests / reads.requests).toFixed(1)} Lambda requests, ${(reads.dynamoReadUnits / reads.requests).toFixed(2)} read units per request)`,
);
console.log('Lambda GB-seconds are local durations (one shared process, simulated agents on the same cores): on AWS they differ.');
