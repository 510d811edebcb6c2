/**
 * `npm run bench -- --ws <clients> [--runs n]`: operators' live events under load
 * (docs/adr/0028-live-events.md). On one fresh local cloud with the default fleet: Production
 * deployments (Development → QA → Staging → Production, every approval gate approved through the
 * API as an Approver would) without any subscriber, then with <clients> WebSocket clients
 * subscribed to all. A tenth of the clients drop their connection after their first event of each
 * deployment and reconnect a second later with `after` = the last seq they saw.
 *
 * What each client must end with is what the server stored: after the runs, one more client
 * subscribes with `after` = the seq before the first deployment and is replayed every event; every
 * client, dropped or not, must hold exactly the replay's `deployment.status` events (same seqs, in
 * seq order) through `Succeeded`. Prints connect time, the delivery latency of those events (from
 * the record's `at` to the client's receipt: stream poll, numbering, fan-out) p50/p99, and the
 * deployments' wall time with and without subscribers. Exit code 1 when any client missed one.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';
import { percentile, SHORT_STABILISATION } from './stats.ts';

interface Frame {
  type: string;
  seq?: number;
  at?: string;
  deploymentId?: string;
  status?: string;
  replayed?: number;
  truncated?: boolean;
}

type Cloud = Awaited<ReturnType<typeof import('../../localcloud/cloud.ts').startLocalCloud>>;

/** Short bakes and probes: the same for the runs with and without subscribers, which are what is compared. */
const FAST_PIPELINE = { ...SHORT_STABILISATION, CANARY_BAKE_SECONDS: '2', CANARY_POLL_SECONDS: '1', SMOKE_TEST_TIMEOUT_SECONDS: '20' };

/** One subscriber: every frame it received, across reconnects, and the latencies of the statuses it got live. */
class Subscriber {
  readonly frames: Frame[] = [];
  readonly latencies: number[] = [];
  private readonly seen = new Set<number>();
  private ws?: WebSocket;
  private lastSeq?: number;
  reconnects = 0;
  /** The last `subscribed` answer: the latest seq, or the last replayed, and whether the replay was cut short. */
  subscribed?: Frame;
  private dropFor?: string;

  constructor(
    private readonly url: string,
    private readonly token: string,
  ) {}

  /** Connect and subscribe to all (from `after`, when given); resolves on `subscribed`. */
  connect(after = this.lastSeq): Promise<void> {
    const ws = new WebSocket(`${this.url}?token=${this.token}`);
    this.ws = ws;
    return new Promise<void>((resolve, reject) => {
      ws.on('message', (data) => {
        const f = JSON.parse(String(data)) as Frame;
        if (f.type === 'subscribed') {
          this.subscribed = f;
          return resolve();
        }
        if (f.type === 'ping' || f.seq === undefined) return;
        // Replay and live delivery overlap on purpose (ADR 0028): live events may come between
        // replayed ones, and a seq already held is dropped.
        if (this.seen.has(f.seq)) return;
        this.seen.add(f.seq);
        this.lastSeq = Math.max(f.seq, this.lastSeq ?? 0);
        this.frames.push(f);
        if (f.type === 'deployment.status' && f.at) this.latencies.push(Date.now() - Date.parse(f.at));
        if (this.dropFor && f.deploymentId === this.dropFor) {
          this.dropFor = undefined;
          this.reconnects++;
          ws.terminate();
          setTimeout(() => void this.connect().catch(() => undefined), 1000);
        }
      });
      ws.once('open', () => ws.send(JSON.stringify({ action: 'subscribe', all: true, ...(after !== undefined ? { after } : {}) })));
      ws.once('unexpected-response', (_req, res) => reject(new Error(`connect refused: ${res.statusCode}`)));
      ws.on('error', reject); // a later error (after open) is a no-op reject, never an unhandled 'error'
    });
  }

  /** Drop the connection after the first event of this deployment, then reconnect with `after`. */
  dropOnFirstEventOf(deploymentId: string): void {
    this.dropFor = deploymentId;
  }

