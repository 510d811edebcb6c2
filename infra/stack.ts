/**
 * The orchestrator on AWS, built from the same catalogs the local cloud serves: every table of
 * functions/lib/tables.ts, every function and route of functions/catalog.ts, every state machine
 * from its ASL file in statemachines/ (deployed unchanged, placeholders filled by
 * DefinitionSubstitutions).
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ArnFormat,
  Aws,
  CfnOutput,
  Duration,
  RemovalPolicy,
  SecretValue,
  Stack,
  type StackProps,
  Validations,
  aws_apigateway as apigw,
  aws_certificatemanager as acm,
  aws_cognito as cognito,
  aws_dynamodb as dynamodb,
  aws_ec2 as ec2,
  aws_iam as iam,
  aws_kms as kms,
  aws_lambda as lambda,
  aws_lambda_nodejs as nodejs,
  aws_logs as logs,
  aws_s3 as s3,
  aws_secretsmanager as secretsmanager,
  aws_sns as sns,
  aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import type { Construct, IConstruct } from 'constructs';
import { AwsSolutionsChecks } from 'cdk-nag';
import {
  FUNCTIONS,
  ROUTES,
  STATE_MACHINES,
  functionArnKey,
  functionTables,
  stateMachineArnKey,
  type FunctionId,
  type FunctionSpec,
  type StateMachineId,
} from '../functions/catalog.ts';
import { GATEWAY_RESPONSES } from '../functions/gatewayResponses.ts';
import { TABLES, TTL_ATTRIBUTE, type TableKey, type TableSpec } from '../functions/lib/tables.ts';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface OrchestratorSettings {
  /** Hosts/CIDRs where agents may live (SSRF guard). */
  agentAllowedHosts: string;
  /** PEM bundle of trusted module-signing roots. */
  trustedRootsPem: string;
  /** Approver user ids per environment (JSON). */
  approvers: string;
  /** Public base URL of the API (for email links); default: the API's own stage URL. */
  publicApiUrl?: string;
  /** Stage throttling, the outer guard in front of the in-app limits. */
  throttleRateLimit: number;
  throttleBurstLimit: number;
  /** Optional custom domain (TLS 1.2+) with an ACM certificate ARN. */
  domainName?: string;
  certificateArn?: string;
  /** CORS allowlist (comma-separated origins); empty means no CORS. */
  corsAllowedOrigins: string;
  /** Days between scheduled rotations of the key-set secrets. */
  keyRotationDays: number;
  /**
   * The network the agents live in: functions that call agents run in these private subnets (which
   * need a NAT gateway or VPC endpoints for DynamoDB, S3, Secrets Manager and Step Functions).
   * Without it they run outside any VPC and reach only public agent addresses.
   */
  agentNetwork?: { vpcId: string; subnetIds: string[]; availabilityZones: string[] };
}

const attr = (name: string): dynamodb.Attribute => ({ name, type: dynamodb.AttributeType.STRING });

export class OrchestratorStack extends Stack {
  readonly tables = {} as Record<TableKey, dynamodb.Table>;
  readonly functions = {} as Record<FunctionId, nodejs.NodejsFunction>;
  readonly stateMachines = {} as Record<StateMachineId, sfn.StateMachine>;
  readonly api: apigw.RestApi;

