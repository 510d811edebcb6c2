/**
 * Run the reference node agent on a host, in one of two modes.
 *
 * Enrolled (the host joins with a token and gets its own key; later starts reuse it):
 *
 *   npx tsx scripts/agent.ts --api https://deploy.example.com --enrol kmod-enrol.… --data-dir /var/lib/kmod \
 *     [--trust-roots /etc/kmod/roots.pem] [--port 7070] [--host 0.0.0.0] [--advertise-url http://10.0.3.7:7070] [--heartbeat-seconds 10]
 *
 * Fleet key set (the node is registered by hand; every agent shares the orchestrator's key set):
 *
 *   npx tsx scripts/agent.ts --node-id web-01 --keys-file /etc/kmod/agent-keys.json \
 *     --state-file /var/lib/kmod/agent-state.json [--data-dir /var/lib/kmod --trust-roots /etc/kmod/roots.pem] \
 *     [--port 7070] [--host 0.0.0.0]
 *
 * The keys file is the same JSON the orchestrator's secret holds: {"keys":[{"id":"k1","secret":"…"}]}.
 * It is re-read every 10 s, so a rotated key set is picked up without a restart.
 *
 * With --trust-roots the agent installs and runs modules under <data-dir>/modules
 * (functions/agent/installer.ts), loading only modules whose signature chains to those roots;
 * without it, it only records versions. --crl URL (http(s), file: or a path; repeatable) names CRLs
 * every signer chain is checked against; the certificates' own CRL distribution points are read too.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NodeAgent } from '../functions/agent/agent.ts';
import { Installer } from '../functions/agent/installer.ts';
import { enrol, readCredentials, startHeartbeats, writeCredentials, credentialsFile } from '../functions/agent/membership.ts';
import type { AgentKey, ModuleState } from '../functions/agent/protocol.ts';
import { splitPem } from '../functions/domain/signature.ts';

const { values } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    'keys-file': { type: 'string' },
    'state-file': { type: 'string' },
    'trust-roots': { type: 'string' },
    crl: { type: 'string', multiple: true, default: [] },
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
  'usage: npx tsx scripts/agent.ts --api URL --enrol TOKEN --data-dir DIR [--trust-roots PEM [--crl URL]...] [--port 7070] [--host 0.0.0.0] [--advertise-url URL] [--heartbeat-seconds 10]',
  '       npx tsx scripts/agent.ts --data-dir DIR [...]            (already enrolled: reuses DIR/credentials.json)',
  '       npx tsx scripts/agent.ts --node-id ID --keys-file FILE [--state-file FILE] [--data-dir DIR --trust-roots PEM] [--port 7070] [--host 0.0.0.0]',
].join('\n');
// Enrolled mode unless the node is named with a shared key set.
const enrolled = values['keys-file'] === undefined && values['data-dir'] !== undefined;
if (values.help || (!enrolled && (!values['node-id'] || !values['keys-file']))) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}

const trustRoots = values['trust-roots'] ? splitPem(readFileSync(values['trust-roots'], 'utf8')) : undefined;
if (values['trust-roots'] && !trustRoots?.length) {
  console.error(`no PEM certificate in ${values['trust-roots']}`);
  process.exit(2);
}
if (!enrolled && values['data-dir'] && !trustRoots) {
  // Loading code the orchestrator names without checking its signature would make the orchestrator root on every host.
  console.error('--data-dir needs --trust-roots: the agent loads only modules signed under roots it holds itself');
  process.exit(2);
}
const revocationLists = values.crl;
// Modules are installed and run only under roots the host holds itself; otherwise versions are only recorded.
const runtime = values['data-dir'] && trustRoots ? new Installer({ dataDir: values['data-dir'] }) : undefined;
const installs = runtime ? ` (modules in ${values['data-dir']}/modules)` : ' (no --trust-roots: versions recorded, nothing installed)';

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
  const agent = new NodeAgent({ nodeId: values['node-id']!, keys: () => keys, stateFile: values['state-file'], runtime, trustRoots, revocationLists });
  const address = await agent.listen(Number(values.port), values.host);
  console.log(`node agent ${values['node-id']} listening on ${address}${installs}`);
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
  const agent = new NodeAgent({ nodeId: creds.nodeId, keys: () => [key], stateFile, runtime, trustRoots, revocationLists });
  console.log(
    `node agent ${creds.nodeId} listening on ${await agent.listen(port, host)}, advertised as ${address}, heartbeat every ${heartbeatSeconds} s${installs}`,
  );
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
