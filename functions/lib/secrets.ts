/**
 * Secrets behind one interface: AWS Secrets Manager on AWS (`*_SECRET_ARN`), a JSON file locally
 * (`*_FILE`). Values are cached briefly so a rotation is picked up within a minute.
 */
import { readFileSync } from 'node:fs';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import type { AgentKey } from '../agent/protocol.ts';

/** How long a container trusts its copy of a secret (a rotation step waits at least this). */
const TTL_MS = Number(process.env.SECRETS_CACHE_SECONDS ?? 60) * 1000;
const cache = new Map<string, { at: number; value: unknown }>();
let sm: SecretsManagerClient | undefined;

async function readSecret(name: string): Promise<unknown> {
  const hit = cache.get(name);
  if (hit && Date.now() - hit.at < TTL_MS) return hit.value;
  const arn = process.env[`${name}_SECRET_ARN`];
  const file = process.env[`${name}_FILE`];
  let text: string;
  if (arn) {
    sm ??= new SecretsManagerClient({});
    const r = await sm.send(new GetSecretValueCommand({ SecretId: arn }));
    text = r.SecretString ?? '';
  } else if (file) {
    text = readFileSync(file, 'utf8');
  } else {
    throw new Error(`neither ${name}_SECRET_ARN nor ${name}_FILE is set`);
  }
  const value = JSON.parse(text) as unknown;
  cache.set(name, { at: Date.now(), value });
  return value;
}

/** Agent request-signing keys; the first one signs, all of them verify. */
export async function agentKeys(): Promise<AgentKey[]> {
  const v = (await readSecret('AGENT_KEYS')) as { keys?: AgentKey[] };
  if (!v.keys?.length) throw new Error('the agent key secret holds no keys');
  return v.keys;
}

/** Keys that sign approval links; the first signs, all verify (rotation without broken links). */
export async function approvalLinkKeys(): Promise<{ id: string; secret: string }[]> {
  const v = (await readSecret('APPROVAL_LINK_KEYS')) as { keys?: { id: string; secret: string }[] };
  if (!v.keys?.length) throw new Error('the approval link secret holds no keys');
  return v.keys;
}
