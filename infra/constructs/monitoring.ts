/**
 * CloudWatch dashboard and alarms (docs/adr/0029-cloudwatch-dashboards-and-alarms.md), built with
 * cdk-monitoring-constructs: the REST API, the WebSocket API, every function, state machine and
 * table of the stack, and the approvals near their deadline (the ApprovalsNearDeadline and
 * ApprovalsOverdue metrics WatchApprovalDeadlines publishes). Every alarm notifies one encrypted
 * SNS topic on ALARM and on OK; `-c alarmEmail=<addresses>` subscribes email to it. What each alarm
 * means and what to do first: docs/runbooks/alarms.md.
 *
 * A nested stack: some 140 alarms would take the main stack past CloudFormation's 500 resources.
 */
import {
  Duration,
  NestedStack,
  RemovalPolicy,
  Stack,
  type aws_apigateway as apigw,
  type aws_apigatewayv2 as apigwv2,
  aws_cloudwatch as cloudwatch,
  aws_dynamodb as dynamodb,
  aws_iam as iam,
  aws_kms as kms,
  type aws_lambda as lambda,
  aws_sns as sns,
  aws_sns_subscriptions as subscriptions,
  type aws_stepfunctions as sfn,
} from 'aws-cdk-lib';
import {
  type CustomAlarmThreshold,
  DefaultDashboardFactory,
  LatencyType,
  MetricStatistic,
  MonitoringFacade,
  SnsAlarmActionStrategy,
} from 'cdk-monitoring-constructs';
import type { Construct } from 'constructs';
import { WEBSOCKET } from '../../functions/catalog.ts';
import { APPROVAL_METRICS } from '../../functions/domain/approvalDeadlines.ts';
import { CLOUDWATCH_METRICS } from '../../functions/domain/cloudwatchMetrics.ts';

/** The one dashboard's name. */
export const DASHBOARD_NAME = 'kmod-orchestrator';
/** Alarm names start with this (kmod-<resource>-<what>). */
export const ALARM_PREFIX = 'kmod';
/** The alarms' runbook (a path in this repository), named in every alarm's description. */
export const ALARMS_RUNBOOK = 'docs/runbooks/alarms.md';

const FIVE_MINUTES = Duration.minutes(5);
/** A condition that holds for 2 of 3 five-minute periods: a persisting problem, not one retried blip. */
const PERSISTING: CustomAlarmThreshold = { period: FIVE_MINUTES, evaluationPeriods: 3, datapointsToAlarm: 2 };
/** Any occurrence within one five-minute period. */
const AT_ONCE: CustomAlarmThreshold = { period: FIVE_MINUTES, evaluationPeriods: 1, datapointsToAlarm: 1 };

/**
 * Every alarm's threshold, in one place (docs/runbooks/alarms.md explains each). Counts alarm when
 * the count is greater than the number given (cdk-monitoring-constructs' max*), the approval
 * metrics when at least the threshold.
 */
export const ALARM_THRESHOLDS = {
  /** REST API 5XX answers: more than 5 in a five-minute period, in 2 of 3 periods. */
  api5xx: { maxErrorCount: 5, ...PERSISTING },
  /** REST API p99 latency above 5 s for three periods in a row (handlers answer in well under 1 s; Lambda's limit is 29 s). */
  apiLatencyP99: { maxLatency: Duration.seconds(5), period: FIVE_MINUTES, evaluationPeriods: 3, datapointsToAlarm: 3 },
  /** WebSocket API integration errors (its functions failed) and execution errors (API Gateway failed): more than 5, 2 of 3 periods. */
  webSocketErrors: { threshold: 5, ...PERSISTING },
  /** A function's Errors (it threw or timed out): any, in 2 of 3 periods; a retried one-off does not page. */
  lambdaErrors: { maxErrorCount: 0, ...PERSISTING },
  /** A function's Throttles: any (the account's or the function's concurrency is exhausted). */
  lambdaThrottles: { maxErrorCount: 0, ...AT_ONCE },
  /** Failed executions of the Pipeline and the strategy machines: more than 2 in an hour (one failed deployment is an outcome, three are a pattern). */
  deploymentFailures: { maxErrorCount: 2, period: Duration.hours(1), evaluationPeriods: 1, datapointsToAlarm: 1 },
  /** Failed executions of the Rollback machine: any (a rollback that did not finish leaves a module Degraded). */
  rollbackFailures: { maxErrorCount: 0, ...AT_ONCE },
  /** Timed-out executions of any machine: any (no machine sets a timeout; a task's own timeout failed it). */
  timedOutExecutions: { maxErrorCount: 0, ...AT_ONCE },
  /** A table's read or write throttled events: any (on-demand tables throttle only on a hot partition or a sudden burst). */
  dynamoThrottles: { maxThrottledEventsThreshold: 0, ...AT_ONCE },
  /** A table's system errors (DynamoDB's own 500s): any. */
  dynamoSystemErrors: { maxErrorCount: 0, ...AT_ONCE },
  /** Pending approvals within the warning window of their deadline: at least one. */
  approvalsNearDeadline: { threshold: 1, ...AT_ONCE },
  /** Pending approvals past their deadline (their gate did not close): at least one, for two runs of the watcher in a row. */
  approvalsOverdue: { threshold: 1, period: FIVE_MINUTES, evaluationPeriods: 2, datapointsToAlarm: 2 },
} as const;