  /** The deployment's statuses held, by seq. */
  statuses(deploymentId: string): Frame[] {
    return this.frames.filter((f) => f.type === 'deployment.status' && f.deploymentId === deploymentId).sort((a, b) => a.seq! - b.seq!);
  }

  /** Every frame came in seq order (true of one connection's live events; a reconnect's replay may interleave with live ones). */
  arrivedInOrder(): boolean {
    return this.frames.every((f, i) => i === 0 || f.seq! > this.frames[i - 1].seq!);
  }

  close(): void {
    this.ws?.terminate();
  }
}

export async function benchWs(clients: number, runs: number, targetEnvironment = 'Production'): Promise<void> {
  const { startLocalCloud } = await import('../../localcloud/cloud.ts');
  const dataDir = mkdtempSync(join(tmpdir(), 'kmod-bench-ws-'));
  const cloud: Cloud = await startLocalCloud({
    dataDir,
    fresh: true,
    apiPort: 0,
    env: { RATE_LIMIT_DEPLOYMENTS_PER_USER: '10000', WAF_RATE_LIMIT_PER_ADDRESS: '1000000', ...FAST_PIPELINE },
  });
  console.error(`  local cloud up in ${cloud.startupMs} ms`);
  let version = '1.0.0';
  const call = async (method: string, path: string, token: string, body?: unknown) => {
    const r = await fetch(`${cloud.apiUrl}${path}`, {
      method,
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: r.status, body: (await r.json()) as Record<string, unknown> };
  };
  /** Request a deployment, approve each gate as it opens, wait for Succeeded; `onStarted` sees its id first. */
  const deploy = async (onStarted: (executionId: string) => void = () => undefined) => {
    version = version === '1.0.0' ? '1.1.0' : '1.0.0';
    const t0 = performance.now();
    const r = await call('POST', '/api/v1/deployments', cloud.tokens.Deployer, { moduleName: 'demo-kernel', version, targetEnvironment });
    if (r.status !== 202) throw new Error(`deployment refused: ${r.status} ${JSON.stringify(r.body)}`);
    const executionId = String(r.body.executionId);
    onStarted(executionId);
    console.error(`  deploying ${version} to ${targetEnvironment}: ${executionId}`);
    let approvals = 0;
    for (;;) {
      const d = await call('GET', `/api/v1/deployments/${executionId}`, cloud.tokens.Viewer);
      const status = String(d.body.status);
      if (status === 'Succeeded') break;
      if (['Failed', 'RolledBack', 'Cancelled'].includes(status))
        throw new Error(`deployment ${executionId} ended ${status}: ${JSON.stringify(d.body.failure)}`);
      if (status === 'WaitingForApproval') {
        const a = await call('POST', `/api/v1/approvals/deployments/${executionId}/approve`, cloud.tokens.Approver, { reason: 'bench' });
        if (a.status === 200) approvals++;
        else if (a.status !== 409) throw new Error(`approval refused: ${a.status} ${JSON.stringify(a.body)}`);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
    return { executionId, wallMs: performance.now() - t0, approvals };
  };
  const subscribers: Subscriber[] = [];
  try {
    await deploy(); // warm-up: every handler loaded and every table touched once
    const without: number[] = [];
    for (let i = 0; i < runs; i++) without.push((await deploy()).wallMs);

    // The seq before the measured runs (a subscription without `after` answers the latest): the reference replay starts after it.
    const mark = new Subscriber(cloud.wsUrl, cloud.tokens.Viewer);
    await mark.connect();
    mark.close();
    const seqBefore = mark.subscribed!.seq;

    const t0 = performance.now();
    for (let i = 0; i < clients; i++) subscribers.push(new Subscriber(cloud.wsUrl, cloud.tokens.Viewer));
    await Promise.all(subscribers.map((s) => s.connect()));
    const connectMs = performance.now() - t0;
    console.error(`  ${clients} clients connected and subscribed in ${Math.round(connectMs)} ms`);
    const droppers = subscribers.filter((_, i) => i % 10 === 0);

    const withSubs: number[] = [];
    const ids: string[] = [];
    let approvals = 0;
    for (let i = 0; i < runs; i++) {
      const run = await deploy((id) => {
        for (const s of droppers) s.dropOnFirstEventOf(id);
      });
      withSubs.push(run.wallMs);
      ids.push(run.executionId);
      approvals += run.approvals;
    }
    // What the server stored: every event after the mark, replayed to a fresh client.
    const reference = new Subscriber(cloud.wsUrl, cloud.tokens.Viewer);
    await reference.connect(seqBefore);
    if (reference.subscribed?.truncated) throw new Error('the reference replay was truncated: raise EVENT_REPLAY_LIMIT');
    const truth = (id: string) => reference.statuses(id).map((f) => `${f.seq}:${f.status}`);
    for (const id of ids) {
      const t = reference.statuses(id);
      if (t.at(-1)?.status !== 'Succeeded') throw new Error(`the replay of ${id} does not end Succeeded: ${truth(id).join(' ')} (EVENT_REPLAY_LIMIT too low?)`);
    }
    reference.close();
    const complete = (s: Subscriber) =>
      ids.every(
        (id) =>
          s
            .statuses(id)
            .map((f) => `${f.seq}:${f.status}`)
            .join() === truth(id).join(),
      );
    const deadline = Date.now() + 120_000;
    while (!subscribers.every(complete)) {
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const drainedMs = performance.now() - t0;
    const good = subscribers.filter((s) => complete(s) && (droppers.includes(s) || s.arrivedInOrder()));
    const goodDroppers = droppers.filter((s) => complete(s) && s.reconnects === runs);
    const latencies = subscribers.flatMap((s) => s.latencies);
    const ms = (x: number) => `${Math.round(x)} ms`;
    const sequence = reference.statuses(ids[0]).map((f) => f.status);
    console.log(
      `\nlive events: ${clients} WebSocket clients subscribed to all, ${runs} ${targetEnvironment} deployment(s), every stage of the pipeline up to it (default fleet, ${approvals} gates approved)\n`,
    );
    console.log(`each deployment's statuses, as the server stored them: ${sequence.join(' → ')}\n`);
    console.log('| | value |\n|---|---|');
    console.log(`| connect + subscribe, all ${clients} clients | ${ms(connectMs)} |`);
    console.log(`| clients holding exactly the stored deployment.status events through Succeeded (live: in seq order) | ${good.length} / ${clients} |`);
    console.log(
      `| of them, clients that dropped after each deployment's first event and reconnected with after | ${goodDroppers.length} / ${droppers.length} |`,
    );
    console.log(`| deployment.status deliveries | ${latencies.length} |`);
    console.log(`| delivery latency p50 / p99 / max | ${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 99))} / ${ms(Math.max(...latencies))} |`);
    console.log(`| deployment wall time without subscribers, p50 (${without.map(ms).join(', ')}) | ${ms(percentile(without, 50))} |`);
    console.log(`| deployment wall time with ${clients} subscribers, p50 (${withSubs.map(ms).join(', ')}) | ${ms(percentile(withSubs, 50))} |`);
    console.log(`| all events delivered after connecting | ${ms(drainedMs)} |`);
    if (good.length !== clients || goodDroppers.length !== droppers.length) {
      process.exitCode = 1;
      const bad = subscribers.find((x) => !good.includes(x))!;
      for (const id of ids)
        console.log(
          `first client that missed (${bad.reconnects} reconnects), ${id}:\n  got    ${bad
            .statuses(id)
            .map((f) => `${f.seq}:${f.status}`)
            .join(' ')}\n  stored ${truth(id).join(' ')}`,
        );
    }
  } finally {
    for (const s of subscribers) s.close();
    await cloud.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}
