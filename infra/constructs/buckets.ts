/**
 * Every bucket of the app is private, TLS-only, retained when the stack goes, and logs its access to
 * a sibling bucket: one place for what cdk-nag and an auditor check on each (AwsSolutions-S1, S2,
 * S10), so a new bucket cannot forget one.
 */
import { RemovalPolicy, type aws_kms as kms, aws_s3 as s3 } from 'aws-cdk-lib';
import type { Construct } from 'constructs';

const PRIVATE = { blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL, enforceSSL: true, removalPolicy: RemovalPolicy.RETAIN } as const;

/** Where server access logs go (S3-managed encryption: the log-delivery service cannot write to KMS-encrypted buckets). */
export function accessLogsBucket(scope: Construct, id: string, props: Partial<s3.BucketProps> = {}): s3.Bucket {
  return new s3.Bucket(scope, id, {
    ...PRIVATE,
    encryption: s3.BucketEncryption.S3_MANAGED,
    objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
    ...props,
  });
}

/** A KMS-encrypted, versioned bucket logging its access under `accessLogsPrefix` of `accessLogs`. */
export function privateBucket(
  scope: Construct,
  id: string,
  props: { encryptionKey: kms.IKey; accessLogs: s3.IBucket; accessLogsPrefix: string } & Partial<s3.BucketProps>,
): s3.Bucket {
  const { accessLogs, accessLogsPrefix, ...rest } = props;
  return new s3.Bucket(scope, id, {
    ...PRIVATE,
    encryption: s3.BucketEncryption.KMS,
    versioned: true,
    serverAccessLogsBucket: accessLogs,
    serverAccessLogsPrefix: accessLogsPrefix,
    ...rest,
  });
}
