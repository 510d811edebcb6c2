import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { IConstruct } from 'constructs';
import { AwsSolutionsChecks } from 'cdk-nag';
import { EXECUTION_STATUS_RULES, FUNCTIONS, ROUTES, STATE_MACHINES, WEBSOCKET, type FunctionSpec } from '../../functions/catalog.ts';
import { ROLES } from '../../functions/domain/roles.ts';
import { TABLES } from '../../functions/lib/tables.ts';
import { OrchestratorStack, settingsFromContext } from '../../infra/stack.ts';
import { SUBSCRIPTION_ACTIONS } from '../../infra/constructs/functions.ts';
import { synthStack } from './synth.ts';

let stack: OrchestratorStack;
let template: Template;
let assemblyDir: string;
type Resource = { Type: string; Properties: Record<string, any> };
let resources: Record<string, Resource>;

// The real synth bundles every function with esbuild: about 90 s alone on 2 cores, far more while
// other test files share them (a CI run under load took over 180 s).
beforeAll(() => {
  const app = new App();
  const context: Record<string, string> = {
    trustedRootsPem: 'PEM',
    agentVpcId: 'vpc-0123456789abcdef0',
    agentSubnetIds: 'subnet-aaaa,subnet-bbbb',
    agentAvailabilityZones: 'us-east-1a,us-east-1b',
    domainName: 'deploy.example.com',
    certificateArn: 'arn:aws:acm:us-east-1:123456789012:certificate/0000',
    etcdEndpoints: 'http://10.0.0.5:2379',
    revocationListUrls: 'http://pki.example.com/root.crl',
    wafRateLimitPerAddress: '2000',
    wafRateWindowSeconds: '300',
  };
  stack = new OrchestratorStack(
    app,
    'KmodOrchestrator',
    settingsFromContext((k) => context[k]),
  );
  template = Template.fromStack(stack);
  assemblyDir = app.synth().directory;
  resources = template.toJSON().Resources;
}, 420_000);

const ofType = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalIdOf = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
/** A catalog function of the stack; every one exists here (the context includes etcdEndpoints). */
function fnOf(id: keyof typeof FUNCTIONS) {
  const fn = stack.functions[id];
  if (!fn) throw new Error(`the stack has no function ${id}`);
  return fn;
}
/** Logical ids a template value refers to (Ref and Fn::GetAtt, at any depth). */
function logicalIdsIn(value: unknown): Set<string> {
  const ids = new Set<string>();
  const walk = (v: unknown): void => {
    if (Array.isArray(v)) v.forEach(walk);
    else if (v && typeof v === 'object') {
      for (const [k, inner] of Object.entries(v)) {
        if (k === 'Ref' && typeof inner === 'string') ids.add(inner);
        else if (k === 'Fn::GetAtt' && Array.isArray(inner)) ids.add(String(inner[0]));
        else walk(inner);
      }
    }
  };
  walk(value);
  return ids;
}

