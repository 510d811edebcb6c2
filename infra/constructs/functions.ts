/**
 * One Lambda function per catalog entry. Environment and grants follow each entry's declared needs
 * (the FunctionSpec flags), nothing more: no function is special-cased here by name.
 */
import { join } from 'node:path';
import {
  ArnFormat,
  Duration,
  RemovalPolicy,
  Stack,
  aws_ec2 as ec2,
  aws_events as events,
  aws_events_targets as targets,
  aws_iam as iam,
  aws_lambda as lambda,
  aws_lambda_event_sources as eventSources,
  aws_lambda_nodejs as nodejs,
  aws_logs as logs,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import { DOCS_ASSET_DIR, SWAGGER_UI_FILES } from '../../functions/lib/apiDocs.ts';
import { FUNCTIONS, ROUTES, functionTables, type Access, type FunctionId, type FunctionsById, type FunctionSpec } from '../../functions/catalog.ts';
import { TABLES, type TableKey } from '../../functions/lib/tables.ts';
import type { OrchestratorSettings } from '../settings.ts';
import type { Data } from './data.ts';
import type { Identity } from './identity.ts';
import { Layer } from './layer.ts';
import type { Notifications } from './notifications.ts';
import type { KeySets } from './secrets.ts';
import type { WebSocketLayer } from './websocket.ts';
import type { AuditExport } from './auditExport.ts';
import { auditRetentionEnvironment } from '../../functions/domain/auditRetention.ts';

export const ROOT = join(import.meta.dirname, '..', '..');

export interface FunctionsProps {
  settings: Pick<
    OrchestratorSettings,
    | 'agentAllowedHosts'
    | 'approvers'
    | 'trustedRootsPem'
    | 'traffic'
    | 'alarms'
    | 'revocationListUrls'
    | 'agentNetwork'
    | 'etcd'
    | 'nodeKeyMaxAgeDays'
    | 'nodeKeyOverlapSeconds'
    | 'verifyTokensInFunctions'
    | 'auditRetention'
    | 'corsAllowedOrigins'
  >;
  data: Data;
  notifications: Notifications;
  keySets: KeySets;
  identity: Identity;
  /** Base URL of approval links (only for mailsApprovalLinks functions). */
  publicApiUrl: string;
  /** The WebSocket API: dial-out agents are reached through its connections. */
  webSocket: Pick<WebSocketLayer, 'url' | 'managementEndpoint' | 'grantManageConnections'>;
  /** The audit export's bucket (exportsAudit functions write to it). */
  auditExport: Pick<AuditExport, 'bucketName' | 'grantExport'>;
}

type Flag = { [K in keyof FunctionSpec]-?: FunctionSpec[K] extends true | undefined ? K : never }[keyof FunctionSpec];

const IDENTITY_ADMIN_ACTIONS = [
  'cognito-idp:AdminCreateUser',
  'cognito-idp:AdminAddUserToGroup',
  'cognito-idp:AdminRemoveUserFromGroup',
  'cognito-idp:AdminDisableUser',
  'cognito-idp:AdminEnableUser',
  'cognito-idp:AdminUserGlobalSignOut',
  'cognito-idp:CreateUserPoolClient',
  // Undoes a client created for a name another request took at the same moment (lib/directory.ts).
  'cognito-idp:DeleteUserPoolClient',
];

/** SNS actions on existing subscriptions (lib/subscriptions.ts): no resource-level permissions to scope them by. */
export const SUBSCRIPTION_ACTIONS = ['sns:GetSubscriptionAttributes', 'sns:SetSubscriptionAttributes', 'sns:Unsubscribe'];

/**
 * The etcd3 client loads its gRPC .proto files at run time from `${__dirname}/../proto`, which a
 * single-file ESM bundle has neither: pin __dirname to where the files are copied next to it.
 */
const ETCD_LIB_DIR = '/var/task/node_modules/etcd3/lib';
const ETCD_BUNDLING: Pick<nodejs.BundlingOptions, 'define' | 'commandHooks'> = {
  define: { __dirname: JSON.stringify(ETCD_LIB_DIR) },
  commandHooks: {
    beforeBundling: () => [],
    beforeInstall: () => [],
    afterBundling: (inputDir: string, outputDir: string) => [
      `mkdir -p "${outputDir}/node_modules/etcd3"`,
      `cp -R "${inputDir}/node_modules/etcd3/proto" "${outputDir}/node_modules/etcd3/proto"`,
    ],
  },
};

export class Functions extends Layer {
  readonly byId = {} as FunctionsById<nodejs.NodejsFunction>;
  // Built from names, not from the state machines: the machines reference these functions, so a
  // reference back would be a dependency cycle.
  private readonly pipelineArn = this.stateMachineArn('kmod-Pipeline');
  private readonly rollbackArn = this.stateMachineArn('kmod-Rollback');
  private readonly agentNet: { vpc: ec2.IVpc; sg: ec2.SecurityGroup } | undefined;

  constructor(
    scope: Construct,
    id: string,
    private readonly props: FunctionsProps,
  ) {
    super(scope, id);
    this.agentNet = this.agentNetwork();
    for (const [fnId, spec] of Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]) {
      // Discovery runs only against an etcd the operator named; without one there is nothing to run.
      if (spec.discoversNodes && !props.settings.etcd) continue;
      const fn = this.createFunction(fnId, spec);
      this.grant(fn, fnId, spec);
      if (spec.scheduleMinutes) this.schedule(fnId, fn, spec.scheduleMinutes);
      for (const t of spec.streamSources ?? []) this.consumeStream(fn, t);
      (this.byId as Record<FunctionId, nodejs.NodejsFunction>)[fnId] = fn;
    }
  }

  /**
   * A table's change stream into the function (the catalog's streamSources; docs/adr/0028-live-events.md):
   * an event source mapping from the stream's start, one batch at a time per shard (so events keep
   * the order of their records), a failed batch split and retried. Grants the stream reads and the
   * key's decrypt.
   */
  private consumeStream(fn: nodejs.NodejsFunction, table: TableKey): void {
    if (!TABLES[table].stream) throw new Error(`a function consumes the stream of ${table}, which has none (stream: true in functions/lib/tables.ts)`);
    fn.addEventSource(
      new eventSources.DynamoEventSource(this.props.data.tables[table], {
        startingPosition: lambda.StartingPosition.TRIM_HORIZON,
        batchSize: 100,
        maxBatchingWindow: Duration.millis(0),
        parallelizationFactor: 1,
        bisectBatchOnError: true,
        retryAttempts: 10,
        // Events older than the replay window are of no use to anyone.
        maxRecordAge: Duration.hours(1),
      }),
    );
  }

  /** An EventBridge schedule (the catalog's scheduleMinutes): each run is one idempotent pass. */
  private schedule(id: FunctionId, fn: nodejs.NodejsFunction, minutes: number): void {
    new events.Rule(this, `${id}Schedule`, {
      description: minutes === 1 ? `kmod: run ${id} every minute` : `kmod: run ${id} every ${minutes} minutes`,
      schedule: events.Schedule.rate(Duration.minutes(minutes)),
      targets: [new targets.LambdaFunction(fn, { retryAttempts: 0 })],
    });
  }

  /** The one function that carries a flag the catalog gives to exactly one. */
  sole(flag: Flag): nodejs.NodejsFunction {
    const ids = (Object.entries(FUNCTIONS) as [FunctionId, FunctionSpec][]).filter(([, s]) => s[flag]).map(([id]) => id);
    if (ids.length !== 1) throw new Error(`exactly one catalog function must have ${flag}, found ${ids.length}: ${ids.join(', ')}`);
    const fn = (this.byId as Partial<Record<FunctionId, nodejs.NodejsFunction>>)[ids[0]];
    if (!fn) throw new Error(`catalog function ${ids[0]} (${flag}) was not created`);
    return fn;
  }

  private stateMachineArn(name: string): string {
    return Stack.of(this).formatArn({ service: 'states', resource: 'stateMachine', resourceName: name, arnFormat: ArnFormat.COLON_RESOURCE_NAME });
  }

  /**
   * Agent-calling functions join the agents' network when one is given; their security group
   * allows outbound traffic only (agents are reached by HTTP(S); AWS APIs through NAT/endpoints).
   */
  private agentNetwork() {
    const net = this.props.settings.agentNetwork;
    if (!net) return undefined;
    const vpc = ec2.Vpc.fromVpcAttributes(this, 'AgentVpc', { vpcId: net.vpcId, availabilityZones: net.availabilityZones, privateSubnetIds: net.subnetIds });
    const sg = new ec2.SecurityGroup(this, 'AgentCallers', { vpc, description: 'kmod functions that call node agents', allowAllOutbound: true });
    return { vpc, sg };
  }

  /**
   * Functions that verify bearer tokens themselves (verifyTokensInFunctions): those serving routes
   * behind the authorizer, for gateways that do not run it.
   */
  private verifiesInFunction(id: FunctionId): boolean {
    return this.props.settings.verifyTokensInFunctions && ROUTES.some((r) => r.fn === id && r.auth);
  }

  /** The catalog's tables, plus the directory for functions that verify tokens (disabled principals are refused). */
  private tables(id: FunctionId): Partial<Record<TableKey, Access>> {
    const tables = functionTables(id);
    if (this.verifiesInFunction(id)) tables.users ??= 'read';
    return tables;
  }

  private environment(id: FunctionId, spec: FunctionSpec): Record<string, string> {
    const { settings, data, notifications, keySets, identity } = this.props;
    const env: Record<string, string> = { POWERTOOLS_SERVICE_NAME: 'kmod-orchestrator', NODE_OPTIONS: '--enable-source-maps' };
    for (const t of Object.keys(this.tables(id)) as TableKey[]) env[TABLES[t].envVar] = data.tables[t].tableName;
    // A stream consumer tells its records apart by the table they come from.
    for (const t of spec.streamSources ?? []) env[TABLES[t].envVar] = data.tables[t].tableName;
    if (spec.artifacts) env.ARTIFACT_BUCKET = data.artifacts.bucketName;
    // The gateway answers the preflight (api.ts); the route's own answer must name the origin too.
    if (settings.corsAllowedOrigins && ROUTES.some((r) => r.fn === id)) env.CORS_ALLOWED_ORIGINS = settings.corsAllowedOrigins;
    // Whoever writes audit events sets their TTL by category (functions/domain/auditRetention.ts).
    if (this.tables(id).audit === 'write') Object.assign(env, auditRetentionEnvironment(settings.auditRetention));
    if (spec.exportsAudit) env.AUDIT_EXPORT_BUCKET = this.props.auditExport.bucketName;
    if (spec.startsPipeline || spec.reconcilesExecutions || spec.stopsPipeline)
      Object.assign(env, { PIPELINE_STATE_MACHINE_ARN: this.pipelineArn, ROLLBACK_STATE_MACHINE_ARN: this.rollbackArn });
    if (spec.callsAgents || spec.holdsNodeCredentials)
      Object.assign(env, { AGENT_KEYS_SECRET_ARN: keySets.agentKeys.secretArn, AGENT_ALLOWED_HOSTS: settings.agentAllowedHosts });
    // Dial-out agents are called through the WebSocket API's connections; enrolment answers its URL.
    if (spec.callsAgents || spec.managesConnections) env.WS_MANAGEMENT_ENDPOINT = this.props.webSocket.managementEndpoint;
    if (spec.managesConnections) env.AGENT_WS_URL = this.props.webSocket.url;
    if (spec.holdsNodeCredentials)
      Object.assign(env, {
        NODE_KEY_MAX_AGE_SECONDS: String(settings.nodeKeyMaxAgeDays * 86_400),
        NODE_KEY_OVERLAP_SECONDS: String(settings.nodeKeyOverlapSeconds),
      });
    if (spec.signsApprovalLinks) env.APPROVAL_LINK_KEYS_SECRET_ARN = keySets.approvalLinkKeys.secretArn;
    if (spec.publishes)
      Object.assign(env, { APPROVER_TOPIC_ARN: notifications.approverTopic.topicArn, NOTIFICATION_TOPIC_ARN: notifications.notificationTopic.topicArn });
    // Only the gate mails links, so only it needs the public URL (the API's own functions may not
    // reference the stage URL: that would be a dependency cycle).
    if (spec.mailsApprovalLinks) Object.assign(env, { APPROVERS: settings.approvers, PUBLIC_API_URL: this.props.publicApiUrl });
    if (spec.checksApprovers) env.APPROVERS = settings.approvers;
    if (spec.verifiesModuleSignatures) env.TRUSTED_ROOTS_PEM = settings.trustedRootsPem;
    if (spec.verifiesModuleSignatures && settings.revocationListUrls) env.REVOCATION_LIST_URLS = settings.revocationListUrls;
    // With an external issuer there is no pool: users and clients live in the directory only.
    if (spec.managesIdentities && identity.userPool) env.COGNITO_USER_POOL_ID = identity.userPool.userPoolId;
    if (spec.verifiesTokens) Object.assign(env, identity.verifierEnvironment);
    if (this.verifiesInFunction(id)) Object.assign(env, identity.verifierEnvironment, { API_VERIFIES_TOKENS: 'true' });
    if (spec.discoversNodes && settings.etcd) Object.assign(env, { ETCD_ENDPOINTS: settings.etcd.endpoints, ETCD_PREFIX: settings.etcd.prefix });
    if (spec.watchesAlarms && settings.alarms) env.ALARMS = JSON.stringify(settings.alarms);
    if (spec.describesTraffic && Object.keys(settings.traffic.kinds).length) env.TRAFFIC_ROUTERS = JSON.stringify(settings.traffic.kinds);
    if (spec.routesTraffic && Object.keys(settings.traffic.kinds).length) {
      env.TRAFFIC_ROUTERS = JSON.stringify(settings.traffic.kinds);
      if (Object.keys(settings.traffic.alb).length) env.ALB_ROUTERS = JSON.stringify(settings.traffic.alb);
      if (Object.keys(settings.traffic.route53).length) env.ROUTE53_ROUTERS = JSON.stringify(settings.traffic.route53);
    }
    if (spec.managesSubscriptions) {
      Object.assign(env, {
        APPROVERS: settings.approvers,
        APPROVER_TOPIC_ARN: notifications.approverTopic.topicArn,
        NOTIFICATION_TOPIC_ARN: notifications.notificationTopic.topicArn,
      });
      // Approvers only the user pool knows (the first Admin, people created with the CLI) are found by sub.
      if (identity.userPool) env.COGNITO_USER_POOL_ID = identity.userPool.userPoolId;
    }
    return env;
  }

  private createFunction(id: FunctionId, spec: FunctionSpec): nodejs.NodejsFunction {
    const key = this.props.data.key;
    return new nodejs.NodejsFunction(this, id, {
      functionName: `kmod-${id}`,
      description: spec.description,
      entry: join(ROOT, spec.entry),
      handler: 'handler',
      runtime: lambda.Runtime.NODEJS_22_X,
      architecture: lambda.Architecture.ARM_64,
      memorySize: spec.memoryMb,
      timeout: Duration.seconds(spec.timeoutSeconds),
      tracing: lambda.Tracing.ACTIVE,
      environment: this.environment(id, spec),
      environmentEncryption: key,
      ...(spec.callsAgents && this.agentNet
        ? { vpc: this.agentNet.vpc, vpcSubnets: { subnets: this.agentNet.vpc.privateSubnets }, securityGroups: [this.agentNet.sg] }
        : {}),
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
        ...(spec.discoversNodes ? ETCD_BUNDLING : {}),
        // The API reference page's Swagger UI files, next to the bundle (functions/lib/apiDocs.ts reads them there).
        ...(ROUTES.some((r) => r.fn === id && r.path === '/docs/{asset}')
          ? {
              commandHooks: {
                beforeBundling: () => [],
                beforeInstall: () => [],
                afterBundling: (inputDir: string, outputDir: string) => [
                  `mkdir -p ${join(outputDir, DOCS_ASSET_DIR)}`,
                  ...SWAGGER_UI_FILES.map((f) => `cp ${join(inputDir, 'node_modules/swagger-ui-dist', f)} ${join(outputDir, DOCS_ASSET_DIR, f)}`),
                ],
              },
            }
          : {}),
      },
    });
  }

  /**
   * The routers' calls, on exactly the resources the settings name (docs/adr/0020-traffic-routers.md):
   * the listeners and preview rules of the ALB routers, their target groups, the Route 53 zones.
   */
  private grantTraffic(fn: nodejs.NodejsFunction): void {
    const { traffic } = this.props.settings;
    const used = (kind: string) =>
      Object.entries(traffic.kinds)
        .filter(([, k]) => k === kind)
        .map(([env]) => env);
    const albs = used('alb').map((env) => traffic.alb[env]);
    if (albs.length) {
      const listeners = albs.flatMap((a) => [a.listenerArn, ...(a.previewRuleArn ? [a.previewRuleArn] : [])]);
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['elasticloadbalancing:ModifyListener', 'elasticloadbalancing:ModifyRule'], resources: listeners }),
      );
      const groups = albs.flatMap((a) => Object.values(a.targetGroups as Record<string, string>));
      fn.addToRolePolicy(
        new iam.PolicyStatement({ actions: ['elasticloadbalancing:RegisterTargets', 'elasticloadbalancing:DeregisterTargets'], resources: groups }),
      );
    }
    const zones = [...new Set(used('route53').map((env) => traffic.route53[env].hostedZoneId))];
    if (zones.length) {
      const arns = zones.map((z) => Stack.of(this).formatArn({ service: 'route53', region: '', account: '', resource: 'hostedzone', resourceName: z }));
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'], resources: arns }));
    }
  }

  /** cloudwatch:DescribeAlarms on exactly the CloudWatch alarms the `alarms` context names. */
  private grantAlarms(fn: nodejs.NodejsFunction): void {
    const names = [
      ...new Set(
        Object.values(this.props.settings.alarms ?? {})
          .flat()
          .flatMap((r) => ('cloudwatchAlarm' in r ? [r.cloudwatchAlarm] : [])),
      ),
    ];
    if (names.length === 0) return;
    const arns = names.map((n) =>
      Stack.of(this).formatArn({ service: 'cloudwatch', resource: 'alarm', resourceName: n, arnFormat: ArnFormat.COLON_RESOURCE_NAME }),
    );
    fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['cloudwatch:DescribeAlarms'], resources: arns }));
  }

  private grant(fn: nodejs.NodejsFunction, id: FunctionId, spec: FunctionSpec): void {
    const { data, notifications, keySets, identity } = this.props;
    for (const [t, access] of Object.entries(this.tables(id)) as [TableKey, string][]) {
      if (access === 'write') data.tables[t].grantReadWriteData(fn);
      else data.tables[t].grantReadData(fn);
    }
    if (spec.artifacts === 'write') data.artifacts.grantReadWrite(fn);
    else if (spec.artifacts === 'read') data.artifacts.grantRead(fn);
    if (spec.callsAgents || spec.holdsNodeCredentials) keySets.agentKeys.grantRead(fn);
    if (spec.signsApprovalLinks) keySets.approvalLinkKeys.grantRead(fn);
    if (spec.callsAgents || spec.managesConnections) this.props.webSocket.grantManageConnections(fn);
    if (spec.publishes) {
      notifications.approverTopic.grantPublish(fn);
      notifications.notificationTopic.grantPublish(fn);
    }
    if (spec.managesIdentities && identity.userPool)
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: IDENTITY_ADMIN_ACTIONS, resources: [identity.userPool.userPoolArn] }));
    if (spec.routesTraffic) this.grantTraffic(fn);
    if (spec.exportsAudit) this.props.auditExport.grantExport(fn);
    if (spec.watchesAlarms) this.grantAlarms(fn);
    if (spec.managesSubscriptions) {
      const topics = [notifications.approverTopic.topicArn, notifications.notificationTopic.topicArn];
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['sns:Subscribe', 'sns:ListSubscriptionsByTopic'], resources: topics }));
      // SNS authorises these on the subscription, whose ARN (topic ARN plus a generated id) exists only once subscribed.
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: SUBSCRIPTION_ACTIONS, resources: ['*'] }));
      if (identity.userPool) fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['cognito-idp:ListUsers'], resources: [identity.userPool.userPoolArn] }));
    }
    if (spec.startsPipeline)
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:StartExecution'], resources: [this.pipelineArn, this.rollbackArn] }));
    // A cancel stops the deployment's pipeline execution (its .sync child stops with it).
    if (spec.stopsPipeline) {
      const executions = Stack.of(this).formatArn({
        service: 'states',
        resource: 'execution',
        resourceName: 'kmod-Pipeline:*',
        arnFormat: ArnFormat.COLON_RESOURCE_NAME,
      });
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:StopExecution'], resources: [executions] }));
    }
    // Approval gates wait in the pipeline (waitForTaskToken); answering them settles the token.
    if (spec.answersTasks)
      fn.addToRolePolicy(new iam.PolicyStatement({ actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'], resources: [this.pipelineArn] }));
  }
}
