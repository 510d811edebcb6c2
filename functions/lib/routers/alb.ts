/**
 * ALB weighted target groups as a traffic router (docs/adr/0020-traffic-routers.md). Configured per
 * environment in ALB_ROUTERS (JSON):
 *
 *   { "Staging":    { "listenerArn": "…", "targetGroups": { "blue": "…", "green": "…" }, "previewRuleArn": "…", "previewUrl": "https://…" },
 *     "Production": { "listenerArn": "…", "targetGroups": { "stable": "…", "canary": "…" } } }
 *
 * Blue-Green: the listener's default action forwards to both colours' target groups, 100/0; a
 * switch is one ModifyListener (immediate for new requests). The optional preview rule (a listener
 * rule with an `x-kmod-preview: 1` header condition) is pointed at the idle colour after the switch.
 * Canary: the canary nodes' workload endpoints are moved (ip targets) from the stable to the canary
 * target group and the listener weights set to the wave's share. Only calls that allow
 * resource-level permissions are used (the live colour is the record this adapter keeps). The ALB does not report requests
 * per node here (CloudWatch does, later), so `servedCounts` is undefined: the canary's share is
 * then set but not measured.
 */
import {
  DeregisterTargetsCommand,
  ElasticLoadBalancingV2Client,
  ModifyListenerCommand,
  ModifyRuleCommand,
  RegisterTargetsCommand,
  type TargetDescription,
} from '@aws-sdk/client-elastic-load-balancing-v2';
import type { Environment } from '../../domain/environments.ts';
import { albSettingsSchema, type AlbSettings } from './settings.ts';
import { otherColour, type Colour } from '../../domain/strategy.ts';
import { listNodes, type NodeRecord } from '../nodes.ts';
import { clusterTableRouter, recordWeights, type TrafficRouter } from '../trafficRouter.ts';

let client: ElasticLoadBalancingV2Client | undefined;
const elb = () => {
  client ??= new ElasticLoadBalancingV2Client({});
  return client;
};

/** A node's workload endpoint as an ALB ip target. */
export function targetOf(n: Pick<NodeRecord, 'workloadUrl'>): TargetDescription | undefined {
  if (!n.workloadUrl) return undefined;
  const u = new URL(n.workloadUrl);
  return { Id: u.hostname, Port: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
}

const forward = (groups: { arn: string; weight: number }[]) => [
  { Type: 'forward' as const, ForwardConfig: { TargetGroups: groups.map((g) => ({ TargetGroupArn: g.arn, Weight: g.weight })) } },
];

export function albRouter(
  environment: Environment,
  settings: AlbSettings = albSettingsSchema.parse(JSON.parse(process.env.ALB_ROUTERS || '{}'))[environment],
): TrafficRouter {
  if (!settings) throw new Error(`${environment} uses the ALB router, but ALB_ROUTERS has no entry for it`);
  const tg = settings.targetGroups as Record<string, string>;
  const router: TrafficRouter = {
    kind: 'alb',
    weighted: true,
    // The record this adapter keeps on every switch: reading the listener back would need
    // elasticloadbalancing:DescribeListeners, which has no resource-level permissions (Resource '*').
    activeColour: (env) => clusterTableRouter.activeColour(env),
    async switchTo(env, colour: Colour, by) {
      if (!('blue' in settings.targetGroups)) throw new Error(`${env}'s ALB router has no blue and green target groups`);
      const idle = otherColour(colour);
      // One call moves every new request: the atomic switch.
      await elb().send(
        new ModifyListenerCommand({
          ListenerArn: settings.listenerArn,
          DefaultActions: forward([
            { arn: tg[colour], weight: 100 },
            { arn: tg[idle], weight: 0 },
          ]),
        }),
      );
      if (settings.previewRuleArn)
        await elb().send(new ModifyRuleCommand({ RuleArn: settings.previewRuleArn, Actions: forward([{ arn: tg[idle], weight: 1 }]) }));
      await clusterTableRouter.switchTo(env, colour, by);
    },
    async setCanaryWeight(env, canaryNodes, percent, by) {
      if (!('stable' in settings.targetGroups)) throw new Error(`${env}'s ALB router has no stable and canary target groups`);
      const nodes = await listNodes(env);
      const ids = new Set(canaryNodes);
      const targets = (list: NodeRecord[]) => list.flatMap((n) => targetOf(n) ?? []);
      const canary = targets(nodes.filter((n) => ids.has(n.nodeId)));
      if (canaryNodes.length === 0) {
        // Every node serves again: all back in the stable group before the canary group is emptied.
        const all = targets(nodes);
        if (all.length) await elb().send(new RegisterTargetsCommand({ TargetGroupArn: tg.stable, Targets: all }));
        await elb().send(
          new ModifyListenerCommand({
            ListenerArn: settings.listenerArn,
            DefaultActions: forward([
              { arn: tg.stable, weight: 100 },
              { arn: tg.canary, weight: 0 },
            ]),
          }),
        );
        // Every node out of the canary group (deregistering a target that is not there changes nothing);
        // listing the group would need DescribeTargetHealth, which has no resource-level permissions.
        if (all.length) await elb().send(new DeregisterTargetsCommand({ TargetGroupArn: tg.canary, Targets: all }));
      } else {
        if (canary.length) await elb().send(new RegisterTargetsCommand({ TargetGroupArn: tg.canary, Targets: canary }));
        await elb().send(
          new ModifyListenerCommand({
            ListenerArn: settings.listenerArn,
            DefaultActions: forward([
              { arn: tg.stable, weight: 100 - percent },
              { arn: tg.canary, weight: percent },
            ]),
          }),
        );
        if (canary.length) await elb().send(new DeregisterTargetsCommand({ TargetGroupArn: tg.stable, Targets: canary }));
      }
      await recordWeights(env, canaryNodes, percent, by);
    },
    async servedCounts() {
      return undefined;
    },
    async previewRoute() {
      return settings.previewUrl ? { url: settings.previewUrl, headers: { 'x-kmod-preview': '1' } } : undefined;
    },
    async updateNode(_env, node, previous) {
      const before = previous ? targetOf(previous) : undefined;
      const after = node.decommissionedAt ? undefined : targetOf(node);
      const same = before !== undefined && after !== undefined && before.Id === after.Id && before.Port === after.Port;
      // The endpoint that no longer serves, out of every group (deregistering a target that is not there changes nothing)…
      const gone = node.decommissionedAt ? (before ?? targetOf(node)) : same ? undefined : before;
      if (gone) for (const arn of Object.values(tg)) await elb().send(new DeregisterTargetsCommand({ TargetGroupArn: arn, Targets: [gone] }));
      if (!after || same) return;
      // …the new one into its colour's group, or the stable group (a joining node is no canary).
      const group = 'blue' in settings.targetGroups ? (node.colour ? tg[node.colour] : undefined) : tg.stable;
      if (group) await elb().send(new RegisterTargetsCommand({ TargetGroupArn: group, Targets: [after] }));
    },
  };
  return router;
}
