/**
 * The AWS traffic routers (ALB weighted target groups, Route 53 weighted records) cannot run here:
 * the local cloud has no ELB or Route 53. Their SDK calls are checked with aws-sdk-client-mock; the
 * Nodes and Clusters tables they also touch are faked. The local router, which the same interface
 * drives, is tested for real in test/integration/router.test.ts.
 */
import {
  DeregisterTargetsCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
  ModifyRuleCommand,
  RegisterTargetsCommand,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand, Route53Client } from '@aws-sdk/client-route-53';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';

const tableSwitch = vi.fn(async () => undefined);
const recordWeights = vi.fn(async () => undefined);
vi.mock('../../../../functions/lib/trafficRouter.ts', () => ({
  clusterTableRouter: { activeColour: async () => 'blue', switchTo: tableSwitch },
  recordWeights,
}));
const node = (nodeId: string, ip: string) => ({
  environment: 'Production',
  nodeId,
  address: `http://${ip}:7000`,
  workloadUrl: `http://${ip}:8080/`,
  modules: {},
  registeredAt: '',
});
vi.mock('../../../../functions/lib/nodes.ts', () => ({
  listNodes: async () => [
    node('prod-01', '10.0.0.1'),
    node('prod-02', '10.0.0.2'),
    node('prod-03', '10.0.0.3'),
    { ...node('prod-04', '10.0.0.4'), workloadUrl: undefined },
  ],
}));

const { albRouter } = await import('../../../../functions/lib/routers/alb.ts');
const { route53Router } = await import('../../../../functions/lib/routers/route53.ts');

const elb = mockClient(ElasticLoadBalancingV2Client);
const r53 = mockClient(Route53Client);
const ARN = (name: string) => `arn:aws:elasticloadbalancing:eu-west-1:123456789012:${name}`;
const staging = {
  listenerArn: ARN('listener/app/kmod/1/2'),
  targetGroups: { blue: ARN('targetgroup/blue/1'), green: ARN('targetgroup/green/2') },
  previewRuleArn: ARN('listener-rule/app/kmod/1/2/3'),
  previewUrl: 'https://staging.example.com',
};
const production = { listenerArn: ARN('listener/app/kmod/9/9'), targetGroups: { stable: ARN('targetgroup/stable/3'), canary: ARN('targetgroup/canary/4') } };

beforeEach(() => {
  elb.reset();
  r53.reset();
  tableSwitch.mockClear();
  recordWeights.mockClear();
});