  constructor(scope: Construct, id: string, settings: OrchestratorSettings, props?: StackProps) {
    super(scope, id, props);

    // One customer-managed key for data at rest (tables, bucket, topics, secrets, logs).
    const key = new kms.Key(this, 'DataKey', { enableKeyRotation: true, description: 'kmod-orchestrator data at rest', removalPolicy: RemovalPolicy.RETAIN });
    key.grantEncryptDecrypt(new iam.ServicePrincipal(`logs.${Aws.REGION}.amazonaws.com`));

    for (const [k, spec] of Object.entries(TABLES) as [TableKey, TableSpec][]) {
      const table = new dynamodb.Table(this, spec.id, {
        partitionKey: attr(spec.partitionKey),
        sortKey: spec.sortKey ? attr(spec.sortKey) : undefined,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
        timeToLiveAttribute: TTL_ATTRIBUTE,
        encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
        encryptionKey: key,
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
      this.tables[k] = table;
    }

    const accessLogs = new s3.Bucket(this, 'AccessLogs', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.S3_MANAGED, // the log-delivery service cannot write to KMS-encrypted buckets
      enforceSSL: true,
      removalPolicy: RemovalPolicy.RETAIN,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
    });
    const artifacts = new s3.Bucket(this, 'Artifacts', {
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: key,
      enforceSSL: true,
      versioned: true,
      serverAccessLogsBucket: accessLogs,
      serverAccessLogsPrefix: 'artifacts/',
      removalPolicy: RemovalPolicy.RETAIN,
    });

    const approverTopic = new sns.Topic(this, 'ApproverTopic', { displayName: 'kmod approvals', masterKey: key, enforceSSL: true });
    const notificationTopic = new sns.Topic(this, 'NotificationTopic', { displayName: 'kmod notifications', masterKey: key, enforceSSL: true });

    // Key sets are JSON {"keys":[{"id","secret"}]} (functions/lib/secrets.ts). Secrets Manager only
    // generates a top-level string, so a seed secret generates the first key and the key set embeds
    // it through a dynamic reference that CloudFormation resolves at deploy time (the value never
    // appears in the template). The seed is alphanumeric, so it needs no JSON escaping.
    const keySet = (name: string) => {
      const seed = new secretsmanager.Secret(this, `${name}Seed`, {
        encryptionKey: key,
        description: `${name}: the generated first key, embedded in ${name}`,
        generateSecretString: { passwordLength: 48, excludePunctuation: true },
      });
      Validations.of(seed).acknowledge({
        id: 'AwsSolutions-SMG4',
        reason: 'The seed only provides the first key when the key set is created; nothing reads it afterwards, and the key set itself rotates on a schedule.',
      });
      return new secretsmanager.Secret(this, name, {
        encryptionKey: key,
        description: `${name}: {"keys":[{"id","secret"}]}; the first key signs, all verify`,
        secretStringValue: SecretValue.unsafePlainText(this.toJsonString({ keys: [{ id: 'k1', secret: seed.secretValue.unsafeUnwrap() }] })),
      });
    };
    const agentKeys = keySet('AgentKeys');
    const approvalLinkKeys = keySet('ApprovalLinkKeys');

    const userPool = new cognito.UserPool(this, 'Users', {
      selfSignUpEnabled: false,
      signInAliases: { email: true, username: true },
      passwordPolicy: { minLength: 14, requireDigits: true, requireLowercase: true, requireUppercase: true, requireSymbols: true },
      mfa: cognito.Mfa.REQUIRED,
      mfaSecondFactor: { otp: true, sms: false },
      featurePlan: cognito.FeaturePlan.PLUS,
      standardThreatProtectionMode: cognito.StandardThreatProtectionMode.FULL_FUNCTION,
      accountRecovery: cognito.AccountRecovery.EMAIL_ONLY,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const group of ['Admin', 'Deployer', 'Viewer', 'Approver'])
      new cognito.CfnUserPoolGroup(this, `Group${group}`, { userPoolId: userPool.userPoolId, groupName: group });
    // Service principals get a role from their scope (functions/lib/auth.ts SCOPE_ROLES).
    const apiScope = new cognito.ResourceServerScope({ scopeName: 'deploy', scopeDescription: 'deploy and roll back (Deployer)' });
    const readScope = new cognito.ResourceServerScope({ scopeName: 'read', scopeDescription: 'read deployments and clusters (Viewer)' });
    const resourceServer = userPool.addResourceServer('Api', { identifier: 'kmod', scopes: [apiScope, readScope] });
    const userClient = userPool.addClient('WebClient', {
      authFlows: { userSrp: true },
      accessTokenValidity: Duration.hours(1),
      refreshTokenValidity: Duration.days(30),
      preventUserExistenceErrors: true,
    });
    const serviceClient = userPool.addClient('ServiceClient', {
      generateSecret: true,
      oAuth: {
        flows: { clientCredentials: true },
        scopes: [cognito.OAuthScope.resourceServer(resourceServer, apiScope), cognito.OAuthScope.resourceServer(resourceServer, readScope)],
      },
      accessTokenValidity: Duration.hours(1),
    });

    this.api = new apigw.RestApi(this, 'Api', {
      restApiName: 'kmod-orchestrator',
      cloudWatchRole: true,
      deployOptions: {
        stageName: 'v1',
        tracingEnabled: true,
        throttlingRateLimit: settings.throttleRateLimit,
        throttlingBurstLimit: settings.throttleBurstLimit,
        loggingLevel: apigw.MethodLoggingLevel.ERROR,
        accessLogDestination: new apigw.LogGroupLogDestination(
          new logs.LogGroup(this, 'ApiAccessLogs', { retention: logs.RetentionDays.ONE_YEAR, encryptionKey: key }),
        ),
        accessLogFormat: apigw.AccessLogFormat.jsonWithStandardFields(),
      },
      defaultCorsPreflightOptions: settings.corsAllowedOrigins
        ? { allowOrigins: settings.corsAllowedOrigins.split(',').map((s) => s.trim()), allowHeaders: ['Authorization', 'Content-Type', 'Idempotency-Key'] }
        : undefined,
      disableExecuteApiEndpoint: false,
    });
    if (settings.domainName && settings.certificateArn) {
      this.api.addDomainName('Domain', {
        domainName: settings.domainName,
        certificate: acm.Certificate.fromCertificateArn(this, 'Certificate', settings.certificateArn),
        securityPolicy: apigw.SecurityPolicy.TLS_1_2,
        endpointType: apigw.EndpointType.REGIONAL,
      });
    }
    const publicApiUrl = settings.publicApiUrl ?? (settings.domainName ? `https://${settings.domainName}` : this.api.url.replace(/\/$/, ''));

    // Functions: environment and grants follow each catalog entry's declared needs, nothing more.
    const pipelineArn = Stack.of(this).formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: 'kmod-Pipeline',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    const rollbackArn = Stack.of(this).formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: 'kmod-Rollback',
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    // Agent-calling functions join the agents' network when one is given; their security group
    // allows outbound traffic only (agents are reached by HTTP(S); AWS APIs through NAT/endpoints).
    const agentNet = settings.agentNetwork
      ? (() => {
          const vpc = ec2.Vpc.fromVpcAttributes(this, 'AgentVpc', {
            vpcId: settings.agentNetwork!.vpcId,
            availabilityZones: settings.agentNetwork!.availabilityZones,
            privateSubnetIds: settings.agentNetwork!.subnetIds,
          });
          const sg = new ec2.SecurityGroup(this, 'AgentCallers', { vpc, description: 'kmod functions that call node agents', allowAllOutbound: true });
          return { vpc, sg };
        })()
      : undefined;
    for (const [id, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      const environment: Record<string, string> = { POWERTOOLS_SERVICE_NAME: 'kmod-orchestrator', NODE_OPTIONS: '--enable-source-maps' };
      const tables = functionTables(id);
      for (const [t] of Object.entries(tables) as [TableKey, string][]) environment[TABLES[t].envVar] = this.tables[t].tableName;
      if (spec.artifacts) environment.ARTIFACT_BUCKET = artifacts.bucketName;
      if (spec.startsPipeline) Object.assign(environment, { PIPELINE_STATE_MACHINE_ARN: pipelineArn, ROLLBACK_STATE_MACHINE_ARN: rollbackArn });
      if (spec.callsAgents) Object.assign(environment, { AGENT_KEYS_SECRET_ARN: agentKeys.secretArn, AGENT_ALLOWED_HOSTS: settings.agentAllowedHosts });
      if (spec.signsApprovalLinks) environment.APPROVAL_LINK_KEYS_SECRET_ARN = approvalLinkKeys.secretArn;
      if (spec.publishes) Object.assign(environment, { APPROVER_TOPIC_ARN: approverTopic.topicArn, NOTIFICATION_TOPIC_ARN: notificationTopic.topicArn });
      // Only the gate signs links, so only it needs the public URL (the API's own functions may not
      // reference the stage URL: that would be a dependency cycle).
      if (id === 'RequestApproval') Object.assign(environment, { APPROVERS: settings.approvers, PUBLIC_API_URL: publicApiUrl });
      if (id === 'SecurityScan') environment.TRUSTED_ROOTS_PEM = settings.trustedRootsPem;
      if (spec.managesIdentities) environment.COGNITO_USER_POOL_ID = userPool.userPoolId;
      if (spec.verifiesTokens)
        Object.assign(environment, {
          COGNITO_USER_POOL_ID: userPool.userPoolId,
          JWT_CLIENT_IDS: [userClient.userPoolClientId, serviceClient.userPoolClientId].join(','),
        });

      const fn = new nodejs.NodejsFunction(this, id, {
        functionName: `kmod-${id}`,
        description: spec.description,
        entry: join(ROOT, spec.entry),
        handler: 'handler',
        runtime: lambda.Runtime.NODEJS_22_X,
        architecture: lambda.Architecture.ARM_64,
        memorySize: spec.memoryMb,
        timeout: Duration.seconds(spec.timeoutSeconds),
        tracing: lambda.Tracing.ACTIVE,
        environment,
        environmentEncryption: key,
        ...(spec.callsAgents && agentNet ? { vpc: agentNet.vpc, vpcSubnets: { subnets: agentNet.vpc.privateSubnets }, securityGroups: [agentNet.sg] } : {}),
        logGroup: new logs.LogGroup(this, `${id}Logs`, { retention: logs.RetentionDays.ONE_MONTH, encryptionKey: key, removalPolicy: RemovalPolicy.DESTROY }),
        bundling: {
          format: nodejs.OutputFormat.ESM,
          target: 'node22',
          minify: true,
          sourceMap: true,
          mainFields: ['module', 'main'],
          forceDockerBundling: false,
          logLevel: nodejs.LogLevel.ERROR,
          banner: "import { createRequire } from 'module';const require = createRequire(import.meta.url);",
        },
      });
      for (const [t, access] of Object.entries(tables) as [TableKey, string][]) {
        if (access === 'write') this.tables[t].grantReadWriteData(fn);
        else this.tables[t].grantReadData(fn);
      }
      if (spec.artifacts === 'write') artifacts.grantReadWrite(fn);
      else if (spec.artifacts === 'read') artifacts.grantRead(fn);
      if (spec.callsAgents) agentKeys.grantRead(fn);
      if (spec.signsApprovalLinks) approvalLinkKeys.grantRead(fn);
      if (spec.publishes) {
        approverTopic.grantPublish(fn);
        notificationTopic.grantPublish(fn);
      }
      if (spec.managesIdentities) {
        fn.addToRolePolicy(
          new iam.PolicyStatement({
            actions: [
              'cognito-idp:AdminCreateUser',
              'cognito-idp:AdminAddUserToGroup',
              'cognito-idp:AdminRemoveUserFromGroup',
              'cognito-idp:AdminDisableUser',
              'cognito-idp:AdminEnableUser',
              'cognito-idp:AdminUserGlobalSignOut',
              'cognito-idp:CreateUserPoolClient',
            ],
            resources: [userPool.userPoolArn],
          }),
        );
      }
      if (spec.startsPipeline) fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [pipelineArn, rollbackArn] }));
      this.functions[id] = fn;
    }
    // Scheduled rotation: one safe step per period (domain/keyRotation.ts scheduledRotation).
    for (const keys of [agentKeys, approvalLinkKeys]) {
      keys.addRotationSchedule('Rotation', { rotationLambda: this.functions.RotateKeySet, automaticallyAfter: Duration.days(settings.keyRotationDays) });
    }
    this.functions.ApiApprovals.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'], resources: [pipelineArn] }),
    );

