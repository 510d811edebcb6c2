/**
 * The AWS routers' settings (ALB_ROUTERS, ROUTE53_ROUTERS): one schema, read by the adapters at run
 * time and by the CDK app at synth (infra/settings.ts), which also scopes their IAM to these resources.
 */
import { z } from 'zod';

const arn = z.string().startsWith('arn:');

export const albSettingsSchema = z.record(
  z.string(),
  z.object({
    listenerArn: arn,
    targetGroups: z.union([z.object({ blue: arn, green: arn }).strict(), z.object({ stable: arn, canary: arn }).strict()]),
    /** A listener rule with an `x-kmod-preview: 1` header condition, pointed at the idle colour. */
    previewRuleArn: arn.optional(),
    /** Where that rule is reached (the smoke test sends the preview header there). */
    previewUrl: z.string().url().optional(),
  }),
);
export type AlbSettings = z.infer<typeof albSettingsSchema>[string];

export const route53SettingsSchema = z.record(
  z.string(),
  z.object({
    hostedZoneId: z.string().regex(/^Z[A-Z0-9]+$/),
    recordName: z.string().min(1),
    type: z.enum(['A', 'AAAA', 'CNAME']).default('CNAME'),
    ttl: z.number().int().min(0).default(30),
    values: z.union([z.object({ blue: z.string(), green: z.string() }).strict(), z.object({ stable: z.string(), canary: z.string() }).strict()]),
    previewRecordName: z.string().optional(),
  }),
);
export type Route53Settings = z.infer<typeof route53SettingsSchema>[string];

/** The router kinds an AWS deployment may name per environment (`local` exists only in the local cloud). */
export const AWS_ROUTER_KINDS = ['cluster-table', 'alb', 'route53'] as const;