describe('ALB weighted target groups', () => {
  it('switches with one ModifyListener (100/0), then points the preview rule at the idle colour, then records the colour', async () => {
    await albRouter('Staging', staging).switchTo('Staging', 'green', 'dep-1');
    const modify = elb.commandCalls(ModifyListenerCommand);
    expect(modify).toHaveLength(1);
    expect(modify[0].args[0].input).toEqual({
      ListenerArn: staging.listenerArn,
      DefaultActions: [
        {
          Type: 'forward',
          ForwardConfig: {
            TargetGroups: [
              { TargetGroupArn: staging.targetGroups.green, Weight: 100 },
              { TargetGroupArn: staging.targetGroups.blue, Weight: 0 },
            ],
          },
        },
      ],
    });
    const rule = elb.commandCalls(ModifyRuleCommand)[0].args[0].input;
    expect(rule.RuleArn).toBe(staging.previewRuleArn);
    expect(rule.Actions?.[0].ForwardConfig?.TargetGroups).toEqual([{ TargetGroupArn: staging.targetGroups.blue, Weight: 1 }]);
    expect(tableSwitch).toHaveBeenCalledWith('Staging', 'green', 'dep-1');
    expect(await albRouter('Staging', staging).previewRoute('Staging')).toEqual({ url: 'https://staging.example.com', headers: { 'x-kmod-preview': '1' } });
  });

  it('a canary wave moves the canary nodes (ip targets) to the canary group around setting the weights', async () => {
    await albRouter('Production', production).setCanaryWeight('Production', ['prod-01', 'prod-04'], 30, 'dep-2');
    const order = elb.calls().map((c) => c.args[0].constructor.name);
    expect(order).toEqual(['RegisterTargetsCommand', 'ModifyListenerCommand', 'DeregisterTargetsCommand']);
    expect(elb.commandCalls(RegisterTargetsCommand)[0].args[0].input).toEqual({
      TargetGroupArn: production.targetGroups.canary,
      Targets: [{ Id: '10.0.0.1', Port: 8080 }],
    });
    expect(elb.commandCalls(ModifyListenerCommand)[0].args[0].input.DefaultActions?.[0].ForwardConfig?.TargetGroups).toEqual([
      { TargetGroupArn: production.targetGroups.stable, Weight: 70 },
      { TargetGroupArn: production.targetGroups.canary, Weight: 30 },
    ]);
    expect(elb.commandCalls(DeregisterTargetsCommand)[0].args[0].input).toEqual({
      TargetGroupArn: production.targetGroups.stable,
      Targets: [{ Id: '10.0.0.1', Port: 8080 }],
    });
    expect(recordWeights).toHaveBeenCalledWith('Production', ['prod-01', 'prod-04'], 30, 'dep-2');
  });

  it('ending the canary puts every node back in the stable group first, then weights 100/0, then empties the canary group', async () => {
    await albRouter('Production', production).setCanaryWeight('Production', [], 100, 'dep-2');
    expect(elb.calls().map((c) => c.args[0].constructor.name)).toEqual(['RegisterTargetsCommand', 'ModifyListenerCommand', 'DeregisterTargetsCommand']);
    expect(elb.commandCalls(RegisterTargetsCommand)[0].args[0].input.Targets).toHaveLength(3);
    expect(elb.commandCalls(DeregisterTargetsCommand)[0].args[0].input).toEqual({
      TargetGroupArn: production.targetGroups.canary,
      Targets: ['10.0.0.1', '10.0.0.2', '10.0.0.3'].map((Id) => ({ Id, Port: 8080 })),
    });
    expect(await albRouter('Production', production).servedCounts('Production')).toBeUndefined();
  });

  it('refuses a Blue-Green switch on a canary listener, and a missing configuration', async () => {
    await expect(albRouter('Production', production).switchTo('Production', 'green', 'x')).rejects.toThrow(/no blue and green target groups/);
    expect(() => albRouter('QA')).toThrow(/ALB_ROUTERS has no entry/);
    expect(elb.calls()).toHaveLength(0);
  });
});

describe('ALB: nodes joining, moving and leaving', () => {
  const calls = () => [
    ...elb.commandCalls(DeregisterTargetsCommand).map((c) => ['deregister', c.args[0].input.TargetGroupArn, c.args[0].input.Targets]),
    ...elb.commandCalls(RegisterTargetsCommand).map((c) => ['register', c.args[0].input.TargetGroupArn, c.args[0].input.Targets]),
  ];
  it('a joining node is registered in its colour’s target group (Blue-Green) or the stable one (canary), never the canary group', async () => {
    await albRouter('Staging', staging).updateNode!('Staging', { ...node('stg-9', '10.0.1.9'), colour: 'green' } as never, undefined, 'node:stg-9');
    await albRouter('Production', production).updateNode!('Production', node('prod-9', '10.0.0.9') as never, undefined, 'node:prod-9');
    expect(calls()).toEqual([
      ['register', staging.targetGroups.green, [{ Id: '10.0.1.9', Port: 8080 }]],
      ['register', production.targetGroups.stable, [{ Id: '10.0.0.9', Port: 8080 }]],
    ]);
  });

  it('a moved endpoint leaves every group before the new one is registered; the same endpoint changes nothing', async () => {
    const before = node('prod-9', '10.0.0.9');
    await albRouter('Production', production).updateNode!('Production', node('prod-9', '10.0.0.19') as never, before as never, 'node:prod-9');
    expect(calls()).toEqual([
      ['deregister', production.targetGroups.stable, [{ Id: '10.0.0.9', Port: 8080 }]],
      ['deregister', production.targetGroups.canary, [{ Id: '10.0.0.9', Port: 8080 }]],
      ['register', production.targetGroups.stable, [{ Id: '10.0.0.19', Port: 8080 }]],
    ]);
    elb.reset();
    await albRouter('Production', production).updateNode!('Production', before as never, before as never, 'node:prod-9');
    expect(calls()).toEqual([]);
  });

  it('a decommissioned node leaves every target group', async () => {
    const before = { ...node('stg-9', '10.0.1.9'), colour: 'blue' };
    await albRouter('Staging', staging).updateNode!('Staging', { ...before, decommissionedAt: '2026-11-29T00:00:00Z' } as never, before as never, 'admin');
    expect(calls()).toEqual([
      ['deregister', staging.targetGroups.blue, [{ Id: '10.0.1.9', Port: 8080 }]],
      ['deregister', staging.targetGroups.green, [{ Id: '10.0.1.9', Port: 8080 }]],
    ]);
  });
});

