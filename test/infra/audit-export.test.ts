/**
 * The audit export in the CDK app (infra/constructs/auditExport.ts, docs/adr/0033-audit-retention-and-export.md):
 * the bucket (encrypted with its own key, TLS only, no public access, versioned, access-logged, its
 * lifecycle), the hourly schedule of ExportAudit, that function's least privilege, the Glue table's
 * columns and partition projection, the Athena workgroup, the retention settings every audit
 * writer gets, and cdk-nag.
 */
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, functionTables, type FunctionId } from '../../functions/catalog.ts';
import { chainKey, linkEvents } from '../../functions/domain/auditChain.ts';
import { DEFAULT_AUDIT_RETENTION_DAYS } from '../../functions/domain/auditRetention.ts';
import { auditItem } from '../../functions/lib/audit.ts';
import { denialWrites } from '../../functions/lib/securityEvents.ts';
import { AUDIT_COLUMNS, AUDIT_GLUE_DATABASE, AUDIT_GLUE_TABLE, AUDIT_WORKGROUP } from '../../infra/constructs/auditExport.ts';
import { ContextError, type OrchestratorStack, settingsFromContext } from '../../infra/stack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any>; DeletionPolicy?: string };

const synth = synthStack;

let stack: OrchestratorStack;
let parent: Record<string, Resource>;
let nested: Record<string, Resource>;
/** Nested-stack output name → what it is, as a logical id of the nested template. */
let outputs: Record<string, unknown>;

beforeAll(() => {
  stack = synth({ trustedRootsPem: 'PEM', auditRetentionDays: '{"default":400,"node":30,"security":2555}' });
  parent = Template.fromStack(stack).toJSON().Resources;
  const nestedTemplate = Template.fromStack(stack.auditExport).toJSON();
  nested = nestedTemplate.Resources;
  outputs = Object.fromEntries(Object.entries(nestedTemplate.Outputs as Record<string, { Value: unknown }>).map(([k, v]) => [k, v.Value]));
}, 180_000);

const ofType = (resources: Record<string, Resource>, type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalIdOf = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
const nestedIdOf = (c: IConstruct) => stack.auditExport.getLogicalId(c.node.defaultChild as CfnElement);
const fnResource = (id: FunctionId) => parent[logicalIdOf(stack.functions[id]!)];
/** The value a main-stack property takes from the nested stack (Fn::GetAtt [<nested>, Outputs.<name>]), as the nested template's own expression. */
function fromNested(v: unknown): unknown {
  const att = (v as { 'Fn::GetAtt'?: [string, string] })['Fn::GetAtt'];
  if (!att?.[1].startsWith('Outputs.')) return v;
  return outputs[att[1].slice('Outputs.'.length)];
}
/** Every statement of a function's role policies. */
function statementsOf(id: FunctionId) {
  const role = (fnResource(id).Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
  return [...ofType(parent, 'AWS::IAM::Policy'), ...ofType(parent, 'AWS::IAM::ManagedPolicy')]
    .filter(([, p]) => JSON.stringify(p.Properties.Roles ?? []).includes(`"${role}"`))
    .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown; Effect: string }[]);
}

