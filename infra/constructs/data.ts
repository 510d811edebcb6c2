/** Data at rest: the customer-managed key, every table of functions/lib/tables.ts, the artifact bucket. */
import { Aws, RemovalPolicy, aws_dynamodb as dynamodb, aws_iam as iam, aws_kms as kms, type aws_s3 as s3 } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { TABLES, TTL_ATTRIBUTE, type TableKey, type TableSpec } from '../../functions/lib/tables.ts';
import { accessLogsBucket, privateBucket } from './buckets.ts';
import { Layer } from './layer.ts';

const attr = (name: string): dynamodb.Attribute => ({ name, type: dynamodb.AttributeType.STRING });

export class Data extends Layer {
  /** One customer-managed key for data at rest (tables, bucket, topics, secrets, logs). */
  readonly key: kms.Key;
  readonly tables = {} as Record<TableKey, dynamodb.Table>;
  readonly artifacts: s3.Bucket;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.key = new kms.Key(this, 'DataKey', { enableKeyRotation: true, description: 'kmod-orchestrator data at rest', removalPolicy: RemovalPolicy.RETAIN });
    this.key.grantEncryptDecrypt(new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`));
    for (const [k, spec] of Object.entries(TABLES) as [TableKey, TableSpec][]) this.tables[k] = this.table(spec);
    this.artifacts = this.artifactBucket();
  }

  private table(spec: TableSpec): dynamodb.Table {
    const table = new dynamodb.Table(this, spec.id, {
      partitionKey: attr(spec.partitionKey),
      sortKey: spec.sortKey ? attr(spec.sortKey) : undefined,
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.key,
      stream: spec.stream ? dynamodb.StreamViewType.NEW_AND_OLD_IMAGES : undefined,
      removalPolicy: RemovalPolicy.RETAIN,
      deletionProtection: true,
    });
    for (const i of spec.indexes) {
      table.addGlobalSecondaryIndex({
        indexName: i.name,
        partitionKey: attr(i.partitionKey),
        sortKey: i.sortKey ? attr(i.sortKey) : undefined,
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    return table;
  }

  private artifactBucket(): s3.Bucket {
    const accessLogs = accessLogsBucket(this, 'AccessLogs');
    return privateBucket(this, 'Artifacts', { encryptionKey: this.key, accessLogs, accessLogsPrefix: 'artifacts/' });
  }
}
