/**
 * Route 53 weighted records as a traffic router (docs/adr/0020-traffic-routers.md). Configured per
 * environment in ROUTE53_ROUTERS (JSON):
 *
 *   { "Staging":    { "hostedZoneId": "Z…", "recordName": "app.staging.example.com", "type": "CNAME", "ttl": 30,
 *                     "values": { "blue": "blue.staging.example.com", "green": "green.staging.example.com" },
 *                     "previewRecordName": "preview.staging.example.com" },
 *     "Production": { "hostedZoneId": "Z…", "recordName": "app.example.com", "type": "CNAME", "ttl": 30,
 *                     "values": { "stable": "stable.example.com", "canary": "canary.example.com" } } }
 *
 * Two weighted records of one name (SetIdentifier = colour or stable/canary), changed in one
 * ChangeResourceRecordSets batch (Route 53 applies a batch atomically). Clients follow at the speed
 * of DNS caching (the TTL): keep it low. The canary endpoint must front the canary nodes (an
 * operator's choice of what `canary.example.com` resolves to); Route 53 counts no requests, so the
 * canary's share is set, not measured.
 */
import { ChangeResourceRecordSetsCommand, ListResourceRecordSetsCommand, Route53Client, type RRType } from '@aws-sdk/client-route-53';
import type { Environment } from '../../domain/environments.ts';
import { route53SettingsSchema, type Route53Settings } from './settings.ts';
import { otherColour } from '../../domain/strategy.ts';
import { clusterTableRouter, recordWeights, type TrafficRouter } from '../trafficRouter.ts';

let client: Route53Client | undefined;
const r53 = () => {
  client ??= new Route53Client({});
  return client;
};

export function route53Router(
  environment: Environment,
  settings: Route53Settings = route53SettingsSchema.parse(JSON.parse(process.env.ROUTE53_ROUTERS || '{}'))[environment],
): TrafficRouter {
  if (!settings) throw new Error(`${environment} uses the Route 53 router, but ROUTE53_ROUTERS has no entry for it`);
  const values = settings.values as Record<string, string>;
  const weighted = (id: string, weight: number) => ({
    Action: 'UPSERT' as const,
    ResourceRecordSet: {
      Name: settings.recordName,
      Type: settings.type as RRType,
      SetIdentifier: id,
      Weight: weight,
      TTL: settings.ttl,
      ResourceRecords: [{ Value: values[id] }],
    },
  });
  const change = (comment: string, changes: ReturnType<typeof weighted>[]) =>
    r53().send(new ChangeResourceRecordSetsCommand({ HostedZoneId: settings.hostedZoneId, ChangeBatch: { Comment: comment, Changes: changes } }));
  return {
    kind: 'route53',
    weighted: true,
    async activeColour(env) {
      if (!('blue' in settings.values)) return clusterTableRouter.activeColour(env);
      const r = await r53().send(
        new ListResourceRecordSetsCommand({
          HostedZoneId: settings.hostedZoneId,
          StartRecordName: settings.recordName,
          StartRecordType: settings.type as RRType,
        }),
      );
      const sets = (r.ResourceRecordSets ?? []).filter((s) => s.Name?.replace(/\.$/, '') === settings.recordName.replace(/\.$/, '') && s.SetIdentifier);
      const top = [...sets].sort((a, b) => (b.Weight ?? 0) - (a.Weight ?? 0))[0];
      return top?.SetIdentifier === 'green' ? 'green' : 'blue';
    },
    async switchTo(env, colour, by) {
      if (!('blue' in settings.values)) throw new Error(`${env}'s Route 53 router has no blue and green records`);
      const idle = otherColour(colour);
      const changes = [weighted(colour, 100), weighted(idle, 0)];
      const preview = settings.previewRecordName
        ? [
            {
              Action: 'UPSERT' as const,
              ResourceRecordSet: {
                Name: settings.previewRecordName,
                Type: settings.type as RRType,
                TTL: settings.ttl,
                ResourceRecords: [{ Value: values[idle] }],
              },
            },
          ]
        : [];
      await change(`kmod: ${env} to ${colour} (${by})`, [...changes, ...(preview as ReturnType<typeof weighted>[])]);
      await clusterTableRouter.switchTo(env, colour, by);
    },
    async setCanaryWeight(env, canaryNodes, percent, by) {
      if (!('stable' in settings.values)) throw new Error(`${env}'s Route 53 router has no stable and canary records`);
      const p = canaryNodes.length ? percent : 0;
      await change(`kmod: ${env} canary ${p}% (${by})`, [weighted('stable', 100 - p), weighted('canary', p)]);
      await recordWeights(env, canaryNodes, percent, by);
    },
    async servedCounts() {
      return undefined;
    },
    async previewRoute() {
      return settings.previewRecordName ? { url: `https://${settings.previewRecordName}`, headers: {} } : undefined;
    },
  };
}
