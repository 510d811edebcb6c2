/**
 * Per-user rate limits on costly routes that hold across concurrent Lambdas: fixed-window counters
 * in DynamoDB, incremented atomically (UpdateItem ADD) and expired by TTL. Limits come from the
 * Settings table (an Admin changes them live; containers re-read them every few seconds) with
 * defaults from the environment. The per-address limit is the edge's (AWS WAF's rate-based rule;
 * the local gateway's web ACL), and API Gateway stage throttling stays in front as the outer guard.
 */
import { GetCommand, PutCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { z } from 'zod';
import { AppError } from '../domain/errors.ts';
import { audit } from './audit.ts';
import { dynamo } from './aws.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';

const EDGE_LIMIT_MOVED =
  'perIp is no longer a setting: the per-address limit is counted at the edge for every request (AWS WAF, WAF_RATE_LIMIT_PER_ADDRESS locally); see docs/adr/0024-hot-path-reads.md';

export const rateLimitSettingsSchema = z.strictObject(
  {
    windowSeconds: z.number().int().min(1).max(3600),
    deploymentCreatePerUser: z.number().int().min(1).max(100_000),
    metricsPerUser: z.number().int().min(1).max(100_000),
  },
  // A client written for the old settings is told where the limit went, not just "unrecognised key".
  { error: (issue) => (issue.code === 'unrecognized_keys' && issue.keys.includes('perIp') ? EDGE_LIMIT_MOVED : undefined) },
);
export type RateLimitSettings = z.infer<typeof rateLimitSettingsSchema>;

const num = (name: string, fallback: number) => (process.env[name] ? Number(process.env[name]) : fallback);

export function defaultRateLimits(): RateLimitSettings {
  return {
    windowSeconds: num('RATE_LIMIT_WINDOW_SECONDS', 60),
    deploymentCreatePerUser: num('RATE_LIMIT_DEPLOYMENTS_PER_USER', 10),
    metricsPerUser: num('RATE_LIMIT_METRICS_PER_USER', 60),
  };
}

const SETTINGS_KEY = 'rate-limits';
/** How stale a container's copy of the limits may be: a change applies within this. */
export const SETTINGS_CACHE_MS = 3000;
let cached: { at: number; value: RateLimitSettings } | undefined;

export async function rateLimitSettings(): Promise<RateLimitSettings> {
  if (cached && Date.now() - cached.at < SETTINGS_CACHE_MS) return cached.value;
  const r = await dynamo().send(new GetCommand({ TableName: tableName('settings'), Key: { key: SETTINGS_KEY } }));
  // Only the settings there are now (an item written before the edge took the per-address limit still has perIp).
  const { windowSeconds, deploymentCreatePerUser, metricsPerUser } = (r.Item?.value as Partial<RateLimitSettings> | undefined) ?? {};
  const stored = Object.fromEntries(Object.entries({ windowSeconds, deploymentCreatePerUser, metricsPerUser }).filter(([, v]) => v !== undefined));
  const value = { ...defaultRateLimits(), ...stored };
  cached = { at: Date.now(), value };
  return value;
}

export async function setRateLimitSettings(value: RateLimitSettings, actor: string): Promise<void> {
  const before = await rateLimitSettings();
  await dynamo().send(
    new PutCommand({ TableName: tableName('settings'), Item: { key: SETTINGS_KEY, value, updatedAt: new Date().toISOString(), updatedBy: actor } }),
  );
  cached = undefined;
  await audit({ subject: 'settings#rate-limits', category: 'config', action: 'rate-limits.changed', actor, details: { before, after: value } });
}

export type LimitKind = 'deployments' | 'metrics';

/**
 * Count one request against `limit` in the current window; throws 429 (with Retry-After and
 * RateLimit headers) when over. Returns the headers to add to a normal answer.
 */
export async function consume(kind: LimitKind, who: string, limit: number, windowSeconds: number, now = Date.now()): Promise<Record<string, string>> {
  const window = Math.floor(now / 1000 / windowSeconds);
  const resetAt = (window + 1) * windowSeconds;
  const r = await dynamo().send(
    new UpdateCommand({
      TableName: tableName('rateLimits'),
      Key: { bucket: `${kind}#${who}#${window}` },
      UpdateExpression: 'ADD #c :one SET #ttl = if_not_exists(#ttl, :exp)',
      ExpressionAttributeNames: { '#c': 'count', '#ttl': TTL_ATTRIBUTE },
      ExpressionAttributeValues: { ':one': 1, ':exp': resetAt + 60 },
      ReturnValues: 'UPDATED_NEW',
    }),
  );
  const count = Number(r.Attributes?.count ?? 1);
  const reset = Math.max(1, Math.ceil(resetAt - now / 1000));
  const headers = { 'RateLimit-Limit': String(limit), 'RateLimit-Remaining': String(Math.max(0, limit - count)), 'RateLimit-Reset': String(reset) };
  if (count <= limit) return headers;
  if (count === limit + 1) {
    // Once per window and key: enough to see an abuser without flooding the trail.
    await audit({
      subject: `ratelimit#${kind}#${who}`,
      category: 'security',
      action: 'rate-limit.exceeded',
      actor: who,
      details: { kind, limit, windowSeconds },
    });
  }
  throw new AppError(
    'TooManyRequests',
    `rate limit exceeded: ${limit} ${kind === 'deployments' ? 'deployment requests' : 'metrics requests'} per ${windowSeconds} s; retry in ${reset} s`,
    429,
    undefined,
    {
      ...headers,
      'Retry-After': String(reset),
    },
  );
}
