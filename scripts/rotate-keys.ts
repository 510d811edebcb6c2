/**
 * Rotate a key set (agent request signing, or approval links) one step at a time:
 *
 *   npm run rotate-keys -- --secret agent --step add       # then wait for agents (10 s) and Lambdas (SECRETS_CACHE_SECONDS)
 *   npm run rotate-keys -- --secret agent --step promote   # wait again
 *   npm run rotate-keys -- --secret agent --step retire
 *
 * Locally it edits the file-backed secret in .local/secrets/ and records a security audit event in
 * the local cloud; for the agent key set, `promote` also renews the enrolled nodes' own keys (they
 * are wrapped under it) and `retire` first moves every node key under the new signer. With
 * --secret-arn it updates AWS Secrets Manager instead (then invoke kmod-RotateNodeKeys after
 * `promote` and before `retire`: docs/runbooks/node-agent.md).
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { parseOptionsOrExit } from './lib/usage.ts';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { rotate, type Key, type RotationStep } from '../functions/domain/keyRotation.ts';
import { describePass, localNodeKeyPass } from './rotate-node-keys.ts';

// The local cloud's data dir (KMOD_DATA_DIR, as for npm start).
const DATA_DIR = process.env.KMOD_DATA_DIR ?? '.local';
const FILES = { agent: `${DATA_DIR}/secrets/agent-keys.json`, 'approval-link': `${DATA_DIR}/secrets/approval-link-keys.json` } as const;

export function rotateKeyFile(file: string, step: RotationStep): Key[] {
  const keys = (JSON.parse(readFileSync(file, 'utf8')) as { keys: Key[] }).keys;
  const next = rotate(keys, step);
  writeFileSync(`${file}.tmp`, JSON.stringify({ keys: next }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file); // readers never see half a file
  return next;
}

async function main() {
  const usage = 'usage: npm run rotate-keys -- (--secret agent|approval-link | --secret-arn ARN) --step add|promote|retire';
  const values = parseOptionsOrExit('rotate-keys', usage, {
    secret: { type: 'string' },
    step: { type: 'string' },
    'secret-arn': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  });
  const step = values.step as RotationStep;
  if (!['add', 'promote', 'retire'].includes(step) || (!values['secret-arn'] && !(values.secret && values.secret in FILES))) {
    console.error(usage);
    process.exit(2);
  }
  let ids: string[];
  if (values['secret-arn']) {
    const sm = new SecretsManagerClient({});
    const current = JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId: values['secret-arn'] }))).SecretString ?? '{}') as { keys: Key[] };
    const next = rotate(current.keys, step);
    await sm.send(new PutSecretValueCommand({ SecretId: values['secret-arn'], SecretString: JSON.stringify({ keys: next }) }));
    ids = next.map((k) => k.id);
  } else {
    const file = FILES[values.secret as keyof typeof FILES];
    // Retiring the old signer strands every node key still wrapped under it: move them all first.
    if (values.secret === 'agent' && step === 'retire') await nodeKeysLocally(step, undefined);
    const next = rotateKeyFile(file, step);
    ids = next.map((k) => k.id);
    await auditLocally(values.secret!, step, ids);
    if (values.secret === 'agent' && step === 'promote') await nodeKeysLocally(step, next);
  }
  console.log(`${step}: keys now ${ids.join(', ')} (the first signs, all verify)`);
}

/**
 * Enrolled nodes' own keys are wrapped under the agent key set: after a promotion they move under
 * the new signer and are renewed (delivered in heartbeat answers), the pass the AWS rotation
 * function runs after its own promotion (docs/adr/0012-node-key-rotation.md).
 */
async function nodeKeysLocally(step: 'promote' | 'retire', keys: Key[] | undefined) {
  let summary: Awaited<ReturnType<typeof localNodeKeyPass>>;
  try {
    summary = await localNodeKeyPass(DATA_DIR, { actor: `cli:${process.env.USER ?? 'operator'}`, fleetKeys: keys, fleetRotated: step === 'promote' });
  } catch (e) {
    if (step === 'retire') throw e;
    console.warn(`(node keys not renewed: the local cloud is not running: ${(e as Error).message})`);
    return;
  }
  console.log(`node keys: ${describePass(summary)}`);
  if (step === 'retire' && summary.skipped.length) {
    console.error('not retiring: some node keys could not be moved under the new signer yet; run this step again');
    process.exit(1);
  }
}

/** Rotations are security events: record one in the local cloud's audit table when it runs. */
async function auditLocally(secret: string, step: string, ids: string[]) {
  try {
    const cloud = JSON.parse(readFileSync(`${DATA_DIR}/cloud.json`, 'utf8')) as { dynamodbUrl: string };
    process.env.AWS_ENDPOINT_URL_DYNAMODB = cloud.dynamodbUrl;
    process.env.AWS_REGION ??= 'us-east-1';
    process.env.AWS_ACCESS_KEY_ID ??= 'local';
    process.env.AWS_SECRET_ACCESS_KEY ??= 'local';
    process.env.AUDIT_TABLE ??= 'kmod-Audit';
    const { audit } = await import('../functions/lib/audit.ts');
    await audit({
      subject: `secret#${secret}`,
      category: 'security',
      action: `secret.rotation.${step}`,
      actor: `cli:${process.env.USER ?? 'operator'}`,
      details: { keyIds: ids },
    });
  } catch (e) {
    console.warn(`(not audited: the local cloud is not running: ${(e as Error).message})`);
  }
}

if (process.argv[1]?.endsWith('rotate-keys.ts')) await main();
