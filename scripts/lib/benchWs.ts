/**
 * `npm run bench -- --ws <clients> [--runs n]`: operators' live events under load
 * (docs/adr/0028-live-events.md). On one fresh local cloud: Development deployments without any
 * subscriber, then with <clients> WebSocket clients subscribed to all; every client must receive
 * every `deployment.status` of every deployment in seq order through `Succeeded`. Prints the
 * connect time, the delivery latency of those events (from the record's `at` to the client's
 * receipt: stream poll, numbering, fan-out) p50/p99, and the deployments' wall time with and
 * without subscribers.
 */
import { mkdtempSync } from 'node:fs';
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
}

export async function benchWs(clients: number, runs: number, nodes = 3): Promise<void> {
  const { startLocalCloud } = await import('../../localcloud/cloud.ts');
  const cloud = await startLocalCloud({
    dataDir: mkdtempSync(join(tmpdir(), 'kmod-bench-ws-')),
    fresh: true,
    apiPort: 0,
    fleet: { Development: nodes, QA: 0, Staging: 0, Production: 0 },
    // Stabilisation in seconds rather than minutes: the same for the runs with and without
    // subscribers, which are what is compared.
    env: { RATE_LIMIT_DEPLOYMENTS_PER_USER: '10000', WAF_RATE_LIMIT_PER_ADDRESS: '1000000', ...SHORT_STABILISATION },
  });
  console.error(`  local cloud up in ${cloud.startupMs} ms`);
  const headers = { authorization: `Bearer ${cloud.tokens.Deployer}`, 'content-type': 'application/json' };
  let version = '1.0.0';
  const deploy = async () => {
    version = version === '1.0.0' ? '1.1.0' : '1.0.0';
    const t0 = performance.now();
    const r = await fetch(`${cloud.apiUrl}/api/v1/deployments`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ moduleName: 'demo-kernel', version, targetEnvironment: 'Development' }),
    });
    const { executionId } = (await r.json()) as { executionId: string };
    if (r.status !== 202) throw new Error(`deployment refused: ${r.status}`);
    console.error(`  deploying ${version}: ${executionId}`);
    const d = await cloud.sfn.waitFor(`arn:aws:states:us-east-1:000000000000:execution:kmod-Pipeline:${executionId}`);
    if (d.status !== 'SUCCEEDED') throw new Error(`deployment ${executionId} ended ${d.status}`);
    return { executionId, wallMs: performance.now() - t0 };
  };
  const sockets: WebSocket[] = [];
  try {
    await deploy(); // warm-up: every handler loaded and every table touched once
    const without: number[] = [];
    for (let i = 0; i < runs; i++) without.push((await deploy()).wallMs);

    const received: Frame[][] = [];
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: clients }, (_, i) => {
        const ws = new WebSocket(`${cloud.wsUrl}?token=${cloud.tokens.Viewer}`);
        sockets.push(ws);
        received[i] = [];
        return new Promise<void>((resolve, reject) => {
          ws.on('message', (data) => {
            const f = JSON.parse(String(data)) as Frame;
            if (f.type === 'subscribed') return resolve();
            if (f.type === 'deployment.status' && f.at) latencies.push(Date.now() - Date.parse(f.at));
            received[i].push(f);
          });
          ws.once('open', () => ws.send(JSON.stringify({ action: 'subscribe', all: true })));
          ws.once('unexpected-response', (_req, res) => reject(new Error(`connect refused: ${res.statusCode}`)));
          ws.once('error', reject);
        });
      }),
    );
    const connectMs = performance.now() - t0;
    console.error(`  ${clients} clients connected and subscribed in ${Math.round(connectMs)} ms`);

    const withSubs: number[] = [];
    const ids: string[] = [];
    for (let i = 0; i < runs; i++) {
      const { executionId, wallMs } = await deploy();
      withSubs.push(wallMs);
      ids.push(executionId);
    }
    // Every client gets every deployment's statuses through Succeeded.
    const deadline = Date.now() + 120_000;
    const complete = () =>
      received.every((frames) => ids.every((id) => frames.some((f) => f.type === 'deployment.status' && f.deploymentId === id && f.status === 'Succeeded')));
    while (!complete()) {
      if (Date.now() > deadline) throw new Error('not every client received every deployment.status within 120 s');
      await new Promise((r) => setTimeout(r, 50));
    }
    const drainedMs = performance.now() - t0;
    let inOrder = 0;
    for (const frames of received) {
      const seqs = frames.filter((f) => f.seq !== undefined).map((f) => f.seq!);
      const statuses = ids.map((id) => frames.filter((f) => f.type === 'deployment.status' && f.deploymentId === id).map((f) => f.status));
      if (seqs.every((s, i) => i === 0 || s > seqs[i - 1]) && statuses.every((s) => s.join() === 'Pending,Running,Succeeded')) inOrder++;
    }
    const ms = (x: number) => `${Math.round(x)} ms`;
    console.log(`\nlive events: ${clients} WebSocket clients subscribed to all, ${runs} Development deployment(s) of ${nodes} nodes each\n`);
    console.log('| | value |\n|---|---|');
    console.log(`| connect + subscribe, all ${clients} clients | ${ms(connectMs)} |`);
    console.log(`| clients that got every deployment.status in seq order through Succeeded | ${inOrder} / ${clients} |`);
    console.log(`| deployment.status deliveries | ${latencies.length} |`);
    console.log(`| delivery latency p50 / p99 / max | ${ms(percentile(latencies, 50))} / ${ms(percentile(latencies, 99))} / ${ms(Math.max(...latencies))} |`);
    console.log(`| deployment wall time without subscribers, p50 (${without.map(ms).join(', ')}) | ${ms(percentile(without, 50))} |`);
    console.log(`| deployment wall time with ${clients} subscribers, p50 (${withSubs.map(ms).join(', ')}) | ${ms(percentile(withSubs, 50))} |`);
    console.log(`| all events delivered after connecting | ${ms(drainedMs)} |`);
    if (inOrder !== clients) process.exitCode = 1;
  } finally {
    for (const s of sockets) s.terminate();
    await cloud.stop();
  }
}