export interface MonitoringProps {
  api: apigw.RestApi;
  webSocket: { api: apigwv2.WebSocketApi; stage: apigwv2.WebSocketStage };
  functions: Record<string, lambda.IFunction>;
  stateMachines: Record<string, sfn.IStateMachine>;
  tables: Record<string, dynamodb.ITable>;
  /** Email addresses subscribed to the alarm topic (context alarmEmail). */
  alarmEmails: string[];
}

export class Monitoring extends NestedStack {
  readonly topic: sns.Topic;
  readonly facade: MonitoringFacade;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: MonitoringProps) {
    super(scope, id, { description: 'kmod-orchestrator: CloudWatch dashboard and alarms (docs/runbooks/alarms.md)' });
    this.topic = this.alarmTopic(props.alarmEmails);
    const action = new SnsAlarmActionStrategy({ onAlarmTopic: this.topic, onOkTopic: this.topic });
    const dashboards = new DefaultDashboardFactory(this, 'Dashboards', {
      dashboardNamePrefix: DASHBOARD_NAME,
      createDashboard: true,
      createSummaryDashboard: false,
      createAlarmDashboard: false,
    });
    this.facade = new MonitoringFacade(this, 'Facade', {
      alarmFactoryDefaults: { alarmNamePrefix: ALARM_PREFIX, actionsEnabled: true, action, runbookLink: ALARMS_RUNBOOK },
      metricFactoryDefaults: { period: FIVE_MINUTES },
      dashboardFactory: dashboards,
    });
    this.monitorApis(props);
    this.monitorDeployments();
    this.monitorApprovals();
    this.monitorFunctions(props.functions);
    this.monitorStateMachines(props.stateMachines);
    this.monitorTables(props.tables);
    const dashboard = dashboards.dashboard;
    if (!dashboard) throw new Error('the dashboard factory made no dashboard');
    this.dashboard = dashboard;
  }

  /**
   * Encrypted with its own key: CloudWatch must be allowed to use the key to publish to the topic,
   * and that grant does not belong on the key of the orchestrator's data.
   */
  private alarmTopic(emails: string[]): sns.Topic {
    const key = new kms.Key(this, 'AlarmTopicKey', {
      enableKeyRotation: true,
      description: 'kmod-orchestrator alarm notifications',
      removalPolicy: RemovalPolicy.DESTROY,
    });
    key.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'CloudWatchAlarmsPublish',
        principals: [new iam.ServicePrincipal('cloudwatch.amazonaws.com')],
        actions: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        resources: ['*'], // in a key policy, "*" is this key
        conditions: { StringEquals: { 'aws:SourceAccount': Stack.of(this).account } },
      }),
    );
    const topic = new sns.Topic(this, 'AlarmTopic', { displayName: 'kmod alarms', masterKey: key, enforceSSL: true });
    for (const email of emails) topic.addSubscription(new subscriptions.EmailSubscription(email));
    return topic;
  }

  private monitorApis({ api, webSocket }: MonitoringProps): void {
    this.facade.addLargeHeader('kmod-orchestrator: APIs');
    this.facade.monitorApiGateway({
      api,
      apiStage: api.deploymentStage.stageName,
      alarmFriendlyName: 'RestApi',
      humanReadableName: 'REST API (kmod-orchestrator, stage v1)',
      latencyTypesToRender: [LatencyType.P50, LatencyType.P90, LatencyType.P99],
      add5XXFaultCountAlarm: { Critical: ALARM_THRESHOLDS.api5xx },
      addLatencyP99Alarm: { Warning: ALARM_THRESHOLDS.apiLatencyP99 },
    });
    // cdk-monitoring-constructs has no WebSocket API monitoring: its AWS/ApiGateway metrics by ApiId and Stage.
    const ws = (metricName: string, statistic: string, label: string) =>
      new cloudwatch.Metric({
        namespace: 'AWS/ApiGateway',
        metricName,
        dimensionsMap: { ApiId: webSocket.api.apiId, Stage: WEBSOCKET.stage },
        statistic,
        period: FIVE_MINUTES,
        label,
      });
    const errors = (what: string) => ({
      Critical: {
        ...ALARM_THRESHOLDS.webSocketErrors,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        // No messages, no errors: a quiet API is healthy.
        treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
        alarmDescriptionOverride: `WebSocket API ${what}: more than ${ALARM_THRESHOLDS.webSocketErrors.threshold} in 5 minutes, in 2 of 3 periods.`,
      },
    });
    this.facade.monitorCustom({
      alarmFriendlyName: 'WebSocketApi',
      humanReadableName: 'WebSocket API (kmod-orchestrator-ws)',
      metricGroups: [
        { title: 'Connections and messages', metrics: [ws('ConnectCount', 'Sum', 'Connects'), ws('MessageCount', 'Sum', 'Messages')] },
        {
          title: 'Errors',
          metrics: [
            ws('ClientError', 'Sum', 'Client errors (4XX)'),
            {
              metric: ws('IntegrationError', 'Sum', 'Integration errors'),
              alarmFriendlyName: 'IntegrationErrors',
              addAlarm: errors('integration errors (its functions failed)'),
            },
            {
              metric: ws('ExecutionError', 'Sum', 'Execution errors'),
              alarmFriendlyName: 'ExecutionErrors',
              addAlarm: errors('execution errors (API Gateway failed)'),
            },
          ],
        },
        { title: 'Integration latency', metrics: ['p50', 'p90', 'p99'].map((p) => ws('IntegrationLatency', p, `Integration latency ${p.toUpperCase()}`)) },
      ],
    });
  }

  /** Errors, throttles and duration of every function (duration and invocations are on the dashboard by default). */
  private monitorFunctions(functions: Record<string, lambda.IFunction>): void {
    this.facade.addLargeHeader('Lambda functions');
    for (const [id, lambdaFunction] of Object.entries(functions)) {
      this.facade.monitorLambdaFunction({
        lambdaFunction,
        alarmFriendlyName: id,
        humanReadableName: `kmod-${id}`,
        addFaultCountAlarm: { Critical: ALARM_THRESHOLDS.lambdaErrors },
        addThrottlesCountAlarm: { Warning: ALARM_THRESHOLDS.lambdaThrottles },
      });
    }
  }

  /** Failed, timed-out, aborted executions and duration of every state machine; aborted ones are cancels, shown, not alarmed. */
  private monitorStateMachines(machines: Record<string, sfn.IStateMachine>): void {
    this.facade.addLargeHeader('State machines');
    for (const [id, stateMachine] of Object.entries(machines)) {
      this.facade.monitorStepFunction({
        stateMachine,
        alarmFriendlyName: `${id}StateMachine`,
        humanReadableName: `kmod-${id}`,
        addFailedExecutionCountAlarm: { Critical: id === 'Rollback' ? ALARM_THRESHOLDS.rollbackFailures : ALARM_THRESHOLDS.deploymentFailures },
        addTimedOutExecutionCountAlarm: { Critical: ALARM_THRESHOLDS.timedOutExecutions },
      });
    }
  }

  /** Throttles, system errors and consumed capacity of every table (on demand: no provisioned capacity to compare with). */
  private monitorTables(tables: Record<string, dynamodb.ITable>): void {
    this.facade.addLargeHeader('DynamoDB tables');
    for (const [key, table] of Object.entries(tables)) {
      this.facade.monitorDynamoTable({
        table,
        billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
        alarmFriendlyName: `${key[0].toUpperCase()}${key.slice(1)}Table`,
        humanReadableName: `${key} table`,
        addReadThrottledEventsCountAlarm: { Warning: ALARM_THRESHOLDS.dynamoThrottles },
        addWriteThrottledEventsCountAlarm: { Warning: ALARM_THRESHOLDS.dynamoThrottles },
        addSystemErrorCountAlarm: { Critical: ALARM_THRESHOLDS.dynamoSystemErrors },
      });
    }
  }

  /**
   * The business section: what the functions publish in EMF from the same committed increments as
   * /metrics (functions/lib/metrics.ts), graphed by search so each environment, strategy and
   * verdict is a line of its own. Graphs, no alarms: a failed deployment is an outcome, not an incident.
   */
  private monitorDeployments(): void {
    this.facade.addLargeHeader('Deployments');
    const { namespace, service } = CLOUDWATCH_METRICS;
    const search = (metricName: string, dimensions: string[], statistic: MetricStatistic, label: string) => ({
      namespace,
      searchQuery: `MetricName="${metricName}"`,
      dimensionsMap: { service, ...Object.fromEntries(dimensions.map((d) => [d, undefined])) },
      statistic,
      label,
    });
    this.facade.monitorCustom({
      alarmFriendlyName: 'Deployments',
      humanReadableName: 'Deployments (outcomes, canary verdicts, stages, agent calls, fleet health)',
      metricGroups: [
        {
          title: 'Deployments by outcome',
          metrics: CLOUDWATCH_METRICS.deploymentOutcomes.map((m) =>
            search(m, m === 'DeploymentsStarted' ? ['environment'] : ['environment', 'strategy'], MetricStatistic.SUM, m.replace('Deployments', '')),
          ),
        },
        {
          title: 'Canary verdicts',
          metrics: [search(CLOUDWATCH_METRICS.canaryVerdicts, ['environment', 'verdict'], MetricStatistic.SUM, 'Canary waves')],
        },
        {
          title: 'Stage duration (p90, seconds)',
          metrics: [search(CLOUDWATCH_METRICS.stageDuration, ['stage', 'status'], MetricStatistic.P90, 'Stage')],
        },
        {
          title: 'Approval wait (p90, seconds)',
          metrics: [search(CLOUDWATCH_METRICS.approvalWait, ['environment', 'outcome'], MetricStatistic.P90, 'Approval')],
        },
        {
          title: 'Agent calls',
          metrics: [
            search(CLOUDWATCH_METRICS.agentCallLatency, [], MetricStatistic.P99, 'Latency p99 (ms)'),
            search(CLOUDWATCH_METRICS.agentCallErrors, [], MetricStatistic.SUM, 'Errors'),
          ],
        },
        {
          // A gauge PublishNodeHealth sends every minute, zeros included: the latest count of each series.
          title: 'Nodes by health',
          metrics: [search(CLOUDWATCH_METRICS.nodesByHealth, ['environment', 'status'], MetricStatistic.MAX, 'Nodes')],
        },
      ],
    });
  }

  /** The business section: approval gates by how close their deadline is (functions/handlers/tasks/watchApprovalDeadlines.ts). */
  private monitorApprovals(): void {
    this.facade.addLargeHeader('Approvals');
    const metric = (metricName: string, label: string) =>
      new cloudwatch.Metric({
        namespace: APPROVAL_METRICS.namespace,
        metricName,
        dimensionsMap: { service: APPROVAL_METRICS.service },
        statistic: 'Maximum',
        period: FIVE_MINUTES,
        label,
      });
    const atLeast = (threshold: { threshold: number } & CustomAlarmThreshold, description: string) => ({
      ...threshold,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      // The watcher publishes every 5 minutes, zeros included; missing data means it did not run, which its own Errors alarm reports.
      treatMissingDataOverride: cloudwatch.TreatMissingData.NOT_BREACHING,
      alarmDescriptionOverride: description,
    });
    this.facade.monitorCustom({
      alarmFriendlyName: 'Approvals',
      humanReadableName: 'Approvals (pending gates by deadline)',
      metricGroups: [
        {
          title: 'Approval gates waiting for a decision',
          metrics: [
            metric(APPROVAL_METRICS.pending, 'Pending'),
            {
              metric: metric(APPROVAL_METRICS.nearDeadline, 'Near their deadline'),
              alarmFriendlyName: 'NearDeadline',
              addAlarm: {
                Warning: atLeast(
                  ALARM_THRESHOLDS.approvalsNearDeadline,
                  'An approval gate is Pending within the warning window of its deadline (APPROVAL_DEADLINE_WARNING_SECONDS, default 2 h): decide it, or the deployment is rejected when it expires.',
                ),
              },
            },
            {
              metric: metric(APPROVAL_METRICS.overdue, 'Past their deadline'),
              alarmFriendlyName: 'Overdue',
              addAlarm: {
                Critical: atLeast(
                  ALARM_THRESHOLDS.approvalsOverdue,
                  'An approval gate is still Pending past its deadline for 10 minutes: its expiry (CloseGate) did not close it, and the deployment holds its locks.',
                ),
              },
            },
          ],
        },
      ],
    });
  }
}
