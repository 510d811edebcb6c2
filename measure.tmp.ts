import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startLocalCloud } from './localcloud/cloud.ts';
import { NodeAgent } from './functions/agent/agent.ts';
import { DialOutConnection } from './functions/agent/dialOut.ts';

const cloud = await startLocalCloud({
  dataDir: mkdtempSync(join(tmpdir(), 'kmod-measure-')),
  fresh: true,
  apiPort: 0,
  fleet: { Development: 0, QA: 1, Staging: 2, Production: 1 },
  env: { RATE_LIMIT_PER_IP: '100000' },
});
const post = async (path: string, body: unknown, token?: string) =>
  (
    await fetch(cloud.apiUrl + path, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify(body),
    })
  ).json() as Promise<any>;
const tok = async () => (await post('/api/v1/enrolment-tokens', { environment: 'Development', maxUses: 1 }, cloud.tokens.Admin)).token;
// dial-out node, in process
const d = await post('/api/v1/enrol', { token: await tok(), transport: 'dial-out' });
const dkey = { id: d.credentials.keyId, secret: d.credentials.secret };
const dagent = new NodeAgent({ nodeId: d.nodeId, keys: () => [dkey], simulation: true });
const conn = new DialOutConnection({ url: cloud.wsUrl, nodeId: d.nodeId, key: () => dkey, serve: (r) => dagent.serve(r), log: () => undefined });
conn.start();
await conn.whenConnected();
// inbound node, in process
const hagentTmp = new NodeAgent({ nodeId: 'tmp', keys: () => [], simulation: true });
void hagentTmp;
const port = 0;
const i0 = await post('/api/v1/enrol', { token: await tok(), address: 'http://127.0.0.1:1' });
const ikey = { id: i0.credentials.keyId, secret: i0.credentials.secret };
const iagent = new NodeAgent({ nodeId: i0.nodeId, keys: () => [ikey], simulation: true });
const addr = await iagent.listen(port);
const { UpdateCommand } = await import('@aws-sdk/lib-dynamodb');
await cloud.ddb.send(
  new UpdateCommand({
    TableName: cloud.tableNames.nodes,
    Key: { environment: 'Development', nodeId: i0.nodeId },
    UpdateExpression: 'SET address = :a',
    ExpressionAttributeValues: { ':a': addr },
  }),
);
const { agentClient } = await import('./functions/lib/agentClient.ts');
const { getNode } = await import('./functions/lib/nodes.ts');
const dn = (await getNode('Development', d.nodeId))!;
const inn = (await getNode('Development', i0.nodeId))!;
const pct = (xs: number[], p: number) => xs.slice().sort((a, b) => a - b)[Math.floor((xs.length - 1) * p)];
for (const [name, node] of [
  ['inbound', inn],
  ['dial-out', dn],
] as const) {
  for (let i = 0; i < 5; i++) await agentClient.health(node);
  const times: number[] = [];
  for (let i = 0; i < 100; i++) {
    const t = performance.now();
    await agentClient.health(node);
    times.push(performance.now() - t);
  }
  console.log(`${name}: health p50 ${pct(times, 0.5).toFixed(1)} ms p95 ${pct(times, 0.95).toFixed(1)} ms max ${Math.max(...times).toFixed(1)} ms`);
}
// concurrency: 16 in flight (AGENT_CONCURRENCY)
const t0 = performance.now();
const { mapLimit } = await import('./functions/lib/agentClient.ts');
await mapLimit(Array.from({ length: 160 }), 16, () => agentClient.health(dn));
console.log(`dial-out: 160 health calls, 16 in flight: ${(performance.now() - t0).toFixed(0)} ms`);
const { ScanCommand } = await import('@aws-sdk/lib-dynamodb');
const items = (await cloud.ddb.send(new ScanCommand({ TableName: cloud.tableNames.agentRequests, Select: 'COUNT' }))).Count;
console.log(`agentRequests items: ${items}`);
// reconnect time after a server-side drop
const before = conn.connects;
const td = performance.now();
await post(`/_local/websocket/faults`, {}).catch(() => undefined);
const ids = (await (await fetch(`${cloud.apiUrl}/_local/websocket/connections`)).json()) as any;
const { connectionsApi } = await import('./functions/lib/aws.ts');
const { DeleteConnectionCommand } = await import('@aws-sdk/client-apigatewaymanagementapi');
await connectionsApi().send(new DeleteConnectionCommand({ ConnectionId: ids.items[0].connectionId }));
const tcall = performance.now();
await agentClient.health(dn);
console.log(
  `health call issued right after a server-side drop answered in ${(performance.now() - tcall).toFixed(0)} ms (reconnects: ${conn.connects - before})`,
);
void td;
await conn.stop();
await iagent.close();
await dagent.close();
await cloud.stop();
process.exit(0);
