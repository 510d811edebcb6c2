/**
 * Run the reference node agent on a host:
 *
 *   npx tsx scripts/agent.ts --node-id web-01 --keys-file /etc/kmod/agent-keys.json \
 *     --state-file /var/lib/kmod/agent-state.json [--modules-dir /var/lib/kmod/modules] [--port 7070] [--host 0.0.0.0]
 *
 * The keys file is the same JSON the orchestrator's secret holds: {"keys":[{"id":"k1","secret":"…"}]}.
 * It is re-read every 10 s, so a rotated key set is picked up without a restart.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { NodeAgent } from '../functions/agent/agent.ts';
import type { AgentKey } from '../functions/agent/protocol.ts';

const { values } = parseArgs({
  options: {
    'node-id': { type: 'string' },
    'keys-file': { type: 'string' },
    'state-file': { type: 'string' },
    'modules-dir': { type: 'string' },
    port: { type: 'string', default: '7070' },
    host: { type: 'string', default: '0.0.0.0' },
    help: { type: 'boolean', default: false },
  },
});
if (values.help || !values['node-id'] || !values['keys-file']) {
  console.log('usage: npx tsx scripts/agent.ts --node-id ID --keys-file FILE [--state-file FILE] [--modules-dir DIR] [--port 7070] [--host 0.0.0.0]');
  process.exit(values.help ? 0 : 2);
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

const agent = new NodeAgent({ nodeId: values['node-id'], keys: () => keys, stateFile: values['state-file'], loader });
const address = await agent.listen(Number(values.port), values.host);
console.log(`node agent ${values['node-id']} listening on ${address}`);
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void agent.close().then(() => process.exit(0)));