describe('the export bucket', () => {
  it('is encrypted with the export’s own rotating key, versioned, access-logged, with every public access blocked', () => {
    const bucket = nested[nestedIdOf(stack.auditExport.bucket)];
    expect(bucket.Properties.BucketEncryption.ServerSideEncryptionConfiguration).toEqual([
      {
        ServerSideEncryptionByDefault: { SSEAlgorithm: 'aws:kms', KMSMasterKeyID: { 'Fn::GetAtt': [nestedIdOf(stack.auditExport.key), 'Arn'] } },
        BucketKeyEnabled: true,
      },
    ]);
    expect(nested[nestedIdOf(stack.auditExport.key)].Properties.EnableKeyRotation).toBe(true);
    expect(bucket.Properties.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(bucket.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect(bucket.Properties.LoggingConfiguration.DestinationBucketName).toBeDefined();
    // Retained when the stack is deleted: the archive outlives the deployment.
    expect(bucket.DeletionPolicy).toBe('Retain');
  });

  it('refuses every request not made over TLS', () => {
    const [[, policy]] = ofType(nested, 'AWS::S3::BucketPolicy').filter(([, p]) => p.Properties.Bucket.Ref === nestedIdOf(stack.auditExport.bucket));
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 's3:*', Condition: { Bool: { 'aws:SecureTransport': 'false' } }, Principal: { AWS: '*' } }),
    );
  });

  it('keeps an exported day 7 years (Glacier Instant Retrieval after 90 days), Athena results 30 days', () => {
    const rules = nested[nestedIdOf(stack.auditExport.bucket)].Properties.LifecycleConfiguration.Rules as Record<string, any>[];
    expect(rules.find((r) => r.Id === 'AuditRetention')).toEqual({
      Id: 'AuditRetention',
      Prefix: 'audit/',
      Status: 'Enabled',
      ExpirationInDays: 2557,
      NoncurrentVersionExpiration: { NoncurrentDays: 30 },
      Transitions: [{ StorageClass: 'GLACIER_IR', TransitionInDays: 90 }],
    });
    expect(rules.find((r) => r.Id === 'AthenaResults')).toMatchObject({ Prefix: 'athena-results/', ExpirationInDays: 30, Status: 'Enabled' });
  });
});

