/**
 * Secrets Manager rotation for the key-set secrets (agent request signing, approval links):
 * each scheduled rotation advances the set one safe step (domain/keyRotation.ts).
 * createSecret stages the new set as AWSPENDING; finishSecret makes it AWSCURRENT. Readers pick the
 * set up from the secret (agents registered by hand from their copy of it, re-read every 10 s;
 * distributing that copy is the fleet's configuration job). Enrolled agents hold no copy: their
 * own keys are wrapped under the set, so finishSecret of the agent key set re-wraps them under the
 * new signer and starts their rotation (lib/nodeKeys.ts), delivered in their heartbeat answers.
 */
import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from '@aws-sdk/client-secrets-manager';
import { z } from 'zod';
import { scheduledRotation, type Key } from '../../domain/keyRotation.ts';
import { audit } from '../../lib/audit.ts';
import { config } from '../../lib/config.ts';
import { nodeKeyPass } from '../../lib/nodeKeys.ts';
import { logger } from '../../lib/telemetry.ts';
import { taskHandler } from '../../lib/task.ts';

const sm = new SecretsManagerClient({});
const keySetSchema = z.object({ keys: z.array(z.object({ id: z.string().min(1), secret: z.string().min(16), next: z.boolean().optional() })).min(1) });

export const handler = taskHandler(
  z.object({ SecretId: z.string(), ClientRequestToken: z.string(), Step: z.enum(['createSecret', 'setSecret', 'testSecret', 'finishSecret']) }),
  async ({ SecretId, ClientRequestToken, Step }) => {
    const meta = await sm.send(new DescribeSecretCommand({ SecretId }));
    const stages = meta.VersionIdsToStages ?? {};
    if (!stages[ClientRequestToken]) throw new Error(`version ${ClientRequestToken} is not staged for rotation`);
    if (Step === 'createSecret') {
      try {
        await sm.send(new GetSecretValueCommand({ SecretId, VersionId: ClientRequestToken, VersionStage: 'AWSPENDING' }));
        return; // created by an earlier attempt
      } catch (e) {
        if ((e as { name?: string }).name !== 'ResourceNotFoundException') throw e;
      }
      const current = keySetSchema.parse(JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId, VersionStage: 'AWSCURRENT' }))).SecretString ?? '{}'));
      const next = scheduledRotation(current.keys as Key[]);
      await sm.send(new PutSecretValueCommand({ SecretId, ClientRequestToken, SecretString: JSON.stringify({ keys: next }), VersionStages: ['AWSPENDING'] }));
      return;
    }
    if (Step === 'testSecret') {
      keySetSchema.parse(
        JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId, VersionId: ClientRequestToken, VersionStage: 'AWSPENDING' }))).SecretString ?? '{}'),
      );
      return;
    }
    if (Step === 'finishSecret') {
      const currentVersion = Object.entries(stages).find(([, s]) => s.includes('AWSCURRENT'))?.[0];
      if (currentVersion !== ClientRequestToken) {
        await sm.send(
          new UpdateSecretVersionStageCommand({
            SecretId,
            VersionStage: 'AWSCURRENT',
            MoveToVersionId: ClientRequestToken,
            RemoveFromVersionId: currentVersion,
          }),
        );
        await audit({
          subject: `secret#${meta.Name}`,
          category: 'security',
          action: 'secret.rotated',
          actor: 'system:secrets-manager',
          details: { version: ClientRequestToken },
        });
      }
      // The agent key set wraps the enrolled nodes' own keys: move them under the new signer and
      // renew them (also on a retry of this step: the pass is idempotent).
      if (meta.ARN && meta.ARN === process.env.AGENT_KEYS_SECRET_ARN) {
        const rotated = keySetSchema.parse(
          JSON.parse((await sm.send(new GetSecretValueCommand({ SecretId, VersionId: ClientRequestToken }))).SecretString ?? '{}'),
        );
        const summary = await nodeKeyPass({
          fleetKeys: rotated.keys,
          maxAgeMs: config.nodeKeyMaxAgeSeconds() * 1000,
          actor: 'system:secrets-manager',
          fleetRotated: true,
        });
        logger.info('node key pass after the agent key set rotation', { ...summary });
      }
    }
  },
);
