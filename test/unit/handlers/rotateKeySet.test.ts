/**
 * The Secrets Manager rotation function's last step. Secrets Manager rotation cannot run in the
 * local cloud (it has no Secrets Manager), so its calls are mocked here with aws-sdk-client-mock;
 * the node key pass it starts is lib/nodeKeys.ts, tested against DynamoDB Local in
 * test/integration/node-key-rotation.test.ts (through the local rotate-keys path).
 */
import { DescribeSecretCommand, GetSecretValueCommand, SecretsManagerClient, UpdateSecretVersionStageCommand } from '@aws-sdk/client-secrets-manager';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const nodeKeyPass = vi.fn(async () => ({ nodes: 2, started: { 'fleet-key-rotation': 2 }, rewrapped: 2, retired: 0, skipped: [] }));
const audit = vi.fn(async () => undefined);
vi.mock('../../../functions/lib/nodeKeys.ts', () => ({ nodeKeyPass }));
vi.mock('../../../functions/lib/audit.ts', () => ({ audit }));

const AGENT_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:AgentKeys-abc';
const LINKS_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:ApprovalLinkKeys-def';
process.env.AGENT_KEYS_SECRET_ARN = AGENT_ARN;
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
process.env.POWERTOOLS_LOG_LEVEL = 'WARN';
const sm = mockClient(SecretsManagerClient);
const { handler } = await import('../../../functions/handlers/tasks/rotateKeySet.ts');

const context = { functionName: 'kmod-RotateKeySet', awsRequestId: 'r1', getRemainingTimeInMillis: () => 60_000 } as unknown as Context;
const rotated = {
  keys: [
    { id: 'k2', secret: 'b'.repeat(32) },
    { id: 'k1', secret: 'a'.repeat(32) },
    { id: 'k3', secret: 'c'.repeat(32), next: true },
  ],
};

function secret(arn: string, stages: Record<string, string[]>) {
  sm.on(DescribeSecretCommand).resolves({ ARN: arn, Name: arn.split(':').at(-1), VersionIdsToStages: stages });
  sm.on(GetSecretValueCommand, { SecretId: arn, VersionId: 'v2' }).resolves({ SecretString: JSON.stringify(rotated) });
}

beforeEach(() => {
  sm.reset();
  nodeKeyPass.mockClear();
  audit.mockClear();
});

describe('finishSecret', () => {
  it('of the agent key set: makes the new set current, then re-wraps and renews the node keys under it', async () => {
    secret(AGENT_ARN, { v1: ['AWSCURRENT'], v2: ['AWSPENDING'] });
    await handler({ SecretId: AGENT_ARN, ClientRequestToken: 'v2', Step: 'finishSecret' }, context);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)[0].args[0].input).toMatchObject({ MoveToVersionId: 'v2', RemoveFromVersionId: 'v1' });
    expect(audit).toHaveBeenCalledWith(expect.objectContaining({ action: 'secret.rotated' }));
    expect(nodeKeyPass).toHaveBeenCalledWith(expect.objectContaining({ fleetKeys: rotated.keys, fleetRotated: true, actor: 'system:secrets-manager' }));
  });

  it('retried after the stage moved: runs the (idempotent) node key pass again, moves nothing', async () => {
    secret(AGENT_ARN, { v1: ['AWSPREVIOUS'], v2: ['AWSCURRENT', 'AWSPENDING'] });
    await handler({ SecretId: AGENT_ARN, ClientRequestToken: 'v2', Step: 'finishSecret' }, context);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(0);
    expect(nodeKeyPass).toHaveBeenCalledTimes(1);
  });

  it('of the approval-link key set: touches no node key', async () => {
    secret(LINKS_ARN, { v1: ['AWSCURRENT'], v2: ['AWSPENDING'] });
    await handler({ SecretId: LINKS_ARN, ClientRequestToken: 'v2', Step: 'finishSecret' }, context);
    expect(sm.commandCalls(UpdateSecretVersionStageCommand)).toHaveLength(1);
    expect(nodeKeyPass).not.toHaveBeenCalled();
  });
});
