/**
 * The CloudWatch dashboard and alarms (infra/constructs/monitoring.ts,
 * docs/adr/0029-cloudwatch-dashboards-and-alarms.md): every alarm's metric, threshold, periods and
 * comparison, its actions on the one alarm topic, the dashboard's sections and metrics, the
 * topic's encryption and email subscription, and cdk-nag.
 */
import type { CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, STATE_MACHINES } from '../../functions/catalog.ts';
import { APPROVAL_METRICS } from '../../functions/domain/approvalDeadlines.ts';
import { CLOUDWATCH_METRICS } from '../../functions/domain/cloudwatchMetrics.ts';
import { METRICS } from '../../functions/lib/metrics.ts';
import { TABLES } from '../../functions/lib/tables.ts';
import { DASHBOARD_NAME } from '../../infra/constructs/monitoring.ts';
import { ContextError, type OrchestratorStack } from '../../infra/stack.ts';
import { synthStack } from './synth.ts';

type Resource = { Type: string; Properties: Record<string, any> };
type Dimension = { Name: string; Value: unknown };
type MetricStat = { Metric: { Namespace: string; MetricName: string; Dimensions?: Dimension[] }; Period: number; Stat: string };

const synth = synthStack;

let stack: OrchestratorStack;
let parent: Record<string, Resource>;
let nested: Record<string, Resource>;
/** Nested-stack parameter → the logical id in the main stack it is given. */
let parameterSource: Record<string, string>;

beforeAll(() => {
  stack = synth({ trustedRootsPem: 'PEM', alarmEmail: 'oncall@example.com, ops@example.com', etcdEndpoints: 'http://10.0.0.5:2379' });
  parent = Template.fromStack(stack).toJSON().Resources;
  nested = Template.fromStack(stack.monitoring).toJSON().Resources;
  const nestedResource = parent[stack.getLogicalId(stack.monitoring.nestedStackResource as CfnElement)];
  parameterSource = Object.fromEntries(
    Object.entries(nestedResource.Properties.Parameters as Record<string, { Ref?: string; 'Fn::GetAtt'?: [string, string] }>).map(([p, v]) => [
      p,
      v.Ref ?? v['Fn::GetAtt']![0],
    ]),
  );
}, 180_000);