    // State machines, children first: each ASL file deployed as it is.
    const order: StateMachineId[] = ['Direct', 'Rolling', 'BlueGreen', 'Canary', 'Pipeline', 'Rollback'];
    for (const id of order) {
      const spec = STATE_MACHINES[id];
      const substitutions: Record<string, string> = {};
      for (const f of spec.functions) substitutions[functionArnKey(f)] = this.functions[f].functionArn;
      for (const m of spec.stateMachines) substitutions[stateMachineArnKey(m)] = this.stateMachines[m].stateMachineArn;
      const machine = new sfn.StateMachine(this, `${id}StateMachine`, {
        stateMachineName: `kmod-${id}`,
        stateMachineType: sfn.StateMachineType.STANDARD,
        definitionBody: sfn.DefinitionBody.fromFile(join(ROOT, spec.file)),
        definitionSubstitutions: substitutions,
        tracingEnabled: true,
        logs: {
          destination: new logs.LogGroup(this, `${id}StateMachineLogs`, { retention: logs.RetentionDays.ONE_YEAR, encryptionKey: key }),
          level: sfn.LogLevel.ALL,
          includeExecutionData: false,
        },
      });
      for (const f of spec.functions) this.functions[f].grantInvoke(machine);
      for (const m of spec.stateMachines) {
        this.stateMachines[m].grantStartExecution(machine);
        const executions = Stack.of(this).formatArn({
          service: 'states',
          resource: 'execution',
          resourceName: `kmod-${m}:*`,
          arnFormat: ArnFormat.COLON_RESOURCE_NAME,
        });
        machine.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:DescribeExecution', 'states:StopExecution'], resources: [executions] }));
      }
      if (spec.stateMachines.length) {
        // `.sync` integrations watch child executions through this managed EventBridge rule.
        machine.addToRolePolicy(
          new iam.PolicyStatement({
            actions: ['events:PutTargets', 'events:PutRule', 'events:DescribeRule'],
            resources: [Stack.of(this).formatArn({ service: 'events', resource: 'rule', resourceName: 'StepFunctionsGetEventsForStepFunctionsExecutionRule' })],
          }),
        );
      }
      this.stateMachines[id] = machine;
    }

