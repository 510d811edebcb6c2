/**
 * Run the reference node agent on a host:
 *
 *   npx tsx scripts/agent.ts --node-id web-01 --keys-file /etc/kmod/agent-keys.json \
 *     --state-file /var/lib/kmod/agent-state.json --data-dir /var/lib/kmod --trust-roots /etc/kmod/roots.pem \
 *     [--port 7070] [--host 0.0.0.0]
 *
 * The keys file is the same JSON the orchestrator's secret holds: {"keys":[{"id":"k1","secret":"…"}]}.
 * It is re-read every 10 s, so a rotated key set is picked up without a restart.
 * With --data-dir the agent installs and runs modules (functions/agent/installer.ts) and loads
 * only modules whose signature chains to --trust-roots; without it, it only records versions.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { NodeAgent } from '../functions/agent/agent.ts';
import { Installer } from '../functions/agent/installer.ts';
import type { AgentKey } from '../functions/agent/protocol.ts';
import { splitPem } from '../functions/domain/signature.ts';

const USAGE =
  'usage: npx tsx scripts/agent.ts --node-id ID --keys-file FILE [--state-file FILE] [--data-dir DIR --trust-roots PEM] [--port 7070] [--host 0.0.0.0]';
const { values } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    'keys-file': { type: 'string' },
    'state-file': { type: 'string' },
    'data-dir': { type: 'string' },
    'trust-roots': { type: 'string' },
    port: { type: 'string', default: '7070' },
    host: { type: 'string', default: '0.0.0.0' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help || !values['node-id'] || !values['keys-file']) {
  console.log(USAGE);
  process.exit(values.help ? 0 : 2);
}
const trustRoots = values['trust-roots'] ? splitPem(readFileSync(values['trust-roots'], 'utf8')) : undefined;
if (values['trust-roots'] && !trustRoots?.length) {
  console.error(`no PEM certificate in ${values['trust-roots']}`);
  process.exit(2);
}
if (values['data-dir'] && !trustRoots) {
  // Loading code the orchestrator names without checking its signature would make the orchestrator root on every host.
  console.error('--data-dir needs --trust-roots: the agent loads only modules signed under roots it holds itself');
  process.exit(2);
}

const keysFile = values['keys-file'];
const readKeys = () => (JSON.parse(readFileSync(keysFile, 'utf8')) as { keys: AgentKey[] }).keys;
let keys = readKeys();
setInterval(() => {
  try {
    keys = readKeys();
  } catch (e) {
    console.error(`keeping the previous keys: ${(e as Error).message}`);
  }
}, 10_000).unref();

const runtime = values['data-dir'] ? new Installer({ dataDir: values['data-dir'] }) : undefined;
const agent = new NodeAgent({ nodeId: values['node-id'], keys: () => keys, stateFile: values['state-file'], runtime, trustRoots });
const address = await agent.listen(Number(values.port), values.host);
console.log(`node agent ${values['node-id']} listening on ${address}${runtime ? ` (modules in ${values['data-dir']}/modules)` : ''}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void agent.close().then(() => process.exit(0)));
