/**
 * Where the audit trail is exported and how it is queried (docs/adr/0033-audit-retention-and-export.md,
 * docs/runbooks/audit.md): an encrypted, versioned, TLS-only bucket whose `audit/dt=YYYY-MM-DD/`
 * partitions the hourly ExportAudit function writes (JSON Lines), a Glue database and table over
 * them (JSON SerDe, partition projection on `dt`, so no crawler and no MSCK REPAIR), and an Athena
 * workgroup whose query results stay in the same bucket, encrypted, for 30 days.
 *
 * The export has its own key: people who query the audit trail are granted decrypt on it, not on
 * the key of every table. A nested stack, like the monitoring one: the main stack is near
 * CloudFormation's 500-resource limit.
 */
import {
  Aws,
  Duration,
  NestedStack,
  RemovalPolicy,
  Stack,
  aws_athena as athena,
  aws_glue as glue,
  aws_iam as iam,
  aws_kms as kms,
  aws_s3 as s3,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { accessLogsBucket, privateBucket } from './buckets.ts';
import { AUDIT_EXPORT_PREFIX, AUDIT_PARTITION_COLUMN, AUDIT_PROJECTION_START } from '../../functions/domain/auditExport.ts';

/** The Glue database and table, and the Athena workgroup, by name (docs/runbooks/audit.md queries them). */
export const AUDIT_GLUE_DATABASE = 'kmod_audit';
export const AUDIT_GLUE_TABLE = 'events';
export const AUDIT_WORKGROUP = 'kmod-audit';
/** Athena writes query results under this prefix of the export bucket. */
export const ATHENA_RESULTS_PREFIX = 'athena-results/';
/**
 * The bucket's name: one per account and Region, as the functions' names are (kmod-<id>). Named,
 * so that the export function's environment and IAM can name it without a reference into this
 * nested stack (and operators know where to look).
 */
export const AUDIT_EXPORT_BUCKET_NAME = `kmod-audit-export-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
/** Days until an exported day moves to Glacier Instant Retrieval (still read by Athena, cheaper to keep). */
export const AUDIT_EXPORT_INSTANT_RETRIEVAL_AFTER_DAYS = 90;

/**
 * The table's columns: the attributes every audit item has (functions/lib/audit.ts), the count and
 * latest refusal of aggregated denials (functions/lib/securityEvents.ts), the TTL, and the hash
 * chain's fields (functions/domain/auditChain.ts). `details`
 * and `latest` are JSON objects in the export, read as their JSON text (json_extract in SQL).
 */
export const AUDIT_COLUMNS: { name: string; type: string; comment: string }[] = [
  { name: 'subject', type: 'string', comment: 'What the event is about, e.g. deployment#<executionId>' },
  { name: 'sk', type: 'string', comment: 'Sort key: ISO time, then a random suffix' },
  { name: 'at', type: 'string', comment: 'ISO 8601 time (from_iso8601_timestamp(at))' },
  { name: 'category', type: 'string', comment: 'deployment, stage, node, module, approval, security or config' },
  { name: 'action', type: 'string', comment: 'What happened, e.g. approval.granted' },
  { name: 'actor', type: 'string', comment: 'A user id, system:<component>, or ip:<address> for refused callers' },
  { name: 'details', type: 'string', comment: 'JSON object (json_extract_scalar(details, $.field))' },
  { name: 'traceId', type: 'string', comment: 'X-Ray trace id of the request or task' },
  { name: 'count', type: 'bigint', comment: 'Security denials: refusals counted in the window' },
  { name: 'latest', type: 'string', comment: 'Security denials: the latest refusal, JSON object' },
  { name: 'expiresAt', type: 'bigint', comment: 'Epoch seconds when the table forgets the event (TTL)' },
  // The hash chain (functions/domain/auditChain.ts, docs/adr/0032-tamper-evident-audit.md), so SQL
  // can follow a chain and find gaps; recomputing a hash needs the canonical JSON (`kmod audit verify`).
  { name: 'chain', type: 'string', comment: 'Hash chain: <subject>|<category>' },
  { name: 'seq', type: 'bigint', comment: 'Hash chain: position in the chain, 1, 2, 3…' },
  { name: 'prevHash', type: 'string', comment: "Hash chain: the previous event's hash (64 zeros for seq 1)" },
  { name: 'prevSk', type: 'string', comment: "Hash chain: the previous event's sort key" },
  { name: 'prevExpiresAt', type: 'bigint', comment: "Hash chain: the previous event's TTL (expired by retention, not deleted)" },
  { name: 'hash', type: 'string', comment: 'Hash chain: SHA-256 of the canonical JSON of the event without hash and its mutable fields' },
  { name: 'mutable', type: 'array<string>', comment: 'Hash chain: attributes left out of the hash (a denial window: count, latest)' },
];

export interface AuditExportProps {
  /** Days an exported day is kept (the bucket's lifecycle), at least the longest table retention. */
  retentionDays: number;
}

export class AuditExport extends NestedStack {
  readonly bucket: s3.Bucket;
  readonly key: kms.Key;
  readonly database: glue.CfnDatabase;
  readonly table: glue.CfnTable;
  readonly workgroup: athena.CfnWorkGroup;

  constructor(scope: Construct, id: string, props: AuditExportProps) {
    super(scope, id, { description: 'kmod-orchestrator: audit trail export to S3 (JSON Lines, daily partitions), Glue table, Athena workgroup' });
    this.key = new kms.Key(this, 'AuditExportKey', {
      enableKeyRotation: true,
      description: 'kmod-orchestrator audit export (S3 objects and Athena results)',
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const accessLogs = accessLogsBucket(this, 'AuditExportAccessLogs', {
      lifecycleRules: [{ id: 'ExpireAccessLogs', expiration: Duration.days(props.retentionDays) }],
    });
    // Versioned: every rewrite of a day keeps the one before, so an edited export shows in its versions.
    this.bucket = privateBucket(this, 'AuditExportBucket', {
      bucketName: AUDIT_EXPORT_BUCKET_NAME,
      encryptionKey: this.key,
      bucketKeyEnabled: true,
      accessLogs,
      accessLogsPrefix: 'audit-export/',
      lifecycleRules: [
        {
          id: 'AuditRetention',
          prefix: `${AUDIT_EXPORT_PREFIX}/`,
          transitions: [{ storageClass: s3.StorageClass.GLACIER_INSTANT_RETRIEVAL, transitionAfter: Duration.days(AUDIT_EXPORT_INSTANT_RETRIEVAL_AFTER_DAYS) }],
          expiration: Duration.days(props.retentionDays),
          // The hourly rewrites of a day: the versions replaced are kept long enough to compare.
          noncurrentVersionExpiration: Duration.days(30),
        },
        { id: 'AthenaResults', prefix: ATHENA_RESULTS_PREFIX, expiration: Duration.days(30), noncurrentVersionExpiration: Duration.days(1) },
        { id: 'AbortIncompleteUploads', abortIncompleteMultipartUploadAfter: Duration.days(1) },
      ],
    });

    this.database = new glue.CfnDatabase(this, 'AuditDatabase', {
      catalogId: Stack.of(this).account,
      databaseInput: { name: AUDIT_GLUE_DATABASE, description: 'kmod-orchestrator audit trail export (docs/runbooks/audit.md)' },
    });
    const location = `s3://${this.bucket.bucketName}/${AUDIT_EXPORT_PREFIX}/`;
    this.table = new glue.CfnTable(this, 'AuditTable', {
      catalogId: Stack.of(this).account,
      databaseName: AUDIT_GLUE_DATABASE,
      tableInput: {
        name: AUDIT_GLUE_TABLE,
        description: 'Audit events, one JSON document per line, one partition per UTC day',
        tableType: 'EXTERNAL_TABLE',
        partitionKeys: [{ name: AUDIT_PARTITION_COLUMN, type: 'string', comment: 'UTC day, YYYY-MM-DD' }],
        parameters: {
          classification: 'json',
          EXTERNAL: 'TRUE',
          'projection.enabled': 'true',
          [`projection.${AUDIT_PARTITION_COLUMN}.type`]: 'date',
          [`projection.${AUDIT_PARTITION_COLUMN}.format`]: 'yyyy-MM-dd',
          [`projection.${AUDIT_PARTITION_COLUMN}.range`]: `${AUDIT_PROJECTION_START},NOW`,
          [`projection.${AUDIT_PARTITION_COLUMN}.interval`]: '1',
          [`projection.${AUDIT_PARTITION_COLUMN}.interval.unit`]: 'DAYS',
          'storage.location.template': `${location}${AUDIT_PARTITION_COLUMN}=\${${AUDIT_PARTITION_COLUMN}}/`,
        },
        storageDescriptor: {
          location,
          columns: AUDIT_COLUMNS,
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          // The Hive JSON SerDe (Athena's recommendation over OpenX, whose results can be non-deterministic).
          serdeInfo: { serializationLibrary: 'org.apache.hive.hcatalog.data.JsonSerDe' },
        },
      },
    });
    this.table.addResourceDependency(this.database);

    this.workgroup = new athena.CfnWorkGroup(this, 'AuditWorkGroup', {
      name: AUDIT_WORKGROUP,
      description: 'kmod-orchestrator: SQL over the audit export (docs/runbooks/audit.md)',
      state: 'ENABLED',
      recursiveDeleteOption: false,
      workGroupConfiguration: {
        // Everyone's queries land in the bucket, encrypted with the export's key, whatever their client says.
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        // A runaway scan stops at 10 GB (years of audit events are far less).
        bytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        engineVersion: { selectedEngineVersion: 'AUTO' },
        resultConfiguration: {
          outputLocation: `s3://${this.bucket.bucketName}/${ATHENA_RESULTS_PREFIX}`,
          encryptionConfiguration: { encryptionOption: 'SSE_KMS', kmsKey: this.key.keyArn },
        },
      },
    });
  }

  /** The bucket's name, where the export function runs (its environment). */
  readonly bucketName = AUDIT_EXPORT_BUCKET_NAME;

  /**
   * What the export function may do: put objects under audit/ (nothing else in the bucket: no
   * read, no delete, no listing) and have the key make their data keys.
   */
  grantExport(grantee: iam.IGrantable): void {
    grantee.grantPrincipal.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:PutObject'], resources: [`arn:${Aws.PARTITION}:s3:::${AUDIT_EXPORT_BUCKET_NAME}/${AUDIT_EXPORT_PREFIX}/*`] }),
    );
    grantee.grantPrincipal.addToPrincipalPolicy(new iam.PolicyStatement({ actions: ['kms:GenerateDataKey'], resources: [this.key.keyArn] }));
  }
}