    // Routes from the catalog; API Gateway's own errors answer in the product's JSON shape.
    const authorizer = new apigw.RequestAuthorizer(this, 'JwtAuthorizer', {
      handler: this.functions.Authorizer,
      identitySources: [apigw.IdentitySource.header('Authorization')],
      resultsCacheTtl: Duration.minutes(5),
    });
    for (const route of ROUTES) {
      const resource = this.api.root.resourceForPath(route.path);
      resource.addMethod(
        route.method,
        new apigw.LambdaIntegration(this.functions[route.fn]),
        route.auth ? { authorizer, authorizationType: apigw.AuthorizationType.CUSTOM } : { authorizationType: apigw.AuthorizationType.NONE },
      );
    }
    for (const g of GATEWAY_RESPONSES) {
      this.api.addGatewayResponse(`Response${g.type}`, {
        type: apigw.ResponseType.of(g.type),
        statusCode: String(g.statusCode),
        responseHeaders: Object.fromEntries(Object.entries({ 'Content-Type': 'application/json', ...g.headers }).map(([k, v]) => [k, `'${v}'`])),
        templates: { 'application/json': JSON.stringify({ code: g.code, message: g.message }) },
      });
    }

    new CfnOutput(this, 'ApiUrl', { value: this.api.url });
    new CfnOutput(this, 'UserPoolId', { value: userPool.userPoolId });
    new CfnOutput(this, 'UserPoolClientId', { value: userClient.userPoolClientId });
    new CfnOutput(this, 'ServiceClientId', { value: serviceClient.userPoolClientId });
    new CfnOutput(this, 'ArtifactBucketName', { value: artifacts.bucketName });
    new CfnOutput(this, 'ApproverTopicArn', { value: approverTopic.topicArn });
    new CfnOutput(this, 'NotificationTopicArn', { value: notificationTopic.topicArn });

