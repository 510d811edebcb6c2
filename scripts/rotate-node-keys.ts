/**
 * One pass over the enrolled nodes' own keys against the running local cloud: what the scheduled
 * RotateNodeKeys function (functions/handlers/tasks/rotateNodeKeys.ts) does on AWS every hour.
 *
 *   npm run rotate-node-keys                            # keys older than NODE_KEY_MAX_AGE_SECONDS (default 30 days)
 *   npm run rotate-node-keys -- --max-age-seconds 0     # every enrolled node's key, now
 *
 * Each due node gets a pending key, which its agent picks up in its next heartbeat answer and
 * proves by signing the one after with it (docs/adr/0012-node-key-rotation.md). The pass also
 * retires previous keys past their window and re-wraps keys under the agent key set's signer.
 * `npm run rotate-keys -- --secret agent --step promote` runs the same pass after the fleet key
 * set's signer changed. KMOD_DATA_DIR names the local cloud's data dir (default .local).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { AgentKey } from '../functions/agent/protocol.ts';
import { TABLES } from '../functions/lib/tables.ts';
import type { PassSummary } from '../functions/lib/nodeKeys.ts';

/** Point the data layer at the local cloud in `dataDir` (its cloud.json), as its Lambdas are. */
function useLocalCloud(dataDir: string): void {
  const cloud = JSON.parse(readFileSync(join(dataDir, 'cloud.json'), 'utf8')) as { dynamodbUrl: string };
  process.env.AWS_ENDPOINT_URL_DYNAMODB = cloud.dynamodbUrl;
  process.env.AWS_REGION ??= 'us-east-1';
  process.env.AWS_ACCESS_KEY_ID ??= 'local';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
  process.env.AGENT_KEYS_FILE = join(dataDir, 'secrets', 'agent-keys.json');
  for (const spec of Object.values(TABLES)) process.env[spec.envVar] ??= `kmod-${spec.id}`;
}

export async function localNodeKeyPass(
  dataDir: string,
  opts: { actor: string; maxAgeSeconds?: number; fleetKeys?: (AgentKey & { next?: boolean })[]; fleetRotated?: boolean },
): Promise<PassSummary> {
  useLocalCloud(dataDir);
  // Imported after the environment is set: the data layer reads its settings when first used.
  const { nodeKeyPass } = await import('../functions/lib/nodeKeys.ts');
  const { config } = await import('../functions/lib/config.ts');
  const { agentKeys } = await import('../functions/lib/secrets.ts');
  return nodeKeyPass({
    fleetKeys: opts.fleetKeys ?? (await agentKeys()),
    maxAgeMs: (opts.maxAgeSeconds ?? config.nodeKeyMaxAgeSeconds()) * 1000,
    actor: opts.actor,
    fleetRotated: opts.fleetRotated,
  });
}

export function describePass(s: PassSummary): string {
  const started = Object.entries(s.started).map(([trigger, n]) => `${n} (${trigger})`);
  const lines = [
    `enrolled nodes: ${s.nodes}; rotations started: ${started.length ? started.join(', ') : 0}; keys re-wrapped: ${s.rewrapped}; previous keys retired: ${s.retired}`,
    ...s.skipped.map((k) => `  skipped ${k.nodeId}: ${k.reason} (the next pass tries again)`),
  ];
  return lines.join('\n');
}

async function main() {
  const { values } = parseArgs({ options: { 'max-age-seconds': { type: 'string' }, help: { type: 'boolean', default: false } } });
  const maxAge = values['max-age-seconds'] === undefined ? undefined : Number(values['max-age-seconds']);
  if (values.help || (maxAge !== undefined && !(Number.isFinite(maxAge) && maxAge >= 0))) {
    console.log(
      'usage: npm run rotate-node-keys [-- --max-age-seconds N]   (N: rotate node keys older than N seconds; default NODE_KEY_MAX_AGE_SECONDS or 30 days)',
    );
    process.exit(values.help ? 0 : 2);
  }
  const summary = await localNodeKeyPass(process.env.KMOD_DATA_DIR ?? '.local', { actor: `cli:${process.env.USER ?? 'operator'}`, maxAgeSeconds: maxAge });
  console.log(describePass(summary));
  if (summary.skipped.length) process.exitCode = 1;
}

if (process.argv[1]?.endsWith('rotate-node-keys.ts')) await main();