const ofType = (resources: Record<string, Resource>, type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const logicalIdOf = (c: IConstruct) => stack.getLogicalId(c.node.defaultChild as CfnElement);
/** A value of the nested template as the main stack's logical id it refers to (through the nested stack's parameters), or itself. */
const source = (v: unknown): unknown => {
  const ref = (v as { Ref?: string } | undefined)?.Ref;
  return ref && parameterSource[ref] ? parameterSource[ref] : v;
};
const topicId = () => ofType(nested, 'AWS::SNS::Topic')[0][0];

function alarm(name: string): Resource['Properties'] {
  const found = ofType(nested, 'AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.AlarmName === name);
  expect(found, name).toHaveLength(1);
  return found[0][1].Properties;
}

/** The metrics an alarm reads (MetricStat entries, math inputs included), dimensions resolved to the main stack. */
function alarmMetrics(a: Resource['Properties']) {
  return (a.Metrics as { MetricStat?: MetricStat }[])
    .filter((m) => m.MetricStat)
    .map(({ MetricStat: s }) => ({
      namespace: s!.Metric.Namespace,
      metricName: s!.Metric.MetricName,
      dimensions: Object.fromEntries((s!.Metric.Dimensions ?? []).map((d) => [d.Name, source(d.Value)])),
      period: s!.Period,
      stat: s!.Stat,
    }));
}

/** What every alarm must say: condition, periods, and ALARM and OK both to the alarm topic. */
function expectAlarm(
  name: string,
  expected: { threshold: number; comparison: string; evaluationPeriods: number; datapointsToAlarm: number; treatMissingData?: string },
) {
  const a = alarm(name);
  expect(
    {
      threshold: a.Threshold,
      comparison: a.ComparisonOperator,
      evaluationPeriods: a.EvaluationPeriods,
      datapointsToAlarm: a.DatapointsToAlarm,
      treatMissingData: a.TreatMissingData,
    },
    name,
  ).toEqual({ treatMissingData: 'notBreaching', ...expected });
  expect(a.ActionsEnabled, name).toBe(true);
  expect(a.AlarmActions, name).toEqual([{ Ref: topicId() }]);
  expect(a.OKActions, name).toEqual([{ Ref: topicId() }]);
  expect(a.AlarmDescription, name).toContain('docs/runbooks/alarms.md');
  return alarmMetrics(a);
}

const functionIds = () => Object.keys(stack.functions) as (keyof typeof stack.functions)[];

describe('the alarms (docs/runbooks/alarms.md)', () => {
  it('alarm on REST API 5XX (more than 5 per 5 min in 2 of 3) and p99 latency (over 5 s for 15 min)', () => {
    const api = { ApiName: 'kmod-orchestrator', Stage: logicalIdOf(stack.api.deploymentStage) };
    expect(
      expectAlarm('kmod-RestApi-Fault-Count-Critical', { threshold: 5, comparison: 'GreaterThanThreshold', evaluationPeriods: 3, datapointsToAlarm: 2 }),
    ).toEqual([{ namespace: 'AWS/ApiGateway', metricName: '5XXError', dimensions: api, period: 300, stat: 'Sum' }]);
    expect(
      expectAlarm('kmod-RestApi-Latency-P99-Warning', { threshold: 5000, comparison: 'GreaterThanThreshold', evaluationPeriods: 3, datapointsToAlarm: 3 }),
    ).toEqual([{ namespace: 'AWS/ApiGateway', metricName: 'Latency', dimensions: api, period: 300, stat: 'p99' }]);
  });

  it('alarm on WebSocket API integration and execution errors', () => {
    const ws = { ApiId: logicalIdOf(stack.webSocket.api), Stage: 'ws' };
    for (const [name, metricName] of [
      ['kmod-WebSocketApi-IntegrationErrors-Critical', 'IntegrationError'],
      ['kmod-WebSocketApi-ExecutionErrors-Critical', 'ExecutionError'],
    ]) {
      expect(expectAlarm(name, { threshold: 5, comparison: 'GreaterThanThreshold', evaluationPeriods: 3, datapointsToAlarm: 2 })).toEqual([
        { namespace: 'AWS/ApiGateway', metricName, dimensions: ws, period: 300, stat: 'Sum' },
      ]);
    }
  });

  it('alarm on every function’s errors (any, in 2 of 3 periods) and throttles (any)', () => {
    expect(functionIds().length).toBe(Object.keys(FUNCTIONS).length);
    for (const id of functionIds()) {
      const fn = { FunctionName: logicalIdOf(stack.functions[id]!) };
      expect(
        expectAlarm(`kmod-${id}-Fault-Count-Critical`, { threshold: 0, comparison: 'GreaterThanThreshold', evaluationPeriods: 3, datapointsToAlarm: 2 }),
      ).toEqual([{ namespace: 'AWS/Lambda', metricName: 'Errors', dimensions: fn, period: 300, stat: 'Sum' }]);
      expect(
        expectAlarm(`kmod-${id}-Throttled-Count-Warning`, { threshold: 0, comparison: 'GreaterThanThreshold', evaluationPeriods: 1, datapointsToAlarm: 1 }),
      ).toEqual([{ namespace: 'AWS/Lambda', metricName: 'Throttles', dimensions: fn, period: 300, stat: 'Sum' }]);
    }
  });

  it('alarm on every state machine’s failures (Rollback: any; the others: more than 2 in an hour) and timeouts (any)', () => {
    for (const id of Object.keys(STATE_MACHINES) as (keyof typeof STATE_MACHINES)[]) {
      const machine = { StateMachineArn: logicalIdOf(stack.stateMachines[id]) };
      const rollback = id === 'Rollback';
      expect(
        expectAlarm(`kmod-${id}StateMachine-Failure-Count-Critical`, {
          threshold: rollback ? 0 : 2,
          comparison: 'GreaterThanThreshold',
          evaluationPeriods: 1,
          datapointsToAlarm: 1,
        }),
      ).toEqual([{ namespace: 'AWS/States', metricName: 'ExecutionsFailed', dimensions: machine, period: rollback ? 300 : 3600, stat: 'Sum' }]);
      expect(
        expectAlarm(`kmod-${id}StateMachine-TimedOut-Count-Critical`, {
          threshold: 0,
          comparison: 'GreaterThanThreshold',
          evaluationPeriods: 1,
          datapointsToAlarm: 1,
        }),
      ).toEqual([{ namespace: 'AWS/States', metricName: 'ExecutionsTimedOut', dimensions: machine, period: 300, stat: 'Sum' }]);
    }
  });

  it('alarm on every table’s read and write throttles and system errors (any)', () => {
    for (const key of Object.keys(TABLES) as (keyof typeof TABLES)[]) {
      const name = `kmod-${key[0].toUpperCase()}${key.slice(1)}Table`;
      const table = logicalIdOf(stack.tables[key]);
      const any = { threshold: 0, comparison: 'GreaterThanThreshold', evaluationPeriods: 1, datapointsToAlarm: 1 };
      for (const [kind, metricName] of [
        ['Read', 'ReadThrottleEvents'],
        ['Write', 'WriteThrottleEvents'],
      ]) {
        expect(expectAlarm(`${name}-${kind}-Throttled-Events-Warning`, any)).toEqual([
          { namespace: 'AWS/DynamoDB', metricName, dimensions: { TableName: table }, period: 300, stat: 'Sum' },
        ]);
      }
      const systemErrors = expectAlarm(`${name}-SystemError-Count-Critical`, any);
      expect(new Set(systemErrors.map((m) => `${m.namespace} ${m.metricName} ${m.dimensions.TableName} ${m.stat} ${m.period}`))).toEqual(
        new Set([`AWS/DynamoDB SystemErrors ${table} Sum 300`]),
      );
      // Summed over the operations the functions use (SystemErrors is reported per operation).
      expect(systemErrors.map((m) => m.dimensions.Operation)).toEqual(expect.arrayContaining(['GetItem', 'PutItem', 'UpdateItem', 'Query', 'BatchWriteItem']));
    }
  });

  it('alarm on approvals near their deadline (at least one) and past it (at least one for 10 minutes), on the watcher’s EMF metrics', () => {
    const approval = (metricName: string) => [
      { namespace: APPROVAL_METRICS.namespace, metricName, dimensions: { service: APPROVAL_METRICS.service }, period: 300, stat: 'Maximum' },
    ];
    expect(
      expectAlarm('kmod-Approvals-NearDeadline-Warning', {
        threshold: 1,
        comparison: 'GreaterThanOrEqualToThreshold',
        evaluationPeriods: 1,
        datapointsToAlarm: 1,
      }),
    ).toEqual(approval('ApprovalsNearDeadline'));
    expect(
      expectAlarm('kmod-Approvals-Overdue-Critical', {
        threshold: 1,
        comparison: 'GreaterThanOrEqualToThreshold',
        evaluationPeriods: 2,
        datapointsToAlarm: 2,
      }),
    ).toEqual(approval('ApprovalsOverdue'));
  });

  it('has exactly these alarms, every one notifying the alarm topic on ALARM and OK and nothing else', () => {
    const alarms = ofType(nested, 'AWS::CloudWatch::Alarm');
    const expected = 2 + 2 + 2 * functionIds().length + 2 * Object.keys(STATE_MACHINES).length + 3 * Object.keys(TABLES).length + 2;
    expect(alarms).toHaveLength(expected);
    for (const [, a] of alarms) {
      expect(a.Properties.AlarmActions, a.Properties.AlarmName).toEqual([{ Ref: topicId() }]);
      expect(a.Properties.OKActions, a.Properties.AlarmName).toEqual([{ Ref: topicId() }]);
      expect(a.Properties.InsufficientDataActions, a.Properties.AlarmName).toBeUndefined();
    }
  });
});

describe('the alarm topic', () => {
  it('is encrypted with its own rotating key that CloudWatch (of this account) may use, and refuses publishing without TLS', () => {
    const [[keyId, key]] = ofType(nested, 'AWS::KMS::Key');
    expect(key.Properties.EnableKeyRotation).toBe(true);
    expect(key.Properties.KeyPolicy.Statement).toContainEqual(
      expect.objectContaining({
        Effect: 'Allow',
        Principal: { Service: 'cloudwatch.amazonaws.com' },
        Action: ['kms:Decrypt', 'kms:GenerateDataKey*'],
        Condition: { StringEquals: { 'aws:SourceAccount': { Ref: 'AWS::AccountId' } } },
      }),
    );
    const [[, topic]] = ofType(nested, 'AWS::SNS::Topic');
    expect(topic.Properties.KmsMasterKeyId).toEqual({ 'Fn::GetAtt': [keyId, 'Arn'] });
    const [[, policy]] = ofType(nested, 'AWS::SNS::TopicPolicy');
    expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Action: 'sns:Publish', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
  });

  it('subscribes each alarmEmail address, and is an output of the stack with the dashboard name', () => {
    const subs = ofType(nested, 'AWS::SNS::Subscription').map(([, s]) => s.Properties);
    expect(subs.map((s) => s.Endpoint).sort()).toEqual(['oncall@example.com', 'ops@example.com']);
    for (const s of subs) expect(s).toMatchObject({ Protocol: 'email', TopicArn: { Ref: topicId() } });
    const outputs = Template.fromStack(stack).toJSON().Outputs;
    expect(Object.keys(outputs)).toEqual(expect.arrayContaining(['AlarmTopicArn', 'DashboardName']));
  });

  it('without alarmEmail: the same topic and alarms, no subscription', () => {
    const bare = synth({ trustedRootsPem: 'PEM' });
    const resources = Template.fromStack(bare.monitoring).toJSON().Resources as Record<string, Resource>;
    expect(ofType(resources, 'AWS::SNS::Subscription')).toEqual([]);
    expect(ofType(resources, 'AWS::SNS::Topic')).toHaveLength(1);
    // Without etcd there is no DiscoverNodes function, and no alarms for it.
    expect(ofType(resources, 'AWS::CloudWatch::Alarm').map(([, a]) => a.Properties.AlarmName)).not.toContain('kmod-DiscoverNodes-Fault-Count-Critical');
  });

  it('refuses an alarmEmail that is not a list of addresses', () => {
    expect(() => synth({ trustedRootsPem: 'PEM', alarmEmail: 'oncall@example.com,not-an-address' })).toThrow(ContextError);
    expect(() => synth({ trustedRootsPem: 'PEM', alarmEmail: 'oncall@example.com,not-an-address' })).toThrow(/alarmEmail.*not-an-address/);
  });
});

describe('the dashboard', () => {
  /** The dashboard body, tokens rendered as the main stack's logical ids they refer to. */
  function body(): { widgets: { type: string; properties: { title?: string; markdown?: string; metrics?: unknown[][] } }[] } {
    const [[, dashboard], ...others] = ofType(nested, 'AWS::CloudWatch::Dashboard');
    expect(others).toEqual([]);
    expect(dashboard.Properties.DashboardName).toBe(DASHBOARD_NAME);
    const [sep, parts] = dashboard.Properties.DashboardBody['Fn::Join'] as [string, unknown[]];
    return JSON.parse(
      parts
        .map((p) => {
          if (typeof p === 'string') return p;
          const s = source(p);
          return typeof s === 'string' ? `<${s}>` : `<${JSON.stringify(p).replace(/"/g, '')}>`;
        })
        .join(sep),
    );
  }
  /** Every metric line of every graph: [namespace, name, dimension name, value, …] without the trailing options. */
  const metricLines = () =>
    body()
      .widgets.flatMap((w) => w.properties.metrics ?? [])
      .map((line) => line.filter((x) => typeof x === 'string') as string[]);
  const shows = (namespace: string, metricName: string, dimension: string, value: string) =>
    metricLines().some((l) => l[0] === namespace && l[1] === metricName && l.slice(2).join(' ').includes(`${dimension} ${value}`));

  it('has the sections: APIs, deployments, approvals, functions, state machines, tables; under CloudWatch’s 500 widgets', () => {
    const b = body();
    const headers = b.widgets.filter((w) => w.type === 'text').map((w) => w.properties.markdown ?? '');
    expect(headers.filter((h) => h.startsWith('# '))).toEqual([
      '# kmod-orchestrator: APIs',
      '# Deployments',
      '# Approvals',
      '# Lambda functions',
      '# State machines',
      '# DynamoDB tables',
    ]);
    expect(headers.some((h) => h.includes('REST API (kmod-orchestrator, stage v1)'))).toBe(true);
    expect(headers.some((h) => h.includes('WebSocket API (kmod-orchestrator-ws)'))).toBe(true);
    for (const id of functionIds())
      expect(
        headers.some((h) => h.includes(`[kmod-${id}]`)),
        id,
      ).toBe(true);
    for (const id of Object.keys(STATE_MACHINES))
      expect(
        headers.some((h) => h.includes(`[kmod-${id}]`)),
        id,
      ).toBe(true);
    for (const key of Object.keys(TABLES))
      expect(
        headers.some((h) => h.includes(`[${key} table]`)),
        key,
      ).toBe(true);
    expect(b.widgets.length).toBeLessThan(500);
  });

  it('shows the REST API’s 4XX and 5XX errors and p50/p90/p99 latency, and the WebSocket API’s traffic and errors', () => {
    const stage = `<${logicalIdOf(stack.api.deploymentStage)}>`;
    for (const m of ['4XXError', '5XXError', 'Latency', 'Count']) expect(shows('AWS/ApiGateway', m, 'Stage', stage), m).toBe(true);
    const latency = body()
      .widgets.filter((w) => w.properties.title === 'Latency')
      .flatMap((w) => w.properties.metrics ?? [])
      .filter((l) => l[0] === 'AWS/ApiGateway')
      .map((l) => (l.at(-1) as { stat?: string }).stat);
    expect(latency).toEqual(['p50', 'p90', 'p99']);
    const ws = `<${logicalIdOf(stack.webSocket.api)}>`;
    for (const m of ['ConnectCount', 'MessageCount', 'ClientError', 'IntegrationError', 'ExecutionError', 'IntegrationLatency'])
      expect(shows('AWS/ApiGateway', m, 'ApiId', ws), m).toBe(true);
  });

  it('shows every function’s errors, throttles and duration, every machine’s failed, timed-out and aborted executions and duration, every table’s throttles, system errors and consumed capacity', () => {
    for (const id of functionIds()) {
      const fn = `<${logicalIdOf(stack.functions[id]!)}>`;
      for (const m of ['Errors', 'Throttles', 'Duration', 'Invocations']) expect(shows('AWS/Lambda', m, 'FunctionName', fn), `${id} ${m}`).toBe(true);
    }
    for (const id of Object.keys(STATE_MACHINES) as (keyof typeof STATE_MACHINES)[]) {
      const machine = `<${logicalIdOf(stack.stateMachines[id])}>`;
      for (const m of ['ExecutionsFailed', 'ExecutionsTimedOut', 'ExecutionsAborted', 'ExecutionTime'])
        expect(shows('AWS/States', m, 'StateMachineArn', machine), `${id} ${m}`).toBe(true);
    }
    for (const key of Object.keys(TABLES) as (keyof typeof TABLES)[]) {
      const table = `<${logicalIdOf(stack.tables[key])}>`;
      for (const m of ['ReadThrottleEvents', 'WriteThrottleEvents', 'SystemErrors', 'ConsumedReadCapacityUnits', 'ConsumedWriteCapacityUnits'])
        expect(shows('AWS/DynamoDB', m, 'TableName', table), `${key} ${m}`).toBe(true);
    }
  });

  it('graphs the business metrics the functions publish in EMF, each environment, strategy and verdict a line of its own', () => {
    const expressions = body()
      .widgets.flatMap((w) => (w.properties.metrics ?? []).map((l) => [w.properties.title, (l.at(-1) as { expression?: string }).expression]))
      .filter(([, e]) => e?.startsWith(`SEARCH('{"${CLOUDWATCH_METRICS.namespace}"`));
    const search = (name: string, dims: string[], stat: string) =>
      `SEARCH('{"${CLOUDWATCH_METRICS.namespace}","service"${dims.map((d) => `,"${d}"`).join('')}} "service"="${CLOUDWATCH_METRICS.service}" MetricName="${name}"', '${stat}', 300)`;
    expect(expressions).toEqual([
      ['Deployments by outcome', search('DeploymentsStarted', ['environment'], 'Sum')],
      ...['DeploymentsSucceeded', 'DeploymentsFailed', 'DeploymentsRolledBack', 'DeploymentsCancelled'].map((m) => [
        'Deployments by outcome',
        search(m, ['environment', 'strategy'], 'Sum'),
      ]),
      ['Canary verdicts', search('CanaryVerdicts', ['environment', 'verdict'], 'Sum')],
      ['Stage duration (p90, seconds)', search('StageDuration', ['stage', 'status'], 'p90')],
      ['Approval wait (p90, seconds)', search('ApprovalWait', ['environment', 'outcome'], 'p90')],
      ['Agent calls', search('AgentCallLatency', [], 'p99')],
      ['Agent calls', search('AgentCallErrors', [], 'Sum')],
      ['Nodes by health', search('NodesByHealth', ['environment', 'status'], 'Maximum')],
    ]);
    // The names graphed are the names published (functions/lib/metrics.ts).
    const published = Object.values(METRICS).flatMap((m) => ('cloudwatch' in m ? [m.cloudwatch.name] : []));
    for (const name of published)
      expect(
        expressions.some(([, e]) => e?.includes(`MetricName="${name}"`)),
        name,
      ).toBe(true);
  });

  it('publishes nodes per environment and health every minute: PublishNodeHealth on a schedule, reading the Nodes table only', () => {
    const fn = logicalIdOf(stack.functions.PublishNodeHealth!);
    const rules = ofType(parent, 'AWS::Events::Rule').filter(([, r]) => JSON.stringify(r.Properties.Targets ?? []).includes(`"${fn}"`));
    expect(rules.map(([, r]) => r.Properties.ScheduleExpression)).toEqual(['rate(1 minute)']);
    expect(parent[fn].Properties.Environment.Variables.NODES_TABLE).toBeDefined();
    const role = (parent[fn].Properties.Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0];
    const actions = ofType(parent, 'AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles ?? []).includes(`"${role}"`))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[])
      .flatMap((st) => [st.Action].flat());
    expect(actions.filter((a) => a.startsWith('dynamodb:')).length).toBeGreaterThan(0);
    expect(actions.filter((a) => /^dynamodb:(PutItem|UpdateItem|DeleteItem|BatchWriteItem)$/.test(a))).toEqual([]);
    // It publishes through EMF on stdout: no CloudWatch API permission.
    expect(actions.filter((a) => a.startsWith('cloudwatch:'))).toEqual([]);
  });

  it('shows the approval gates: pending, near their deadline, past it', () => {
    const [widget] = body().widgets.filter((w) => w.properties.title === 'Approval gates waiting for a decision');
    const lines = (widget.properties.metrics ?? []).map((l) => l.slice(0, 4));
    expect(lines).toEqual(
      [APPROVAL_METRICS.pending, APPROVAL_METRICS.nearDeadline, APPROVAL_METRICS.overdue].map((m) => [
        APPROVAL_METRICS.namespace,
        m,
        'service',
        APPROVAL_METRICS.service,
      ]),
    );
  });
});

describe('the stacks', () => {
  it('keep the main stack under CloudFormation’s 500 resources: the monitoring and the audit export are nested stacks in it', () => {
    expect(Object.keys(parent).length).toBeLessThan(500);
    expect(
      ofType(parent, 'AWS::CloudFormation::Stack')
        .map(([id]) => id)
        .sort(),
    ).toEqual([stack.monitoring, stack.auditExport].map((n) => stack.getLogicalId(n.nestedStackResource as CfnElement)).sort());
    expect(ofType(parent, 'AWS::CloudWatch::Alarm')).toEqual([]);
  });

  it('are cdk-nag (AwsSolutions) clean, the nested stack included', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
    // The check did visit the nested stack's resources.
    expect(stack.node.findAll().some((c) => c === stack.monitoring.topic)).toBe(true);
  });
});