describe('the export function', () => {
  it('runs ExportAudit every hour', () => {
    const rules = ofType(parent, 'AWS::Events::Rule').filter(([, r]) =>
      JSON.stringify(r.Properties.Targets ?? []).includes(`"${logicalIdOf(stack.functions.ExportAudit!)}"`),
    );
    expect(rules.map(([, r]) => r.Properties.ScheduleExpression)).toEqual(['rate(1 hour)']);
  });

  it('is the only function with the bucket, and may only put objects under audit/ and make their data keys', () => {
    // The bucket is named per account and Region: the function names it without a reference into the nested stack.
    const name = { 'Fn::Join': ['', ['kmod-audit-export-', { Ref: 'AWS::AccountId' }, '-', { Ref: 'AWS::Region' }]] };
    expect(nested[nestedIdOf(stack.auditExport.bucket)].Properties.BucketName).toEqual(name);
    expect(fnResource('ExportAudit').Properties.Environment.Variables.AUDIT_EXPORT_BUCKET).toEqual(name);
    for (const id of Object.keys(FUNCTIONS) as FunctionId[])
      if (id !== 'ExportAudit' && stack.functions[id]) expect(fnResource(id).Properties.Environment.Variables.AUDIT_EXPORT_BUCKET, id).toBeUndefined();
    const statements = statementsOf('ExportAudit');
    const s3 = statements.filter((s) => [s.Action].flat().some((a) => a.startsWith('s3:')));
    expect(s3).toHaveLength(1);
    expect(s3[0].Action).toBe('s3:PutObject');
    expect(s3[0].Resource).toEqual({
      'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':s3:::kmod-audit-export-', { Ref: 'AWS::AccountId' }, '-', { Ref: 'AWS::Region' }, '/audit/*']],
    });
    const kms = statements.filter((s) => [s.Action].flat().includes('kms:GenerateDataKey'));
    expect(kms.map((s) => fromNested(s.Resource))).toContainEqual({ 'Fn::GetAtt': [nestedIdOf(stack.auditExport.key), 'Arn'] });
    // Reads the Audit table, writes no table.
    expect(functionTables('ExportAudit')).toEqual({ audit: 'read' });
    const writes = statements.filter((s) => [s.Action].flat().some((a) => /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)$/.test(a)));
    expect(writes).toEqual([]);
  });

  it('gives every function that writes audit events the retention per category from the context', () => {
    for (const id of Object.keys(FUNCTIONS) as FunctionId[]) {
      if (!stack.functions[id]) continue;
      const env = fnResource(id).Properties.Environment.Variables as Record<string, string>;
      const writes = functionTables(id).audit === 'write';
      expect(env.AUDIT_RETENTION_DAYS_SECURITY, id).toBe(writes ? '2555' : undefined);
      expect(env.AUDIT_RETENTION_DAYS_NODE, id).toBe(writes ? '30' : undefined);
      expect(env.AUDIT_RETENTION_DAYS_APPROVAL, id).toBe(writes ? '400' : undefined);
    }
  });
});

describe('Glue and Athena', () => {
  it('a Glue table over audit/ with the JSON SerDe, the event columns and partition projection on dt', () => {
    const [[, db]] = ofType(nested, 'AWS::Glue::Database');
    expect(db.Properties.DatabaseInput.Name).toBe(AUDIT_GLUE_DATABASE);
    const [[, table]] = ofType(nested, 'AWS::Glue::Table');
    const input = table.Properties.TableInput;
    expect(table.Properties.DatabaseName).toBe(AUDIT_GLUE_DATABASE);
    expect(input.Name).toBe(AUDIT_GLUE_TABLE);
    expect(input.TableType).toBe('EXTERNAL_TABLE');
    expect(input.StorageDescriptor.SerdeInfo.SerializationLibrary).toBe('org.apache.hive.hcatalog.data.JsonSerDe');
    expect(input.StorageDescriptor.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
    expect(input.StorageDescriptor.Columns.map((c: { Name: string; Type: string }) => [c.Name, c.Type])).toEqual(AUDIT_COLUMNS.map((c) => [c.name, c.type]));
    expect(input.StorageDescriptor.Columns.map((c: { Name: string }) => c.Name)).toEqual(
      expect.arrayContaining(['subject', 'sk', 'at', 'category', 'action', 'actor', 'details', 'traceId', 'expiresAt']),
    );
    // The chain fields every exported event carries (functions/domain/auditChain.ts), with the types SQL compares them as.
    const types = Object.fromEntries(input.StorageDescriptor.Columns.map((c: { Name: string; Type: string }) => [c.Name, c.Type]));
    expect(types).toMatchObject({
      chain: 'string',
      seq: 'bigint',
      prevHash: 'string',
      prevSk: 'string',
      prevExpiresAt: 'bigint',
      hash: 'string',
      mutable: 'array<string>',
    });
    expect(input.PartitionKeys).toEqual([{ Name: 'dt', Type: 'string', Comment: 'UTC day, YYYY-MM-DD' }]);
    const bucket = { Ref: nestedIdOf(stack.auditExport.bucket) };
    expect(input.StorageDescriptor.Location).toEqual({ 'Fn::Join': ['', ['s3://', bucket, '/audit/']] });
    expect(input.Parameters).toEqual({
      classification: 'json',
      EXTERNAL: 'TRUE',
      'projection.enabled': 'true',
      'projection.dt.type': 'date',
      'projection.dt.format': 'yyyy-MM-dd',
      'projection.dt.range': '2026-01-01,NOW',
      'projection.dt.interval': '1',
      'projection.dt.interval.unit': 'DAYS',
      // Athena fills ${dt} in from the projection.
      // biome-ignore lint/suspicious/noTemplateCurlyInString: Athena's placeholder, not a template
      'storage.location.template': { 'Fn::Join': ['', ['s3://', bucket, '/audit/dt=${dt}/']] },
    });
  });

  it('has a column for every attribute an exported event carries: chained events and denial windows', () => {
    process.env.AUDIT_TABLE ??= 'kmod-Audit';
    const event = auditItem({ subject: 'deployment#dep-x', category: 'deployment', action: 'deployment.started', actor: 'u', details: {}, traceId: 't' }).Item;
    const denial = denialWrites({ action: 'access.denied', sourceIp: '203.0.113.7', method: 'GET', path: '/api/v1/nodes' }).create.Item;
    // Two events of one chain (the second has prevSk/prevExpiresAt), and a denial window on its own chain.
    const linked = [
      ...linkEvents(chainKey(event.subject, event.category), undefined, [event, { ...event, sk: `${event.sk}1` }]).items,
      ...linkEvents(chainKey(denial.subject, denial.category), undefined, [denial]).items,
    ];
    const columns = new Set(AUDIT_COLUMNS.map((c) => c.name));
    const attributes = new Set(linked.flatMap((e) => Object.keys(e)));
    expect([...attributes].filter((a) => !columns.has(a))).toEqual([]);
    expect([...attributes]).toEqual(expect.arrayContaining(['chain', 'seq', 'prevHash', 'prevSk', 'prevExpiresAt', 'hash', 'mutable']));
  });

  it('an Athena workgroup that enforces encrypted results in the bucket and a scan limit', () => {
    const [[, wg]] = ofType(nested, 'AWS::Athena::WorkGroup');
    expect(wg.Properties.Name).toBe(AUDIT_WORKGROUP);
    const conf = wg.Properties.WorkGroupConfiguration;
    expect(conf.EnforceWorkGroupConfiguration).toBe(true);
    expect(conf.BytesScannedCutoffPerQuery).toBe(10 * 1024 ** 3);
    expect(conf.ResultConfiguration).toEqual({
      OutputLocation: { 'Fn::Join': ['', ['s3://', { Ref: nestedIdOf(stack.auditExport.bucket) }, '/athena-results/']] },
      EncryptionConfiguration: { EncryptionOption: 'SSE_KMS', KmsKey: { 'Fn::GetAtt': [nestedIdOf(stack.auditExport.key), 'Arn'] } },
    });
  });
});

describe('settings', () => {
  it('defaults: each category its own retention, the export 7 years', () => {
    const s = settingsFromContext((k) => ({ trustedRootsPem: 'PEM' })[k as 'trustedRootsPem']);
    expect(s.auditRetention).toEqual(DEFAULT_AUDIT_RETENTION_DAYS);
    expect(s.auditExportRetentionDays).toBe(2557);
  });

  it('takes one number for every category, or a map (cdk.json object or JSON text)', () => {
    const ctx = (extra: Record<string, unknown>) => settingsFromContext((k) => ({ trustedRootsPem: 'PEM', ...extra })[k]);
    expect(new Set(Object.values(ctx({ auditRetentionDays: 500 }).auditRetention))).toEqual(new Set([500]));
    expect(ctx({ auditRetentionDays: { security: 2000 } }).auditRetention.security).toBe(2000);
    expect(ctx({ auditRetentionDays: '{"config":1500}' }).auditRetention.config).toBe(1500);
  });

  it.each([
    [{ auditRetentionDays: '0' }, /auditRetentionDays/],
    [{ auditRetentionDays: '{"securty":100}' }, /AUDIT_RETENTION_DAYS_SECURTY names no audit category/],
    [{ auditRetentionDays: '{"node":1.5}' }, /auditRetentionDays/],
    [{ auditExportRetentionDays: '365' }, /at least the longest audit retention \(1095\)/],
  ])('refuses %j with a ContextError', (extra, message) => {
    const get = (k: string) => ({ trustedRootsPem: 'PEM', ...extra })[k as 'trustedRootsPem'];
    expect(() => settingsFromContext(get)).toThrow(ContextError);
    expect(() => settingsFromContext(get)).toThrow(message);
  });
});

describe('the stacks', () => {
  it('are cdk-nag (AwsSolutions) clean, the export’s nested stack included', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    expect(stack.node.findAll().some((c) => c === stack.auditExport.table)).toBe(true);
  });
});
