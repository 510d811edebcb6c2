/** The key-set secrets: agent request signing and approval-link signing, rotated on a schedule. */
import { Duration, SecretValue, Stack, Validations, aws_kms as kms, aws_lambda as lambda, aws_secretsmanager as secretsmanager } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { Layer } from './layer.ts';

export class KeySets extends Layer {
  readonly agentKeys: secretsmanager.Secret;
  readonly approvalLinkKeys: secretsmanager.Secret;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: { key: kms.IKey },
  ) {
    super(scope, id);
    this.agentKeys = this.keySet('AgentKeys');
    this.approvalLinkKeys = this.keySet('ApprovalLinkKeys');
  }

  /** Scheduled rotation: one safe step per period (domain/keyRotation.ts scheduledRotation). */
  rotateWith(rotationLambda: lambda.IFunction, days: number): void {
    for (const keys of [this.agentKeys, this.approvalLinkKeys])
      keys.addRotationSchedule('Rotation', { rotationLambda, automaticallyAfter: Duration.days(days) });
  }

  /**
   * Key sets are JSON {"keys":[{"id","secret"}]} (functions/lib/secrets.ts). Secrets Manager only
   * generates a top-level string, so a seed secret generates the first key and the key set embeds
   * it through a dynamic reference that CloudFormation resolves at deploy time (the value never
   * appears in the template). The seed is alphanumeric, so it needs no JSON escaping.
   */
  private keySet(name: string): secretsmanager.Secret {
    const seed = new secretsmanager.Secret(this, `${name}Seed`, {
      encryptionKey: this.props.key,
      description: `${name}: the generated first key, embedded in ${name}`,
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    Validations.of(seed).acknowledge({
      id: 'AwsSolutions-SMG4',
      reason: 'The seed only provides the first key when the key set is created; nothing reads it afterwards, and the key set itself rotates on a schedule.',
    });
    return new secretsmanager.Secret(this, name, {
      encryptionKey: this.props.key,
      description: `${name}: {"keys":[{"id","secret"}]}; the first key signs, all verify`,
      secretStringValue: SecretValue.unsafePlainText(Stack.of(this).toJsonString({ keys: [{ id: 'k1', secret: seed.secretValue.unsafeUnwrap() }] })),
    });
  }
}
