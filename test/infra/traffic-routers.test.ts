/**
 * The AWS traffic routers in the CDK app (docs/adr/0020-traffic-routers.md): settings validated at
 * synth, the routesTraffic functions told which routers to use, and IAM on exactly the listeners,
 * target groups and hosted zones named; the alarms that stop deployments (CloudWatch alarms by
 * name) likewise; cdk-nag clean.
 */
import { App, type CfnElement } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { beforeAll, describe, expect, it } from 'vitest';
import { FUNCTIONS, type FunctionSpec } from '../../functions/catalog.ts';
import { ContextError } from '../../infra/settings.ts';
import { OrchestratorStack, settingsFromContext } from '../../infra/stack.ts';

const ARN = (name: string) => `arn:aws:elasticloadbalancing:us-east-1:123456789012:${name}`;
const alb = {
  Staging: {
    listenerArn: ARN('listener/app/kmod/1/2'),
    targetGroups: { blue: ARN('targetgroup/blue/1'), green: ARN('targetgroup/green/2') },
    previewRuleArn: ARN('listener-rule/app/kmod/1/2/3'),
    previewUrl: 'https://staging.example.com',
  },
};
const route53 = {
  Production: { hostedZoneId: 'Z0123ABC', recordName: 'app.example.com', type: 'CNAME', ttl: 30, values: { stable: 's.example.com', canary: 'c.example.com' } },
};
const context: Record<string, unknown> = {
  trustedRootsPem: 'PEM',
  trafficRouters: JSON.stringify({ Staging: 'alb', Production: 'route53' }),
  albRouters: JSON.stringify(alb),
  route53Routers: route53,
  alarms: {
    Production: [
      { name: 'Api5xx', cloudwatchAlarm: 'kmod-prod-5xx' },
      { name: 'NodeLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' },
    ],
    Staging: [{ name: 'StagingP99', cloudwatchAlarm: 'kmod-staging-p99' }],
  },
};

let stack: OrchestratorStack;
let resources: Record<string, { Type: string; Properties: Record<string, any> }>;

beforeAll(() => {
  stack = new OrchestratorStack(
    new App(),
    'KmodTraffic',
    settingsFromContext((k) => context[k]),
  );
  resources = Template.fromStack(stack).toJSON().Resources;
}, 180_000);

const routing = (Object.entries(FUNCTIONS) as [keyof typeof FUNCTIONS, FunctionSpec][]).filter(([, s]) => s.routesTraffic).map(([id]) => id);
const logicalId = (id: keyof typeof FUNCTIONS) => stack.getLogicalId(stack.functions[id]!.node.defaultChild as CfnElement);
/** The IAM statements attached to a function's role (its default policy and any overflow). */
function statementsOf(id: keyof typeof FUNCTIONS) {
  const role = stack.getLogicalId(stack.functions[id]!.role!.node.defaultChild as CfnElement);
  return (
    Object.values(resources)
      // Inline policies and, past the inline size limit, the managed policies CDK overflows into.
      .filter(
        (r) =>
          (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') &&
          ((r.Properties.Roles ?? []) as { Ref: string }[]).some((x) => x.Ref === role),
      )
      .flatMap((r) => r.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown }[])
  );
}
const actions = (s: { Action: string | string[] }) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