describe('the synthesized template', () => {
  it('carries each ASL file unchanged as its state machine definition, with every placeholder substituted', () => {
    const machines = ofType('AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(Object.keys(STATE_MACHINES).length);
    for (const [id, spec] of Object.entries(STATE_MACHINES)) {
      const [, machine] = machines.find(([, r]) => r.Properties.StateMachineName === `kmod-${id}`)!;
      const text = readFileSync(spec.file, 'utf8');
      // DefinitionBody.fromFile ships the file as an asset; the asset deployed is the file, byte for byte.
      const key = machine.Properties.DefinitionS3Location.Key as string;
      expect(readFileSync(join(assemblyDir, `asset.${key}`), 'utf8')).toBe(text);
      const placeholders = new Set([...text.matchAll(/\$\{([A-Za-z0-9_]+)\}/g)].map((m) => m[1]));
      expect(new Set(Object.keys(machine.Properties.DefinitionSubstitutions))).toEqual(placeholders);
      expect(machine.Properties.StateMachineType).toBe('STANDARD');
    }
  });

  it('exposes every catalog route, with the JWT authorizer exactly where auth is required', () => {
    const methods = ofType('AWS::ApiGateway::Method').filter(([, r]) => r.Properties.HttpMethod !== 'OPTIONS');
    const paths = new Map<string, string>();
    for (const [logical, r] of ofType('AWS::ApiGateway::Resource')) paths.set(logical, r.Properties.PathPart);
    const parentOf = new Map(ofType('AWS::ApiGateway::Resource').map(([logical, r]) => [logical, r.Properties.ParentId?.Ref as string | undefined]));
    const fullPath = (logical: string | undefined): string => (logical && paths.has(logical) ? `${fullPath(parentOf.get(logical))}/${paths.get(logical)}` : '');
    const seen = methods.map(([, r]) => ({
      key: `${r.Properties.HttpMethod} ${fullPath(r.Properties.ResourceId?.Ref)}`,
      auth: r.Properties.AuthorizationType,
      integration: r.Properties.Integration,
    }));
    expect(seen.map((s) => s.key).sort()).toEqual(ROUTES.map((r) => `${r.method} ${r.path}`).sort());
    for (const route of ROUTES) {
      const method = seen.find((s) => s.key === `${route.method} ${route.path}`)!;
      expect(method.auth, `${route.method} ${route.path}`).toBe(route.auth ? 'CUSTOM' : 'NONE');
      // Lambda proxy integration to the route's own function.
      expect(method.integration.Type).toBe('AWS_PROXY');
      expect(logicalIdsIn(method.integration.Uri)).toContain(logicalIdOf(stack.functions[route.fn]));
    }
  });

  it('creates every table on demand with point-in-time recovery, TTL and encryption', () => {
    const tables = ofType('AWS::DynamoDB::Table');
    expect(tables).toHaveLength(Object.keys(TABLES).length);
    for (const [, t] of tables) {
      expect(t.Properties.BillingMode).toBe('PAY_PER_REQUEST');
      expect(t.Properties.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(t.Properties.TimeToLiveSpecification).toEqual({ AttributeName: 'expiresAt', Enabled: true });
      expect(t.Properties.SSESpecification).toMatchObject({ SSEEnabled: true, SSEType: 'KMS' });
    }
  });

  it('keeps what a restore needs (docs/runbooks/backup-restore.md): every table recoverable to a point in time and outliving the stack, artifact versions kept', () => {
    expect(Object.keys(stack.tables).sort()).toEqual(Object.keys(TABLES).sort());
    for (const [key, table] of Object.entries(stack.tables)) {
      const t = template.toJSON().Resources[logicalIdOf(table)];
      expect(t.Properties.PointInTimeRecoverySpecification, key).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(t.Properties.DeletionProtectionEnabled, key).toBe(true);
      expect([t.DeletionPolicy, t.UpdateReplacePolicy], key).toEqual(['Retain', 'Retain']);
    }
    const artifacts = template.toJSON().Resources[template.toJSON().Outputs.ArtifactBucketName.Value.Ref];
    expect(artifacts.Properties.VersioningConfiguration).toEqual({ Status: 'Enabled' });
    expect([artifacts.DeletionPolicy, artifacts.UpdateReplacePolicy]).toEqual(['Retain', 'Retain']);
  });

  it('runs every function on nodejs22.x, with tracing, and one function per catalog entry', () => {
    const fns = ofType('AWS::Lambda::Function').filter(([, r]) => String(r.Properties.FunctionName ?? '').startsWith('kmod-'));
    expect(fns).toHaveLength(Object.keys(FUNCTIONS).length);
    for (const [, f] of fns) {
      expect(f.Properties.Runtime).toBe('nodejs22.x');
      expect(f.Properties.TracingConfig).toEqual({ Mode: 'Active' });
    }
  });

  it('grants no wildcard IAM actions', () => {
    const statements = ofType('AWS::IAM::Policy').flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]);
    expect(statements.length).toBeGreaterThan(20);
    const actions = statements.flatMap((s) => (Array.isArray(s.Action) ? s.Action : [s.Action]));
    expect(actions.filter((a) => a === '*' || /^[a-z0-9-]+:\*$/.test(a))).toEqual([]);
  });

  it("grants Resource '*' only for X-Ray, log delivery and subscription changes (the one broad IAM5 acknowledgement relies on it)", () => {
    const allowed = new Set([
      'xray:PutTraceSegments',
      'xray:PutTelemetryRecords',
      'xray:GetSamplingRules',
      'xray:GetSamplingTargets',
      'logs:CreateLogDelivery',
      'logs:GetLogDelivery',
      'logs:UpdateLogDelivery',
      'logs:DeleteLogDelivery',
      'logs:ListLogDeliveries',
      'logs:PutResourcePolicy',
      'logs:DescribeResourcePolicies',
      'logs:DescribeLogGroups',
      // Granted by CDK with every Secrets Manager rotation schedule; the API has no resource-level permissions.
      'secretsmanager:GetRandomPassword',
      // Granted by CDK with a DynamoDB stream event source (WsEvents); ListStreams has no resource-level permissions.
      'dynamodb:ListStreams',
      // The email-subscription sync (SUBSCRIPTION_ACTIONS): SNS authorises these on subscriptions, which have no ARN until they exist.
      ...SUBSCRIPTION_ACTIONS,
    ]);
    const statements = ofType('AWS::IAM::Policy').flatMap(
      ([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[],
    );
    const onAnything = statements.filter((s) => (Array.isArray(s.Resource) ? s.Resource : [s.Resource]).includes('*'));
    expect(onAnything.length).toBeGreaterThan(0);
    for (const s of onAnything) for (const a of Array.isArray(s.Action) ? s.Action : [s.Action]) expect(allowed, a).toContain(a);
  });

  it('gives each function the table names of exactly the tables it is granted', () => {
    const tableIds = new Map(Object.entries(stack.tables).map(([, t]) => [logicalIdOf(t), t]));
    const envVars = new Set<string>(Object.values(TABLES).map((t) => t.envVar));
    for (const [id, fn] of Object.entries(stack.functions)) {
      const props = resources[logicalIdOf(fn)].Properties;
      const named = Object.entries(props.Environment.Variables as Record<string, unknown>)
        .filter(([k]) => envVars.has(k))
        .flatMap(([, v]) => [...logicalIdsIn(v)]);
      const role = logicalIdOf(fn.role!);
      const granted = ofType('AWS::IAM::Policy')
        .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role))
        .flatMap(([, p]) => [...logicalIdsIn(p.Properties.PolicyDocument)])
        .filter((l) => tableIds.has(l));
      expect(new Set(named), id).toEqual(new Set(granted));
    }
  });

  it('bootstraps each key set as {"keys":[{"id","secret"}]} from a generated seed', () => {
    for (const name of ['AgentKeys', 'ApprovalLinkKeys']) {
      const [, secret] = ofType('AWS::SecretsManager::Secret').find(([, r]) => String(r.Properties.Description).startsWith(`${name}: {`))!;
      const [seedId] = ofType('AWS::SecretsManager::Secret').find(([, r]) => String(r.Properties.Description).startsWith(`${name}: the generated`))!;
      // Render the Fn::Join as CloudFormation would, with the seed's dynamic reference resolved.
      const [sep, parts] = secret.Properties.SecretString['Fn::Join'] as [string, unknown[]];
      const text = parts.map((p) => (typeof p === 'string' ? p : (p as { Ref?: string }).Ref === seedId ? 'SEED' : '?')).join(sep);
      expect(JSON.parse(text.replace('{{resolve:secretsmanager:SEED:SecretString:::}}', 'generated'))).toEqual({ keys: [{ id: 'k1', secret: 'generated' }] });
    }
  });

  it('answers API Gateway errors as JSON { code, message }, with WWW-Authenticate on 401', () => {
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'UNAUTHORIZED',
      StatusCode: '401',
      ResponseParameters: { 'gatewayresponse.header.WWW-Authenticate': '\'Bearer realm="kmod-orchestrator", error="invalid_token"\'' },
    });
  });

  it('serves the custom domain with TLS 1.2 or newer, and requires MFA, strong passwords and threat protection', () => {
    template.hasResourceProperties('AWS::ApiGateway::DomainName', { DomainName: 'deploy.example.com', SecurityPolicy: 'TLS_1_2' });
    template.hasResourceProperties('AWS::Cognito::UserPool', {
      MfaConfiguration: 'ON',
      UserPoolAddOns: { AdvancedSecurityMode: 'ENFORCED' }, // threat protection
      Policies: { PasswordPolicy: { MinimumLength: 14, RequireNumbers: true, RequireSymbols: true, RequireUppercase: true, RequireLowercase: true } },
    });
  });

  it("runs exactly the agent-calling functions in the agents' private subnets", () => {
    for (const [id, spec] of Object.entries(FUNCTIONS)) {
      const [, fn] = ofType('AWS::Lambda::Function').find(([, r]) => r.Properties.FunctionName === `kmod-${id}`)!;
      if ('callsAgents' in spec && spec.callsAgents) expect(fn.Properties.VpcConfig?.SubnetIds, id).toEqual(['subnet-aaaa', 'subnet-bbbb']);
      else expect(fn.Properties.VpcConfig, id).toBeUndefined();
    }
  });

  it('puts AWS WAF in front of the API stage: a rate-based rule per address answering 429, a body-size limit, the managed common and known-bad-inputs sets (issue 15 defect 4)', () => {
    const [[aclId, acl]] = ofType('AWS::WAFv2::WebACL');
    expect(acl.Properties).toMatchObject({
      Scope: 'REGIONAL',
      DefaultAction: { Allow: {} },
      AssociationConfig: { RequestBody: { API_GATEWAY: { DefaultSizeInspectionLimit: 'KB_64' } } },
      CustomResponseBodies: {
        rateLimited: { ContentType: 'APPLICATION_JSON', Content: '{"code":"TooManyRequests","message":"too many requests from this address; retry later"}' },
        bodyTooLarge: { ContentType: 'APPLICATION_JSON', Content: '{"code":"RequestTooLarge","message":"the request body exceeds 65536 bytes"}' },
      },
    });
    const rules = Object.fromEntries((acl.Properties.Rules as { Name: string }[]).map((r) => [r.Name, r])) as Record<string, any>;
    expect(Object.keys(rules)).toEqual(['RatePerAddress', 'BodySizeLimit', 'AWSManagedRulesCommonRuleSet', 'AWSManagedRulesKnownBadInputsRuleSet']);
    // Every request counts, refused ones too: the rule has no scope-down statement.
    expect(rules.RatePerAddress.Statement).toEqual({ RateBasedStatement: { AggregateKeyType: 'IP', Limit: 2000, EvaluationWindowSec: 300 } });
    expect(rules.RatePerAddress.Action.Block.CustomResponse).toMatchObject({
      ResponseCode: 429,
      CustomResponseBodyKey: 'rateLimited',
      ResponseHeaders: expect.arrayContaining([
        { Name: 'Retry-After', Value: '300' },
        { Name: 'X-Content-Type-Options', Value: 'nosniff' },
      ]),
    });
    const [size, exempt] = rules.BodySizeLimit.Statement.AndStatement.Statements;
    expect(size.SizeConstraintStatement).toMatchObject({ FieldToMatch: { Body: { OversizeHandling: 'MATCH' } }, ComparisonOperator: 'GT', Size: 65536 });
    expect(exempt.NotStatement.Statement.AndStatement.Statements.map((st: any) => st.ByteMatchStatement.SearchString)).toEqual(['POST', '/api/v1/modules']);
    expect(rules.BodySizeLimit.Action.Block.CustomResponse).toMatchObject({ ResponseCode: 413, CustomResponseBodyKey: 'bodyTooLarge' });
    expect(rules.AWSManagedRulesCommonRuleSet).toMatchObject({
      OverrideAction: { None: {} },
      Statement: {
        ManagedRuleGroupStatement: {
          VendorName: 'AWS',
          Name: 'AWSManagedRulesCommonRuleSet',
          RuleActionOverrides: [
            { Name: 'SizeRestrictions_BODY', ActionToUse: { Count: {} } },
            { Name: 'GenericRFI_BODY', ActionToUse: { Count: {} } },
          ],
        },
      },
    });
    expect(rules.AWSManagedRulesKnownBadInputsRuleSet.Statement.ManagedRuleGroupStatement).toEqual({
      VendorName: 'AWS',
      Name: 'AWSManagedRulesKnownBadInputsRuleSet',
    });
    for (const r of Object.values(rules)) expect(r.VisibilityConfig).toMatchObject({ CloudWatchMetricsEnabled: true, SampledRequestsEnabled: true });

    const [[, association]] = ofType('AWS::WAFv2::WebACLAssociation');
    expect(logicalIdsIn(association.Properties.WebACLArn)).toEqual(new Set([aclId]));
    const stageRefs = [...logicalIdsIn(association.Properties.ResourceArn)].filter((id) => !id.startsWith('AWS::'));
    expect(stageRefs.sort()).toEqual([logicalIdOf(stack.api), logicalIdOf(stack.api.deploymentStage)].sort());
    const [[, logging]] = ofType('AWS::WAFv2::LoggingConfiguration');
    expect(logging.Properties.RedactedFields).toEqual([{ SingleHeader: { Name: 'authorization' } }]);
    const [[, logGroup]] = ofType('AWS::Logs::LogGroup').filter(([, g]) => String(g.Properties.LogGroupName ?? '').startsWith('aws-waf-logs-'));
    expect(logGroup.Properties).toMatchObject({ RetentionInDays: 365, KmsKeyId: expect.anything() });
  });

  it('is cdk-nag (AwsSolutions) clean: every finding is fixed or acknowledged with a reason', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });

  it('keeps the logical IDs the stateful resources had before the stack was split into constructs', () => {
    // A changed logical ID makes CloudFormation replace the resource: a new, empty table, bucket or
    // user pool, new keys. These are the IDs of the flat stack that users have deployed.
    expect(Object.fromEntries(Object.entries(stack.tables).map(([k, t]) => [k, logicalIdOf(t)]))).toEqual({
      deployments: 'Deployments7DB91225',
      idempotency: 'IdempotencyC15CBC33',
      audit: 'Audit3D8ADE0A',
      nodes: 'Nodes66C30434',
      modules: 'Modules4DFF54DF',
      approvals: 'Approvals8537C562',
      users: 'Principals34489DF8',
      rateLimits: 'RateLimits2BA5B3CC',
      settings: 'Settings1CCB6159',
      clusters: 'Clusters3E3F57D1',
      locks: 'LocksF3C5D457',
      targets: 'DeploymentTargets1FE9D628',
      enrolmentTokens: expect.stringMatching(/^EnrolmentTokens[0-9A-F]{8}$/),
      connections: expect.stringMatching(/^Connections[0-9A-F]{8}$/),
      events: expect.stringMatching(/^Events[0-9A-F]{8}$/),
      agentRequests: expect.stringMatching(/^AgentRequests[0-9A-F]{8}$/),
      metrics: expect.stringMatching(/^Metrics[0-9A-F]{8}$/),
    });
    const stateful: Record<string, string[]> = {
      'AWS::KMS::Key': ['DataKey17AFBB84'],
      'AWS::S3::Bucket': ['AccessLogs8B620ECA', 'Artifacts82DD59A1'],
      'AWS::Cognito::UserPool': ['Users0A0EEA89'],
      'AWS::Cognito::UserPoolClient': ['UsersWebClient8EE36D42', 'UsersServiceClient41566C6E'],
      'AWS::SecretsManager::Secret': ['AgentKeysSeed9C51BE8A', 'AgentKeys3E14DDF1', 'ApprovalLinkKeysSeed8EB44D86', 'ApprovalLinkKeysAD9C0A10'],
      'AWS::SNS::Topic': ['ApproverTopicF946C21A', 'NotificationTopicEB7A0DF1'],
    };
    for (const [type, ids] of Object.entries(stateful))
      expect(
        ofType(type)
          .map(([id]) => id)
          .sort(),
        type,
      ).toEqual([...ids].sort());
    // Named resources cannot be replaced in place either (the new one's name is taken).
    for (const id of Object.keys(FUNCTIONS)) expect(logicalIdOf(fnOf(id as keyof typeof FUNCTIONS)), id).toMatch(new RegExp(`^${id}[0-9A-F]{8}$`));
    for (const id of Object.keys(STATE_MACHINES))
      expect(
        ofType('AWS::StepFunctions::StateMachine')
          .map(([l]) => l)
          .some((l) => new RegExp(`^${id}StateMachine[0-9A-F]{8}$`).test(l)),
        id,
      ).toBe(true);
  });

  it('lets exactly the callsAgents and holdsNodeCredentials functions (and the rotator) read the agent key secret, which wraps node keys', () => {
    const [agentKeys] = ofType('AWS::SecretsManager::Secret').find(([, r]) => String(r.Properties.Description).startsWith('AgentKeys: {'))!;
    for (const [id, raw] of Object.entries(FUNCTIONS)) {
      const spec = raw as FunctionSpec;
      const fn = stack.functions[id as keyof typeof FUNCTIONS];
      if (!fn) continue; // created only with its context (DiscoverNodes without etcdEndpoints)
      const role = logicalIdOf(fn.role!);
      const reads = ofType('AWS::IAM::Policy')
        .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
        .some((st) => [st.Action].flat().includes('secretsmanager:GetSecretValue') && logicalIdsIn(st.Resource).has(agentKeys));
      const env = resources[logicalIdOf(fn)].Properties.Environment.Variables as Record<string, unknown>;
      const needs = Boolean(spec.callsAgents || spec.holdsNodeCredentials);
      // The rotation function rewrites the key set itself.
      expect(reads, id).toBe(needs || Boolean(spec.rotatesKeySets));
      expect('AGENT_KEYS_SECRET_ARN' in env && 'AGENT_ALLOWED_HOSTS' in env, id).toBe(needs);
    }
    // The enrolment function holds node credentials but calls no agent: not in the agents' network.
    expect(FUNCTIONS.ApiFleet).toMatchObject({ holdsNodeCredentials: true, tables: { enrolmentTokens: 'write', nodes: 'write', audit: 'write' } });
    expect('callsAgents' in FUNCTIONS.ApiFleet).toBe(false);
  });

  it('creates one Cognito group per domain role, named as the role', () => {
    const groups = ofType('AWS::Cognito::UserPoolGroup');
    expect(groups.map(([, g]) => g.Properties.GroupName).sort()).toEqual([...ROLES].sort());
    // Logical IDs as before (Group<Role>): a renamed group would be dropped with its members.
    expect(groups.map(([id]) => id).sort()).toEqual(ROLES.map((r) => `Group${r}`).sort());
  });

  it('gives the trusted roots, the approver lists and the public URL only to the functions whose catalog flags ask for them', () => {
    for (const [id, raw] of Object.entries(FUNCTIONS)) {
      const spec = raw as FunctionSpec;
      const env = resources[logicalIdOf(fnOf(id as keyof typeof FUNCTIONS))].Properties.Environment.Variables as Record<string, unknown>;
      expect('TRUSTED_ROOTS_PEM' in env, id).toBe(Boolean(spec.verifiesModuleSignatures));
      expect('REVOCATION_LIST_URLS' in env, id).toBe(Boolean(spec.verifiesModuleSignatures));
      expect('PUBLIC_API_URL' in env, id).toBe(Boolean(spec.mailsApprovalLinks));
      // Deciding checks that an approver still is one, and the subscription sync reads the lists too
      // (test/infra/identity-and-subscriptions.test.ts): the approver lists go to those functions as well.
      expect('APPROVERS' in env, id).toBe(Boolean(spec.mailsApprovalLinks || spec.checksApprovers || spec.managesSubscriptions));
    }
    expect(stack.functions.ApiApprovals && (FUNCTIONS.ApiApprovals as FunctionSpec).checksApprovers).toBe(true);
    expect(resources[logicalIdOf(stack.functions.SecurityScan)].Properties.Environment.Variables.TRUSTED_ROOTS_PEM).toBe('PEM');
    expect(resources[logicalIdOf(stack.functions.SecurityScan)].Properties.Environment.Variables.REVOCATION_LIST_URLS).toBe('http://pki.example.com/root.crl');
  });

  it('rotates both key sets with the rotatesKeySets function, and authorizes with the authorizesRequests function', () => {
    const [[rotator]] = Object.entries(FUNCTIONS).filter(([, s]) => (s as FunctionSpec).rotatesKeySets);
    const schedules = ofType('AWS::SecretsManager::RotationSchedule');
    expect(schedules).toHaveLength(2);
    for (const [, s] of schedules)
      expect(logicalIdsIn(s.Properties.RotationLambdaARN)).toEqual(new Set([logicalIdOf(fnOf(rotator as keyof typeof FUNCTIONS))]));
    const [[authorizerFn]] = Object.entries(FUNCTIONS).filter(([, s]) => (s as FunctionSpec).authorizesRequests);
    const [[, authorizer]] = ofType('AWS::ApiGateway::Authorizer');
    expect(logicalIdsIn(authorizer.Properties.AuthorizerUri)).toContain(logicalIdOf(fnOf(authorizerFn as keyof typeof FUNCTIONS)));
  });

  it('does not cache authorizer answers by default, so a demoted or disabled principal is out within the directory cache TTL', () => {
    const authorizers = ofType('AWS::ApiGateway::Authorizer');
    expect(authorizers).toHaveLength(1);
    expect(authorizers[0][1].Properties).toMatchObject({ Type: 'REQUEST', AuthorizerResultTtlInSeconds: 0 });
    // The authorizer reads the caller's current roles and standing from the Users table.
    const authorizerEnv = resources[logicalIdOf(stack.functions.Authorizer)].Properties.Environment.Variables as Record<string, unknown>;
    expect(authorizerEnv[TABLES.users.envVar]).toBeDefined();
    // Its name is an output: the first Admin is written into it by hand (docs/runbooks/deploy-to-aws.md).
    expect(authorizerEnv[TABLES.users.envVar]).toEqual(template.toJSON().Outputs.UsersTableName.Value);
  });

  it('lets only answersTasks functions settle task tokens, on the pipeline only', () => {
    const settles = (fnId: keyof typeof FUNCTIONS) => {
      const role = logicalIdOf(fnOf(fnId).role!);
      // Inline policies and, past the inline size limit, the managed policies CDK overflows into.
      return [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]
        .filter(([, p]) => ((p.Properties.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
        .filter((st) => [st.Action].flat().includes('states:SendTaskSuccess'));
    };
    for (const [id, spec] of Object.entries(FUNCTIONS)) {
      const statements = settles(id as keyof typeof FUNCTIONS);
      expect(statements.length, id).toBe((spec as FunctionSpec).answersTasks ? 1 : 0);
      for (const st of statements) expect(JSON.stringify(st.Resource), id).toContain('stateMachine:kmod-Pipeline');
    }
  });

  it('lets only stopsPipeline functions (the cancel) stop executions, of the pipeline only (docs/adr/0019-steering-running-deployments.md)', () => {
    const stops = (fnId: keyof typeof FUNCTIONS) => {
      const role = logicalIdOf(fnOf(fnId).role!);
      // Inline policies and, past the inline size limit, the managed policies CDK overflows into.
      return [...ofType('AWS::IAM::Policy'), ...ofType('AWS::IAM::ManagedPolicy')]
        .filter(([, p]) => ((p.Properties.Roles ?? []) as { Ref: string }[]).some((r) => r.Ref === role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
        .filter((st) => [st.Action].flat().includes('states:StopExecution'));
    };
    for (const [id, spec] of Object.entries(FUNCTIONS)) {
      const statements = stops(id as keyof typeof FUNCTIONS);
      expect(statements.length, id).toBe((spec as FunctionSpec).stopsPipeline ? 1 : 0);
      for (const st of statements) expect(JSON.stringify(st.Resource), id).toContain('execution:kmod-Pipeline:*');
    }
    expect(
      Object.entries(FUNCTIONS)
        .filter(([, s]) => (s as FunctionSpec).stopsPipeline)
        .map(([id]) => id),
    ).toEqual(['ApiDeployments']);
  });
});

describe('node key rotation (docs/adr/0012-node-key-rotation.md)', () => {
  it('runs each scheduleMinutes function on its schedule: node keys and the audit export hourly, approval deadlines and WebSocket pings every 5 minutes, node health every minute', () => {
    const scheduled = Object.entries(FUNCTIONS).filter(([, s]) => (s as FunctionSpec).scheduleMinutes);
    expect(scheduled.map(([id]) => id).sort()).toEqual([
      'DiscoverNodes',
      'ExportAudit',
      'PublishNodeHealth',
      'RotateNodeKeys',
      'WatchApprovalDeadlines',
      'WsEvents',
    ]);
    // Schedules only: the execution-status rule of the reconciler is an event pattern, not a schedule.
    const rules = ofType('AWS::Events::Rule').filter(([, r]) => r.Properties.ScheduleExpression);
    expect(rules).toHaveLength(scheduled.length);
    const hourly = rules
      .filter(([, r]) => r.Properties.ScheduleExpression === 'rate(1 hour)')
      .flatMap(([, r]) => r.Properties.Targets.map((t: { Arn: unknown }) => [...logicalIdsIn(t.Arn)]));
    expect(hourly.sort()).toEqual([[logicalIdOf(fnOf('ExportAudit'))], [logicalIdOf(fnOf('RotateNodeKeys'))]].sort());
    const fiveMinutes = rules
      .filter(([, r]) => r.Properties.ScheduleExpression === 'rate(5 minutes)')
      .flatMap(([, r]) => r.Properties.Targets.map((t: { Arn: unknown }) => [...logicalIdsIn(t.Arn)]));
    expect(fiveMinutes.sort()).toEqual([[logicalIdOf(fnOf('WatchApprovalDeadlines'))], [logicalIdOf(fnOf('WsEvents'))]].sort());
    const everyMinute = rules
      .filter(([, r]) => r.Properties.ScheduleExpression === 'rate(1 minute)')
      .flatMap(([, r]) => r.Properties.Targets.map((t: { Arn: unknown }) => [...logicalIdsIn(t.Arn)]));
    expect(everyMinute.sort()).toEqual([[logicalIdOf(fnOf('DiscoverNodes'))], [logicalIdOf(fnOf('PublishNodeHealth'))]].sort());
  });

  it('gives exactly the functions that hold node credentials the maximum key age and the overlap window', () => {
    for (const [id, raw] of Object.entries(FUNCTIONS)) {
      const env = resources[logicalIdOf(fnOf(id as keyof typeof FUNCTIONS))].Properties.Environment.Variables as Record<string, unknown>;
      const holds = Boolean((raw as FunctionSpec).holdsNodeCredentials);
      expect(env.NODE_KEY_MAX_AGE_SECONDS, id).toBe(holds ? String(30 * 86_400) : undefined);
      expect(env.NODE_KEY_OVERLAP_SECONDS, id).toBe(holds ? '900' : undefined);
    }
    // The fleet key set's rotation renews node keys: it writes the Nodes table but calls no agent.
    expect(FUNCTIONS.RotateKeySet).toMatchObject({ rotatesKeySets: true, holdsNodeCredentials: true, tables: { nodes: 'write' } });
    expect('callsAgents' in FUNCTIONS.RotateKeySet || 'callsAgents' in FUNCTIONS.RotateNodeKeys).toBe(false);
  });
});

describe('etcd discovery (docs/adr/0009-discovery-sources.md)', () => {
  const discoverers = Object.entries(FUNCTIONS)
    .filter(([, s]) => (s as FunctionSpec).discoversNodes)
    .map(([id]) => id as keyof typeof FUNCTIONS);

  it('with etcdEndpoints: runs the discoversNodes function every minute with the endpoints and the default prefix', () => {
    expect(discoverers).toEqual(['DiscoverNodes']);
    const fn = logicalIdOf(fnOf('DiscoverNodes'));
    expect(resources[fn].Properties.Environment.Variables).toMatchObject({
      ETCD_ENDPOINTS: 'http://10.0.0.5:2379',
      ETCD_PREFIX: '/kmod/nodes/',
      AGENT_ALLOWED_HOSTS: '10.0.0.0/8',
    });
    const rules = ofType('AWS::Events::Rule').filter(
      ([, r]) => r.Properties.ScheduleExpression === 'rate(1 minute)' && JSON.stringify(r.Properties.Targets).includes(`"${fn}"`),
    );
    expect(rules).toHaveLength(1);
    expect(rules[0][1].Properties.Targets.map((t: { Arn: unknown }) => [...logicalIdsIn(t.Arn)])).toEqual([[fn]]);
    // The bundle carries the etcd client's .proto files where its pinned __dirname points.
    const key = resources[fn].Properties.Code.S3Key as string;
    expect(readFileSync(join(assemblyDir, `asset.${key.replace(/\.zip$/, '')}`, 'node_modules', 'etcd3', 'proto', 'rpc.proto'), 'utf8')).toContain(
      'service KV',
    );
  });

  it('bundles the API reference page’s Swagger UI files next to the function that serves GET /docs', () => {
    const fn = logicalIdOf(fnOf('ApiHealth'));
    const key = resources[fn].Properties.Code.S3Key as string;
    const dir = join(assemblyDir, `asset.${key.replace(/\.zip$/, '')}`, 'docs-assets');
    expect(readFileSync(join(dir, 'swagger-ui-bundle.js'), 'utf8')).toContain('SwaggerUIBundle');
    expect(readFileSync(join(dir, 'swagger-ui.css'), 'utf8')).toContain('.swagger-ui');
  });

  it('without etcdEndpoints: creates no discovery function and no schedule', () => {
    const bare = synthStack({ trustedRootsPem: 'PEM' }, 'Bare');
    const names = Object.values(Template.fromStack(bare).findResources('AWS::Lambda::Function')).map((r) => String(r.Properties.FunctionName ?? ''));
    for (const id of discoverers) expect(names).not.toContain(`kmod-${id}`);
    expect(names.filter((n) => n.startsWith('kmod-'))).toHaveLength(Object.keys(FUNCTIONS).length - discoverers.length);
    expect(bare.functions.DiscoverNodes).toBeUndefined();
    // The one rule every minute left is the node health publisher's.
    const publisher = bare.getLogicalId(bare.functions.PublishNodeHealth!.node.defaultChild as CfnElement);
    expect(
      Object.values(Template.fromStack(bare).findResources('AWS::Events::Rule'))
        .filter((r) => r.Properties.ScheduleExpression === 'rate(1 minute)')
        .map((r) => JSON.stringify(r.Properties.Targets).includes(`"${publisher}"`)),
    ).toEqual([true]);
  });

  it('serves the catalog’s WebSocket routes on one WebSocket API, $connect behind the REQUEST authorizer with no identity source', () => {
    const [[apiId, api]] = ofType('AWS::ApiGatewayV2::Api');
    expect(api.Properties).toMatchObject({ ProtocolType: 'WEBSOCKET', RouteSelectionExpression: '$request.body.action' });
    const integrations = new Map(ofType('AWS::ApiGatewayV2::Integration').map(([id, r]) => [id, r]));
    const routes = ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    expect(routes.map((r) => r.RouteKey).sort()).toEqual(WEBSOCKET.routes.map((r) => r.routeKey).sort());
    const [[authorizerId, authorizer]] = ofType('AWS::ApiGatewayV2::Authorizer');
    expect(authorizer.Properties.AuthorizerType).toBe('REQUEST');
    expect(authorizer.Properties.IdentitySource).toBeUndefined();
    expect(logicalIdsIn(authorizer.Properties.AuthorizerUri)).toContain(logicalIdOf(fnOf('WsAuthorizer')));
    for (const spec of WEBSOCKET.routes) {
      const route = routes.find((r) => r.RouteKey === spec.routeKey)!;
      expect(route.ApiId).toEqual({ Ref: apiId });
      const authorized = 'authorized' in spec && spec.authorized;
      expect(route.AuthorizationType, spec.routeKey).toBe(authorized ? 'CUSTOM' : 'NONE');
      if (authorized) expect(route.AuthorizerId).toEqual({ Ref: authorizerId });
      expect(route.RouteResponseSelectionExpression, spec.routeKey).toBe('returnResponse' in spec && spec.returnResponse ? '$default' : undefined);
      const integration = integrations.get(String(route.Target['Fn::Join'][1][1].Ref))!;
      expect(integration.Properties.IntegrationType).toBe('AWS_PROXY');
      expect(logicalIdsIn(integration.Properties.IntegrationUri)).toContain(logicalIdOf(fnOf(spec.fn)));
    }
    const [[, stage]] = ofType('AWS::ApiGatewayV2::Stage');
    expect(stage.Properties).toMatchObject({ StageName: WEBSOCKET.stage, AutoDeploy: true, AccessLogSettings: { DestinationArn: expect.anything() } });
  });

  it('lets exactly the agent-calling and connection-managing functions post to and close connections, and tells them where', () => {
    for (const [id, raw] of Object.entries(FUNCTIONS)) {
      const spec = raw as FunctionSpec;
      const fn = fnOf(id as keyof typeof FUNCTIONS);
      const role = logicalIdOf(fn.role!);
      const manages = ofType('AWS::IAM::Policy')
        .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
        .filter((st) => [st.Action].flat().includes('execute-api:ManageConnections'));
      const needs = Boolean(spec.callsAgents || spec.managesConnections);
      expect(manages.length > 0, id).toBe(needs);
      // Scoped to the @connections of the one stage.
      for (const st of manages) expect(JSON.stringify(st.Resource), id).toMatch(/\/ws\/\*\/@connections\/\*/);
      const env = resources[logicalIdOf(fn)].Properties.Environment.Variables as Record<string, unknown>;
      expect('WS_MANAGEMENT_ENDPOINT' in env, id).toBe(needs);
      expect('AGENT_WS_URL' in env, id).toBe(Boolean(spec.managesConnections));
    }
    // Enrolment answers dial-out agents the WebSocket URL; the $connect authorizer is the one authorizesConnections function.
    expect(FUNCTIONS.ApiFleet).toMatchObject({ managesConnections: true });
    expect(Object.entries(FUNCTIONS).filter(([, s]) => (s as FunctionSpec).authorizesConnections)).toHaveLength(1);
    expect(template.findOutputs('WebSocketUrl')).toHaveProperty('WebSocketUrl');
  });
});

describe('reconciliation of dead executions (docs/adr/0014-durable-local-executions.md)', () => {
  const machineId = (id: keyof typeof STATE_MACHINES) => logicalIdOf(stack.stateMachines[id]);

  it("sends the pipeline's and the rollback's FAILED, TIMED_OUT and ABORTED status changes to ReconcileExecution, retried for a day", () => {
    expect(Object.keys(EXECUTION_STATUS_RULES)).toEqual(['ReconcileExecutions']);
    const rules = ofType('AWS::Events::Rule').filter(([, r]) => r.Properties.EventPattern?.source?.includes('aws.states'));
    expect(rules).toHaveLength(1);
    const [, rule] = rules[0];
    expect(rule.Properties.State).toBe('ENABLED');
    const pattern = rule.Properties.EventPattern;
    expect(pattern['detail-type']).toEqual(['Step Functions Execution Status Change']);
    expect(pattern.detail.status).toEqual(['FAILED', 'TIMED_OUT', 'ABORTED']);
    // Exactly the pipeline and the rollback: a strategy execution's failure is its pipeline's to handle.
    expect(pattern.detail.stateMachineArn.map((arn: unknown) => [...logicalIdsIn(arn)])).toEqual([[machineId('Pipeline')], [machineId('Rollback')]]);
    const [target] = rule.Properties.Targets;
    expect(rule.Properties.Targets).toHaveLength(1);
    expect([...logicalIdsIn(target.Arn)]).toEqual([logicalIdOf(fnOf('ReconcileExecution'))]);
    expect(target.RetryPolicy).toEqual({ MaximumRetryAttempts: 185, MaximumEventAgeInSeconds: 86_400 });
    // EventBridge may invoke the function, from this rule only.
    const permissions = ofType('AWS::Lambda::Permission').filter(([, p]) => p.Properties.Principal === 'events.amazonaws.com');
    const forReconciler = permissions.filter(([, p]) => logicalIdsIn(p.Properties.FunctionName).has(logicalIdOf(fnOf('ReconcileExecution'))));
    expect(forReconciler).toHaveLength(1);
    expect(logicalIdsIn(forReconciler[0][1].Properties.SourceArn)).toEqual(new Set([rules[0][0]]));
  });

  it('gives the reconciler the machine ARNs it tells executions apart by, and the tables it settles', () => {
    const fn = resources[logicalIdOf(fnOf('ReconcileExecution'))].Properties;
    expect(Object.keys(fn.Environment.Variables)).toEqual(
      expect.arrayContaining([
        'PIPELINE_STATE_MACHINE_ARN',
        'ROLLBACK_STATE_MACHINE_ARN',
        'DEPLOYMENTS_TABLE',
        'LOCKS_TABLE',
        'APPROVALS_TABLE',
        'AUDIT_TABLE',
      ]),
    );
    expect(JSON.stringify(fn.Environment.Variables.PIPELINE_STATE_MACHINE_ARN)).toContain('stateMachine:kmod-Pipeline');
    expect(JSON.stringify(fn.Environment.Variables.ROLLBACK_STATE_MACHINE_ARN)).toContain('stateMachine:kmod-Rollback');
  });
});

describe("operators' live events (docs/adr/0028-live-events.md)", () => {
  const consumers = (Object.entries(FUNCTIONS) as [keyof typeof FUNCTIONS, FunctionSpec][]).filter(([, s]) => s.streamSources?.length);

  it('feeds the Deployments and Nodes change streams to WsEvents only, in order per shard, a failed batch split and retried', () => {
    expect(consumers.map(([id]) => id)).toEqual(['WsEvents']);
    const mappings = ofType('AWS::Lambda::EventSourceMapping');
    expect(mappings).toHaveLength(2);
    const tableOfMapping = (m: Resource) => [...logicalIdsIn(m.Properties.EventSourceArn)][0];
    const tableIds = Object.fromEntries(Object.entries(TABLES).map(([k]) => [k, logicalIdOf(stack.tables[k as keyof typeof TABLES])]));
    expect(mappings.map(([, m]) => tableOfMapping(m)).sort()).toEqual([tableIds.deployments, tableIds.nodes].sort());
    for (const [, m] of mappings) {
      expect([...logicalIdsIn(m.Properties.FunctionName)]).toEqual([logicalIdOf(fnOf('WsEvents'))]);
      expect(m.Properties).toMatchObject({
        StartingPosition: 'TRIM_HORIZON',
        BatchSize: 100,
        ParallelizationFactor: 1,
        BisectBatchOnFunctionError: true,
        MaximumRetryAttempts: 10,
        MaximumRecordAgeInSeconds: 3600,
      });
    }
    // Both tables stream new and old images (the events are diffs of the two).
    for (const key of ['deployments', 'nodes'] as const) {
      expect(resources[tableIds[key]].Properties.StreamSpecification).toEqual({ StreamViewType: 'NEW_AND_OLD_IMAGES' });
    }
  });

  it('lets WsEvents read exactly those streams (and decrypt them), post to connections, and run every 5 minutes for keepalive pings', () => {
    const role = logicalIdOf(fnOf('WsEvents').role!);
    const statements = ofType('AWS::IAM::Policy')
      .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === role))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[]);
    const streamReads = statements.filter((st) => [st.Action].flat().includes('dynamodb:DescribeStream'));
    const streamTables = new Set(streamReads.flatMap((st) => [...logicalIdsIn(st.Resource)]));
    expect(streamTables).toEqual(new Set([logicalIdOf(stack.tables.deployments), logicalIdOf(stack.tables.nodes)]));
    expect(statements.some((st) => [st.Action].flat().includes('execute-api:ManageConnections'))).toBe(true);
    // Nobody else reads a stream.
    for (const [id] of Object.entries(FUNCTIONS).filter(([id]) => id !== 'WsEvents')) {
      const other = logicalIdOf(fnOf(id as keyof typeof FUNCTIONS).role!);
      const reads = ofType('AWS::IAM::Policy')
        .filter(([, p]) => (p.Properties.Roles as { Ref: string }[]).some((r) => r.Ref === other))
        .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[])
        .filter((st) => [st.Action].flat().includes('dynamodb:DescribeStream'));
      expect(reads, id).toEqual([]);
    }
    const schedules = ofType('AWS::Events::Rule').filter(([, r]) => logicalIdsIn(r.Properties.Targets).has(logicalIdOf(fnOf('WsEvents'))));
    expect(schedules.map(([, r]) => r.Properties.ScheduleExpression)).toEqual(['rate(5 minutes)']);
  });

  it('authorises operators at $connect with the token verifier, and routes subscribe/unsubscribe to WsConnections with a route response', () => {
    const env = resources[logicalIdOf(fnOf('WsAuthorizer'))].Properties.Environment.Variables as Record<string, unknown>;
    expect(env).toHaveProperty('JWT_CLIENT_IDS');
    expect(env).toHaveProperty('USERS_TABLE');
    const routes = ofType('AWS::ApiGatewayV2::Route').map(([, r]) => r.Properties);
    for (const key of ['subscribe', 'unsubscribe']) {
      expect(
        routes.find((r) => r.RouteKey === key),
        key,
      ).toMatchObject({ AuthorizationType: 'NONE', RouteResponseSelectionExpression: '$default' });
    }
    expect(ofType('AWS::ApiGatewayV2::RouteResponse').length).toBeGreaterThanOrEqual(WEBSOCKET.routes.filter((r) => 'returnResponse' in r).length);
  });
});
