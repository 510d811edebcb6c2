/**
 * Run the reference node agent on a host, in one of two modes.
 *
 * Enrolled (the host joins with a token and gets its own key; later starts reuse it):
 *
 *   npx tsx scripts/agent.ts --api https://deploy.example.com --enrol kmod-enrol.… --data-dir /var/lib/kmod \
 *     [--trust-roots /etc/kmod/roots.pem] [--port 7070] [--host 0.0.0.0] [--advertise-url http://10.0.3.7:7070] [--heartbeat-seconds 10]
 *     [--workload-url http://10.0.3.7:8080]   (where the host's workload serves: a traffic router sends requests there)
 *
 * Enrolled and dial-out (no inbound port: the agent keeps one outbound WebSocket to the orchestrator
 * and gets its commands over it; functions/agent/dialOut.ts):
 *
 *   npx tsx scripts/agent.ts --api https://deploy.example.com --enrol kmod-enrol.… --data-dir /var/lib/kmod --dial-out \
 *     [--ws-url wss://…] [--trust-roots /etc/kmod/roots.pem] [--heartbeat-seconds 10]
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
 *
 * An enrolled agent converges by itself to its environment's desired state: each heartbeat's answer
 * names what to deploy or unload (functions/agent/convergence.ts).
 */
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NodeAgent } from '../functions/agent/agent.ts';
import { DialOutConnection } from '../functions/agent/dialOut.ts';
import { Installer } from '../functions/agent/installer.ts';
import { Converger } from '../functions/agent/convergence.ts';
import { CredentialStore, enrol, readCredentials, startHeartbeats, writeCredentials, credentialsFile } from '../functions/agent/membership.ts';
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
    'workload-url': { type: 'string' },
    'heartbeat-seconds': { type: 'string' },
    'dial-out': { type: 'boolean', default: false },
    'ws-url': { type: 'string' },
    'keepalive-seconds': { type: 'string' },
    'reconnect-max-seconds': { type: 'string' },
    port: { type: 'string', default: '7070' },
    host: { type: 'string', default: '0.0.0.0' },
    help: { type: 'boolean', default: false },
  },
});
const USAGE = [
  'usage: npx tsx scripts/agent.ts --api URL --enrol TOKEN --data-dir DIR [--trust-roots PEM [--crl URL]...] [--port 7070] [--host 0.0.0.0] [--advertise-url URL] [--heartbeat-seconds 10] [--workload-url URL]',
  '       npx tsx scripts/agent.ts --api URL --enrol TOKEN --data-dir DIR --dial-out [--ws-url URL] [--trust-roots PEM [--crl URL]...] [--heartbeat-seconds 10]',
  '                                [--keepalive-seconds 300] [--reconnect-max-seconds 30]   (no inbound port: one outbound WebSocket)',
  '       npx tsx scripts/agent.ts --data-dir DIR [...]            (already enrolled: reuses DIR/credentials.json)',
  '       npx tsx scripts/agent.ts --node-id ID --keys-file FILE [--state-file FILE] [--data-dir DIR --trust-roots PEM] [--port 7070] [--host 0.0.0.0]',
].join('\n');
// Enrolled mode unless the node is named with a shared key set.
const enrolled = values['keys-file'] === undefined && values['data-dir'] !== undefined;
if (values.help || (!enrolled && (!values['node-id'] || !values['keys-file']))) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
if (values['dial-out'] && (!enrolled || values['advertise-url'])) {
  console.error('--dial-out is for enrolled agents (--data-dir, no --keys-file), and a dial-out agent has no --advertise-url');
  process.exit(2);
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
  const agent = new NodeAgent({
    nodeId: values['node-id']!,
    keys: () => keys,
    stateFile: values['state-file'],
    runtime,
    trustRoots,
    revocationLists,
    log: (line) => console.error(line),
  });
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

/** Whole seconds from a flag (or its default), within bounds. */
function seconds(flag: string, fallback: number, min: number, max: number): number {
  const raw = values[flag as keyof typeof values];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

let dialOut: DialOutConnection | undefined;

async function startEnrolled(dataDir: string): Promise<NodeAgent> {
  const heartbeatSeconds = seconds('heartbeat-seconds', Number(process.env.HEARTBEAT_SECONDS ?? 10), 1, 300);
  const host = values.host;
  const stateFile = join(dataDir, 'state.json');
  let creds = readCredentials(dataDir);
  // A new node dials out when asked to; an enrolled one keeps the transport it enrolled with.
  const wantsDialOut = creds ? creds.transport === 'dial-out' : values['dial-out'];
  const port = wantsDialOut ? 0 : Number(values.port) || (await freePort(host));
  const address = wantsDialOut ? undefined : (values['advertise-url'] ?? `http://${host === '0.0.0.0' || host === '::' ? hostname() : host}:${port}`);
  if (creds) {
    console.log(
      `reusing the credentials of node ${creds.nodeId} (${creds.environment}${wantsDialOut ? ', dial-out' : ''}) in ${credentialsFile(dataDir)}${values.enrol ? '; --enrol ignored' : ''}`,
    );
    if (values['dial-out'] && !wantsDialOut) throw new Error(`node ${creds.nodeId} enrolled as an inbound agent: to dial out, enrol again with a new token`);
    if (values.api) creds = { ...creds, apiUrl: values.api };
  } else {
    if (!values.enrol || !values.api) throw new Error(`${credentialsFile(dataDir)} does not exist: enrol first with --api URL --enrol TOKEN`);
    const modules = existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, 'utf8')) as { modules: Record<string, ModuleState> }).modules : {};
    creds = await enrol({ apiUrl: values.api, token: values.enrol, address, heartbeatSeconds, modules, workloadUrl: values['workload-url'] });
    writeCredentials(dataDir, creds);
    console.log(`enrolled as node ${creds.nodeId} in ${creds.environment}${wantsDialOut ? ' (dial-out)' : ''}; credentials in ${credentialsFile(dataDir)}`);
  }
  // The node's keys change without a restart: heartbeat answers deliver new ones (docs/adr/0012-node-key-rotation.md).
  const store = new CredentialStore(dataDir, creds);
  const agent = new NodeAgent({ nodeId: creds.nodeId, keys: store.keys, stateFile, runtime, trustRoots, revocationLists, log: (line) => console.error(line) });
  if (wantsDialOut) {
    const wsUrl = values['ws-url'] ?? creds.wsUrl;
    if (!wsUrl) throw new Error('no WebSocket URL: the enrolment answer had none; give --ws-url');
    await agent.recover(); // settle interrupted swaps before the first command is served
    dialOut = new DialOutConnection({
      url: wsUrl,
      nodeId: creds.nodeId,
      // Connects are signed like heartbeats: with the key the node signs with now.
      key: () => store.current.keys[0],
      serve: (req) => agent.serve(req),
      log: (line) => console.error(line),
      keepaliveMs: seconds('keepalive-seconds', 300, 1, 540) * 1000,
      backoffCapMs: seconds('reconnect-max-seconds', 30, 1, 600) * 1000,
    });
    dialOut.start();
    console.log(`node agent ${creds.nodeId} dialing out to ${wsUrl} (no inbound port), heartbeat every ${heartbeatSeconds} s${installs}`);
  } else {
    console.log(
      `node agent ${creds.nodeId} listening on ${await agent.listen(port, host)}, advertised as ${address}, heartbeat every ${heartbeatSeconds} s${installs}`,
    );
  }
  // Convergence commands from heartbeat answers run through the agent's own deploy and rollback
  // (signature, digest and per-module order checked as for a deployment); a failure is retried
  // after one heartbeat interval, doubling up to 5 minutes.
  const converger = new Converger(agent, (line) => console.log(line), { retryBaseMs: heartbeatSeconds * 1000 });
  startHeartbeats(
    store,
    heartbeatSeconds,
    address,
    () => agent.health(),
    (line) => console.error(line),
    converger,
    values['workload-url'],
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
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void Promise.all([dialOut?.stop(), agent.close()]).then(() => process.exit(0)));