describe('Route 53 weighted records', () => {
  const stg = {
    hostedZoneId: 'Z123',
    recordName: 'app.staging.example.com',
    type: 'CNAME' as const,
    ttl: 30,
    values: { blue: 'blue.staging.example.com', green: 'green.staging.example.com' },
    previewRecordName: 'preview.staging.example.com',
  };

  it('switches both weighted records and the preview record in one change batch', async () => {
    await route53Router('Staging', stg).switchTo('Staging', 'green', 'dep-3');
    const calls = r53.commandCalls(ChangeResourceRecordSetsCommand);
    expect(calls).toHaveLength(1);
    const { HostedZoneId, ChangeBatch } = calls[0].args[0].input;
    expect(HostedZoneId).toBe('Z123');
    expect(ChangeBatch?.Changes).toEqual([
      {
        Action: 'UPSERT',
        ResourceRecordSet: {
          Name: stg.recordName,
          Type: 'CNAME',
          SetIdentifier: 'green',
          Weight: 100,
          TTL: 30,
          ResourceRecords: [{ Value: stg.values.green }],
        },
      },
      {
        Action: 'UPSERT',
        ResourceRecordSet: { Name: stg.recordName, Type: 'CNAME', SetIdentifier: 'blue', Weight: 0, TTL: 30, ResourceRecords: [{ Value: stg.values.blue }] },
      },
      { Action: 'UPSERT', ResourceRecordSet: { Name: stg.previewRecordName, Type: 'CNAME', TTL: 30, ResourceRecords: [{ Value: stg.values.blue }] } },
    ]);
    expect(tableSwitch).toHaveBeenCalledWith('Staging', 'green', 'dep-3');
  });

  it('reads the live colour from the heavier record', async () => {
    r53.on(ListResourceRecordSetsCommand).resolves({
      ResourceRecordSets: [
        { Name: 'app.staging.example.com.', Type: 'CNAME', SetIdentifier: 'blue', Weight: 100 },
        { Name: 'app.staging.example.com.', Type: 'CNAME', SetIdentifier: 'green', Weight: 0 },
      ],
    });
    expect(await route53Router('Staging', stg).activeColour('Staging')).toBe('blue');
  });

  it('sets a canary share as the two records’ weights; no canary nodes means all on stable', async () => {
    const prod = {
      hostedZoneId: 'Z9',
      recordName: 'app.example.com',
      type: 'CNAME' as const,
      ttl: 10,
      values: { stable: 's.example.com', canary: 'c.example.com' },
    };
    await route53Router('Production', prod).setCanaryWeight('Production', ['prod-01'], 10, 'dep-4');
    await route53Router('Production', prod).setCanaryWeight('Production', [], 100, 'dep-4');
    const weights = r53
      .commandCalls(ChangeResourceRecordSetsCommand)
      .map((c) => c.args[0].input.ChangeBatch?.Changes?.map((x) => [x.ResourceRecordSet?.SetIdentifier, x.ResourceRecordSet?.Weight]));
    expect(weights).toEqual([
      [
        ['stable', 90],
        ['canary', 10],
      ],
      [
        ['stable', 100],
        ['canary', 0],
      ],
    ]);
  });
});
