/**
 * Run the reference node agent on a host, in one of two modes.
 *
 * Enrolled (the host joins with a token and gets its own key; later starts reuse it):
 *
 *   npx tsx scripts/agent.ts --api https://deploy.example.com --enrol kmod-enrol.… --data-dir /var/lib/kmod \
 *     [--port 7070] [--host 0.0.0.0] [--advertise-url http://10.0.3.7:7070] [--heartbeat-seconds 10]
 *
 * Fleet key set (the node is registered by hand; every agent shares the orchestrator's key set):
 *
 *   npx tsx scripts/agent.ts --node-id web-01 --keys-file /etc/kmod/agent-keys.json \
 *     --state-file /var/lib/kmod/agent-state.json [--modules-dir /var/lib/kmod/modules] [--port 7070] [--host 0.0.0.0]
 *
 * The keys file is the same JSON the orchestrator's secret holds: {"keys":[{"id":"k1","secret":"…"}]}.
 * It is re-read every 10 s, so a rotated key set is picked up without a restart.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NodeAgent } from '../functions/agent/agent.ts';
import { enrol, readCredentials, startHeartbeats, writeCredentials, credentialsFile } from '../functions/agent/membership.ts';
import type { AgentKey, ModuleState } from '../functions/agent/protocol.ts';

const { values } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    'keys-file': { type: 'string' },
    'state-file': { type: 'string' },
    'modules-dir': { type: 'string' },
    api: { type: 'string' },
    enrol: { type: 'string' },
    'data-dir': { type: 'string' },
    'advertise-url': { type: 'string' },
    'heartbeat-seconds': { type: 'string' },
    port: { type: 'string', default: '7070' },
    host: { type: 'string', default: '0.0.0.0' },
    help: { type: 'boolean', default: false },
  },
});
const USAGE = [
  'usage: npx tsx scripts/agent.ts --api URL --enrol TOKEN --data-dir DIR [--port 7070] [--host 0.0.0.0] [--advertise-url URL] [--heartbeat-seconds 10]',
  '       npx tsx scripts/agent.ts --data-dir DIR [...]            (already enrolled: reuses DIR/credentials.json)',
  '       npx tsx scripts/agent.ts --node-id ID --keys-file FILE [--state-file FILE] [--modules-dir DIR] [--port 7070] [--host 0.0.0.0]',
].join('\n');
const enrolled = values['data-dir'] !== undefined;
if (values.help || (!enrolled && (!values['node-id'] || !values['keys-file']))) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}

// The loader stores each verified artifact as <modules-dir>/<module>/<version>.kmod (atomically) for
// the host's module runtime to pick up; without --modules-dir the agent only records versions.
const modulesDir = values['modules-dir'];
const loader = modulesDir
  ? async (module: string, version: string, bytes: Buffer) => {
      const dir = join(modulesDir, module);
      mkdirSync(dir, { recursive: true });
      const file = join(dir, `${version}.kmod`);
      writeFileSync(`${file}.tmp`, bytes);
      renameSync(`${file}.tmp`, file);
    }
  : undefined;

async function startWithKeysFile(): Promise<NodeAgent> {
  const keysFile = values['keys-file']!;
  const readKeys = () => (JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: AgentKey[] }).keys;
  let keys = readKeys();
  setInterval(() => {
    try {
      keys = readKeys();
    } catch (e) {
      console.error(`keeping the previous keys: ${(e as Error).message}`);
    }
  }, 10_000).unref();
  const agent = new NodeAgent({ nodeId: values['node-id']!, keys: () => keys, stateFile: values['state-file'], loader });
  const address = await agent.listen(Number(values.port), values.host);
  console.log(`node agent ${values['node-id']} listening on ${address}`);
  return agent;
}

/** A port free now on `host`: with --port 0 the address must be known before enrolling. */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer().once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      s.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
    });
  });
}

async function startEnrolled(dataDir: string): Promise<NodeAgent> {
  const heartbeatSeconds = Number(values['heartbeat-seconds'] ?? process.env.HEARTBEAT_SECONDS ?? 10);
  if (!Number.isInteger(heartbeatSeconds) || heartbeatSeconds < 1 || heartbeatSeconds > 300)
    throw new Error('--heartbeat-seconds must be a whole number from 1 to 300');
  const host = values.host;
  const port = Number(values.port) || (await freePort(host));
  const address = values['advertise-url'] ?? `http://${host === '0.0.0.0' || host === '::' ? hostname() : host}:${port}`;
  const stateFile = join(dataDir, 'state.json');
  let creds = readCredentials(dataDir);
  if (creds) {
    console.log(
      `reusing the credentials of node ${creds.nodeId} (${creds.environment}) in ${credentialsFile(dataDir)}${values.enrol ? '; --enrol ignored' : ''}`,
    );
    if (values.api) creds = { ...creds, apiUrl: values.api };
  } else {
    if (!values.enrol || !values.api) throw new Error(`${credentialsFile(dataDir)} does not exist: enrol first with --api URL --enrol TOKEN`);
    const modules = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { modules: Record<string, ModuleState> }).modules : {};
    creds = await enrol({ apiUrl: values.api, token: values.enrol, address, heartbeatSeconds, modules });
    writeCredentials(dataDir, creds);
    console.log(`enrolled as node ${creds.nodeId} in ${creds.environment}; credentials in ${credentialsFile(dataDir)}`);
  }
  const key = creds.key;
  const agent = new NodeAgent({ nodeId: creds.nodeId, keys: () => [key], stateFile, loader });
  console.log(`node agent ${creds.nodeId} listening on ${await agent.listen(port, host)}, advertised as ${address}, heartbeat every ${heartbeatSeconds} s`);
  startHeartbeats(
    creds,
    heartbeatSeconds,
    address,
    () => agent.health(),
    (line) => console.error(line),
  );
  return agent;
}

let agent: NodeAgent;
try {
  agent = enrolled ? await startEnrolled(values['data-dir']!) : await startWithKeysFile();
} catch (e) {
  console.error((e as Error).message);
  process.exit(1);
}
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void agent.close().then(() => process.exit(0)));