    acknowledgeNagFindings(this);
  }
}

/**
 * cdk-nag findings accepted on purpose. Each entry says which findings (by rule id and finding)
 * and why; they are acknowledged on the exact resources that raise them, so any other finding
 * still fails the build (test/infra/stack.test.ts).
 */
export const ACCEPTED_NAG_FINDINGS: { match: RegExp; reason: string }[] = [
  {
    match:
      /^AwsSolutions-IAM4\[Policy::arn:<AWS::Partition>:iam::aws:policy\/service-role\/(AWSLambdaBasicExecutionRole|AWSLambdaVPCAccessExecutionRole|AmazonAPIGatewayPushToCloudWatchLogs)\]$/,
    reason: "AWS-managed minimum for Lambda logging (and network interfaces for the functions in the agents' VPC) and API Gateway log delivery.",
  },
  { match: /^AwsSolutions-IAM5\[Resource::<\w+\.Arn>\/index\/\*\]$/, reason: "CDK table grants cover the table's own GSIs (index/*) and nothing else." },
  {
    match: /^AwsSolutions-IAM5\[Action::kms:(ReEncrypt|GenerateDataKey)\*\]$/,
    reason: 'CDK KMS grants on the single data key; the wildcard spans KMS action variants, not keys.',
  },
  {
    match: /^AwsSolutions-IAM5\[Action::s3:(GetObject|GetBucket|List|DeleteObject|Abort)\*\]$/,
    reason: 'CDK bucket grants on the artifact bucket only: variants of object reads and writes.',
  },
  { match: /^AwsSolutions-IAM5\[Resource::<Artifacts\w+\.Arn>\/\*\]$/, reason: 'Objects of the artifact bucket (module artifacts under modules/).' },
  { match: /^AwsSolutions-IAM5\[Resource::<\w+\.Arn>:\*\]$/, reason: "Lambda invoke grants include the function's versions and aliases (qualifier :*)." },
  {
    match: /^AwsSolutions-IAM5\[Resource::arn:<AWS::Partition>:states:<AWS::Region>:<AWS::AccountId>:execution:kmod-\w+:\*\]$/,
    reason: 'Describe/stop the executions of one child state machine; execution names are not known in advance.',
  },
  {
    match: /^AwsSolutions-IAM5\[Resource::\*\]$/,
    reason:
      'X-Ray trace upload, Step Functions log delivery and secretsmanager:GetRandomPassword (granted by CDK with each rotation schedule) have no resource-level permissions.',
  },
  { match: /^AwsSolutions-L1$/, reason: 'Runtime pinned to nodejs22.x deliberately: the code targets it; newer runtimes come through a reviewed change.' },
  {
    match: /^AwsSolutions-APIG2$/,
    reason: 'Each handler validates its input with zod and answers 400 with a JSON error; request validators would duplicate that.',
  },
  { match: /^AwsSolutions-APIG3$/, reason: 'WAF is a follow-up; stage throttling plus the in-app limits guard the API meanwhile.' },
  {
    match: /^AwsSolutions-(APIG4|COG4)$/,
    reason:
      'Public by design (GET /health, GET /metrics, signed single-use approval links), or guarded by the JWT REQUEST authorizer that verifies Cognito tokens with aws-jwt-verify (COG4 asks for a Cognito authorizer specifically).',
  },
];