describe('traffic routers in the stack', () => {
  it('tells exactly the routesTraffic functions which router each environment uses', () => {
    // ApiFleet: enrolled hosts join and decommissioned ones leave their environment's router.
    expect(routing.sort()).toEqual(['ApiFleet', 'CanaryGate', 'CompleteEnvironment', 'PlanEnvironment', 'RollbackEnvironment', 'SmokeTest', 'SwitchTraffic']);
    for (const id of routing) {
      const vars = resources[logicalId(id)].Properties.Environment.Variables;
      expect(JSON.parse(vars.TRAFFIC_ROUTERS)).toEqual({ Staging: 'alb', Production: 'route53' });
      expect(JSON.parse(vars.ALB_ROUTERS)).toEqual(alb);
      expect(JSON.parse(vars.ROUTE53_ROUTERS).Production).toMatchObject(route53.Production);
    }
    expect(resources[logicalId('DeployBatch')].Properties.Environment.Variables.TRAFFIC_ROUTERS).toBeUndefined();
    // The cluster view names each environment's router: the setting, without the routers' resources or IAM.
    const clusters = resources[logicalId('ApiClusters')].Properties.Environment.Variables;
    expect(JSON.parse(clusters.TRAFFIC_ROUTERS)).toEqual({ Staging: 'alb', Production: 'route53' });
    expect(clusters.ALB_ROUTERS).toBeUndefined();
    expect(
      statementsOf('ApiClusters')
        .flatMap(actions)
        .filter((a) => a.startsWith('elasticloadbalancing:') || a.startsWith('route53:')),
    ).toEqual([]);
  });

  it('grants the router calls on the named listener, rule, target groups and hosted zone only, and to no other function', () => {
    for (const id of routing) {
      const traffic = statementsOf(id).filter((s) => actions(s).some((a) => a.startsWith('elasticloadbalancing:') || a.startsWith('route53:')));
      expect(traffic.map((s) => [actions(s).sort(), s.Resource])).toEqual([
        [
          ['elasticloadbalancing:ModifyListener', 'elasticloadbalancing:ModifyRule'],
          [alb.Staging.listenerArn, alb.Staging.previewRuleArn],
        ],
        [
          ['elasticloadbalancing:DeregisterTargets', 'elasticloadbalancing:RegisterTargets'],
          [alb.Staging.targetGroups.blue, alb.Staging.targetGroups.green],
        ],
        [
          ['route53:ChangeResourceRecordSets', 'route53:ListResourceRecordSets'],
          { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':route53:::hostedzone/Z0123ABC']] },
        ],
      ]);
    }
    for (const id of Object.keys(FUNCTIONS) as (keyof typeof FUNCTIONS)[]) {
      if (routing.includes(id) || !stack.functions[id]) continue;
      expect(
        statementsOf(id)
          .flatMap(actions)
          .filter((a) => a.startsWith('elasticloadbalancing:') || a.startsWith('route53:')),
        id,
      ).toEqual([]);
    }
  });

  it('gives exactly the alarm-watching functions the alarms and cloudwatch:DescribeAlarms on the named CloudWatch alarms only', () => {
    const watching = (Object.entries(FUNCTIONS) as [keyof typeof FUNCTIONS, FunctionSpec][]).filter(([, s]) => s.watchesAlarms).map(([id]) => id);
    expect(watching.sort()).toEqual(['CanaryGate', 'VerifyBatch']);
    // Every function this stack creates (DiscoverNodes only exists with etcd).
    for (const id of (Object.keys(FUNCTIONS) as (keyof typeof FUNCTIONS)[]).filter((f) => stack.functions[f])) {
      const vars = resources[logicalId(id)]?.Properties.Environment?.Variables ?? {};
      const describe = statementsOf(id).filter((s) => actions(s).some((a) => a.startsWith('cloudwatch:DescribeAlarms')));
      if (watching.includes(id)) {
        expect(JSON.parse(vars.ALARMS), id).toEqual(context.alarms);
        expect(describe.map((s) => s.Resource)).toEqual([
          [
            {
              'Fn::Join': [
                '',
                ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':alarm:kmod-prod-5xx'],
              ],
            },
            {
              'Fn::Join': [
                '',
                ['arn:', { Ref: 'AWS::Partition' }, ':cloudwatch:', { Ref: 'AWS::Region' }, ':', { Ref: 'AWS::AccountId' }, ':alarm:kmod-staging-p99'],
              ],
            },
          ],
        ]);
      } else {
        expect(vars.ALARMS, id).toBeUndefined();
        expect(describe, id).toEqual([]);
      }
    }
  });

  it('is cdk-nag (AwsSolutions) clean', () => {
    const report = new AwsSolutionsChecks().validateScope(stack);
    expect(report.violations.map((v) => `${v.ruleName} ${v.violatingResources.map((r) => r.constructPath).join(', ')}`)).toEqual([]);
  });
});

describe('traffic router settings', () => {
  const settings = (extra: Record<string, unknown>) => settingsFromContext((k) => ({ trustedRootsPem: 'PEM', ...extra })[k]);

  it('defaults to no router settings (every environment keeps cluster-table)', () => {
    expect(settings({}).traffic).toEqual({ kinds: {}, alb: {}, route53: {} });
  });

  it('refuses an unknown kind, the local router, and a router without its resources, saying what to pass', () => {
    expect(() => settings({ trafficRouters: '{"Staging":"nginx"}' })).toThrow(ContextError);
    expect(() => settings({ trafficRouters: '{"Staging":"local"}' })).toThrow(/trafficRouters must map environments/);
    expect(() => settings({ trafficRouters: '{"Staging":"alb"}' })).toThrow(/name its listener and target groups in albRouters/);
    expect(() => settings({ trafficRouters: '{"Production":"route53"}' })).toThrow(/route53Routers/);
    expect(() => settings({ albRouters: '{"Staging":{"listenerArn":"not-an-arn","targetGroups":{}}}' })).toThrow(/albRouters is not valid/);
    expect(() => settings({ trafficRouters: 'not json' })).toThrow(/must be JSON/);
    expect(() => settings({ alarms: '{"Production":[{"name":"x","cloudwatchAlarm":""}]}' })).toThrow(/alarms is not valid: Production\.0\.cloudwatchAlarm/);
    expect(settings({}).alarms).toBeUndefined();
  });
});
