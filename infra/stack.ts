/**
 * The orchestrator on AWS, built from the same catalogs the local cloud serves: every table of
 * functions/lib/tables.ts, every function and route of functions/catalog.ts, every state machine
 * from its ASL file in statemachines/ (deployed unchanged, placeholders filled by
 * DefinitionSubstitutions). The parts live in infra/constructs/; this file wires them together.
 */
import {
  AspectPriority,
  Aspects,
  type CfnElement,
  aws_iam as iam,
  CfnOutput,
  Stack,
  type StackProps,
  type aws_apigateway as apigw,
  type aws_dynamodb as dynamodb,
  type aws_lambda_nodejs as nodejs,
  type aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { FunctionsById, StateMachineId } from '../functions/catalog.ts';
import type { TableKey } from '../functions/lib/tables.ts';
import { HttpApi } from './constructs/api.ts';
import { AuditExport } from './constructs/auditExport.ts';
import { Console } from './constructs/console.ts';
import { Data } from './constructs/data.ts';
import { Functions } from './constructs/functions.ts';
import { Identity } from './constructs/identity.ts';
import { Monitoring } from './constructs/monitoring.ts';
import { logicalIdOutsideLayers } from './constructs/layer.ts';
import { Notifications } from './constructs/notifications.ts';
import { WebAcl } from './constructs/webAcl.ts';
import { KeySets } from './constructs/secrets.ts';
import { WebSocketLayer } from './constructs/websocket.ts';
import { Workflows } from './constructs/workflows.ts';
import { acknowledgeNagFindings } from './nag.ts';
import type { OrchestratorSettings } from './settings.ts';

export { ROOT } from './constructs/functions.ts';
export { ACCEPTED_NAG_FINDINGS } from './nag.ts';
export { ContextError, settingsFromContext, type OrchestratorSettings } from './settings.ts';

export class OrchestratorStack extends Stack {
  readonly tables: Record<TableKey, dynamodb.Table>;
  readonly functions: FunctionsById<nodejs.NodejsFunction>;
  readonly stateMachines: Record<StateMachineId, sfn.StateMachine>;
  readonly api: apigw.RestApi;
  readonly webSocket: WebSocketLayer;
  /** The CloudWatch dashboard and alarms, in a nested stack (infra/constructs/monitoring.ts). */
  readonly monitoring: Monitoring;
  /** The audit export's bucket, Glue table and Athena workgroup, in a nested stack (infra/constructs/auditExport.ts). */
  readonly auditExport: AuditExport;
  /** The web console's bucket, distribution and Cognito client, in a nested stack (infra/constructs/console.ts); only with a hosted Cognito domain. */
  readonly console?: Console;

  constructor(scope: Construct, id: string, settings: OrchestratorSettings, props?: StackProps) {
    super(scope, id, props);
    const data = new Data(this, 'Data');
    const notifications = new Notifications(this, 'Notifications', { key: data.key });
    const keySets = new KeySets(this, 'KeySets', { key: data.key });
    const identity = new Identity(this, 'Identity', settings);
    // Before the functions: the approval gate mails links under the API's URL.
    const http = new HttpApi(this, 'HttpApi', { settings, key: data.key });
    // Before the functions too: enrolment answers its URL, and agent calls post to its connections.
    const webSocket = new WebSocketLayer(this, 'WebSocket', {
      key: data.key,
      throttleRateLimit: settings.throttleRateLimit,
      throttleBurstLimit: settings.throttleBurstLimit,
    });
    const auditExport = new AuditExport(this, 'AuditExport', { retentionDays: settings.auditExportRetentionDays });
    // The web console (docs/adr/0035-web-console.md): with a Cognito user pool and its hosted domain (cognitoDomainPrefix).
    // Before the functions: they accept tokens issued to its app client.
    if (identity.userPool && identity.domainUrl) {
      this.console = new Console(this, 'Console', { userPool: identity.userPool, domainUrl: identity.domainUrl, api: http.origin, wsUrl: webSocket.url });
      identity.acceptClient(this.console.client.userPoolClientId);
    }
    const functions = new Functions(this, 'Functions', {
      settings,
      data,
      notifications,
      keySets,
      identity,
      publicApiUrl: http.publicUrl,
      webSocket,
      auditExport,
    });
    keySets.rotateWith(functions.sole('rotatesKeySets'), settings.keyRotationDays);
    notifications.syncSubscriptionsWith(functions.sole('syncsSubscriptionsOnDeploy'), { approvers: settings.approvers, key: data.key });
    const workflows = new Workflows(this, 'Workflows', { functions: functions.byId, key: data.key });
    http.serve(functions.byId, functions.sole('authorizesRequests'));
    webSocket.serve(functions.byId);
    const waf = new WebAcl(this, 'WebAcl', { settings: settings.waf, stage: http.api.deploymentStage, key: data.key });

    this.monitoring = new Monitoring(this, 'Monitoring', {
      api: http.api,
      webSocket,
      functions: functions.byId,
      stateMachines: workflows.byId,
      tables: data.tables,
      alarmEmails: settings.alarmEmails,
    });

    this.auditExport = auditExport;
    this.tables = data.tables;
    this.functions = functions.byId;
    this.stateMachines = workflows.byId;
    this.api = http.api;
    this.webSocket = webSocket;

    new CfnOutput(this, 'ApiUrl', { value: this.api.url });
    new CfnOutput(this, 'WebSocketUrl', { value: webSocket.url });
    if (identity.userPool && identity.userClient && identity.serviceClient) {
      new CfnOutput(this, 'UserPoolId', { value: identity.userPool.userPoolId });
      new CfnOutput(this, 'UserPoolClientId', { value: identity.userClient.userPoolClientId });
      new CfnOutput(this, 'ServiceClientId', { value: identity.serviceClient.userPoolClientId });
    }
    if (identity.tokenUrl) new CfnOutput(this, 'TokenUrl', { value: identity.tokenUrl });
    // Scripts that reach the API by its id (LocalStack's http://<id>.execute-api.localhost.localstack.cloud:4566/v1).
    new CfnOutput(this, 'RestApiId', { value: this.api.restApiId });
    new CfnOutput(this, 'ArtifactBucketName', { value: data.artifacts.bucketName });
    // The directory every request is authorised from: the first Admin is written here by hand.
    new CfnOutput(this, 'UsersTableName', { value: data.tables.users.tableName });
    new CfnOutput(this, 'ApproverTopicArn', { value: notifications.approverTopic.topicArn });
    new CfnOutput(this, 'NotificationTopicArn', { value: notifications.notificationTopic.topicArn });
    new CfnOutput(this, 'WebAclArn', { value: waf.acl.attrArn });
    new CfnOutput(this, 'AlarmTopicArn', { value: this.monitoring.topic.topicArn });
    new CfnOutput(this, 'DashboardName', { value: this.monitoring.dashboard.dashboardName });
    new CfnOutput(this, 'AuditExportBucketName', { value: auditExport.bucket.bucketName });
    new CfnOutput(this, 'AuditAthenaWorkGroup', { value: auditExport.workgroup.ref });
    if (this.console) {
      new CfnOutput(this, 'ConsoleUrl', { value: this.console.url });
      new CfnOutput(this, 'ConsoleClientId', { value: this.console.client.userPoolClientId });
    }

    acknowledgeNagFindings(this);
    // IAM splits a role's large default policy into OverflowPolicyN in a mutating aspect at synth:
    // those new policies' accepted findings are acknowledged right after, on the role's subtree.
    Aspects.of(this).add(
      { visit: (c) => c instanceof iam.Role && c.node.children.some((k) => k.node.id.startsWith('OverflowPolicy')) && acknowledgeNagFindings(c) },
      { priority: AspectPriority.READONLY },
    );
  }

  /** Layers are not part of logical IDs: resources keep the IDs deployed stacks already have (constructs/layer.ts). */
  protected override allocateLogicalId(element: CfnElement): string {
    return logicalIdOutsideLayers(element);
  }
}