function acknowledgeNagFindings(stack: Stack): void {
  const report = new AwsSolutionsChecks().validateScope(stack);
  const byPath = new Map<string, IConstruct>(stack.node.findAll().map((c) => [c.node.path, c]));
  for (const v of report.violations) {
    const rule = v.ruleName ?? '';
    const accepted = ACCEPTED_NAG_FINDINGS.find((a) => a.match.test(rule));
    if (!accepted) continue;
    for (const r of v.violatingResources) {
      const construct = r.constructPath ? byPath.get(r.constructPath) : undefined;
      if (!construct) throw new Error(`cdk-nag finding on an unknown construct: ${r.constructPath}`);
      Validations.of(construct).acknowledge({ id: rule, reason: accepted.reason });
    }
  }
}

/** Settings from CDK context (cdk.json or -c key=value), with the defaults documented in the README. */
export function settingsFromContext(get: (key: string) => unknown): OrchestratorSettings {
  const str = (k: string, d = '') => String(get(k) ?? d);
  const rootsFile = get('trustedRootsPemFile') as string | undefined;
  return {
    agentAllowedHosts: str('agentAllowedHosts', '10.0.0.0/8'),
    trustedRootsPem: rootsFile ? readFileSync(rootsFile, 'utf8') : str('trustedRootsPem', 'SET-VIA-CONTEXT trustedRootsPemFile'),
    approvers: str('approvers', '{}'),
    publicApiUrl: get('publicApiUrl') as string | undefined,
    throttleRateLimit: Number(get('throttleRateLimit') ?? 50),
    throttleBurstLimit: Number(get('throttleBurstLimit') ?? 100),
    domainName: get('domainName') as string | undefined,
    certificateArn: get('certificateArn') as string | undefined,
    corsAllowedOrigins: str('corsAllowedOrigins', ''),
    keyRotationDays: Number(get('keyRotationDays') ?? 30),
    agentNetwork: get('agentVpcId')
      ? {
          vpcId: String(get('agentVpcId')),
          subnetIds: String(get('agentSubnetIds') ?? '')
            .split(',')
            .filter(Boolean),
          availabilityZones: String(get('agentAvailabilityZones') ?? '')
            .split(',')
            .filter(Boolean),
        }
      : undefined,
  };
}
