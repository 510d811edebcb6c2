/**
 * Rotate a key set (agent request signing, or approval links) one step at a time:
 *
 *   npm run rotate-keys -- --secret agent --step add       # then wait for agents (10 s) and Lambdas (SECRETS_CACHE_SECONDS)
 *   npm run rotate-keys -- --secret agent --step promote   # wait again
 *   npm run rotate-keys -- --secret agent --step retire
 *
 * Locally it edits the file-backed secret in .local/secrets/ and records a security audit event in
 * the local cloud; with --secret-arn it updates AWS Secrets Manager instead.
 */
import { readFileSync, writeFileSync, renameSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { rotate, type Key, type RotationStep } from '../functions/domain/keyRotation.ts';

const FILES = { agent: '.local/secrets/agent-keys.json', 'approval-link': '.local/secrets/approval-link-keys.json' } as const;

export function rotateKeyFile(file: string, step: RotationStep): Key[] {
  const keys = (JSON.parse(readFileSync(file, 'utf8')) as { keys: Key[] }).keys;
  const next = rotate(keys, step);
  writeFileSync(`${file}.tmp`, JSON.stringify({ keys: next }), { mode: 0o600 });
  renameSync(`${file}.tmp`, file); // readers never see half a file
  return next;
}

async function main() {
  const { values } = parseArgs({ options: { secret: { type: 'string' }, step: { type: 'string' }, 'secret-arn': { type: 'string' } } });
  const step = values.step as RotationStep;
  if (!['add', 'promote', 'retire'].includes(step) || (!values['secret-arn'] && !(values.secret && values.secret in FILES))) {
    console.error('usage: npm run rotate-keys -- (--secret agent|approval-link | --secret-arn ARN) --step add|promote|retire');
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
    ids = rotateKeyFile(FILES[values.secret as keyof typeof FILES], step).map((k) => k.id);
    await auditLocally(values.secret!, step, ids);
  }
  console.log(`${step}: keys now ${ids.join(', ')} (the first signs, all verify)`);
}

/** Rotations are security events: record one in the local cloud's audit table when it runs. */
async function auditLocally(secret: string, step: string, ids: string[]) {
  try {
    const cloud = JSON.parse(readFileSync('.local/cloud.json', 'utf8')) as { dynamodbUrl: string };
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
