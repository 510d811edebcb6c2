/**
 * Refused calls (401/403) as security audit events, aggregated (issue 15 defect 4): one audit item
 * per actor, action and window, created by the first refusal and counted by every later one with an
 * atomic ADD, so its `count` is always current. A flood of refused requests still costs one write
 * each, but adds one item per window instead of one per request. The actor is the caller when
 * known, else the source address (an IPv6 address by its /64, which one host usually holds whole).
 */
import { isIPv6 } from 'node:net';
import { UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { traceRoot } from './traceContext.ts';
import { dynamo } from './aws.ts';
import { config } from './config.ts';
import { auditExpiresAt } from '../domain/auditRetention.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';

export type DenialAction = 'auth.failed' | 'access.unauthenticated' | 'access.denied';

export interface Denial {
  action: DenialAction;
  /** The caller's user id; absent when the caller is unknown (then the source address stands for it). */
  userId?: string;
  sourceIp?: string;
  method: string;
  path: string;
  /** The error code answered, or the authorizer's reason. */
  code?: string;
  reason?: string;
}

/** An IPv6 address's /64 prefix (`2001:db8:1:2::/64`); undefined for anything else. */
export function ipv6Prefix64(address: string): string | undefined {
  if (!isIPv6(address)) return undefined;
  const [head, tail] = address.split('::');
  const groups = (part: string | undefined) => (part ? part.split(':').flatMap((g) => (g.includes('.') ? ['0', '0'] : [g])) : []);
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  return `${all
    .slice(0, 4)
    .map((g) => Number.parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}

/** Who a denial is counted against: the caller, else `ip:<address>` (`ip:<prefix>/64` for IPv6). */
export function denialActor(d: Pick<Denial, 'userId' | 'sourceIp'>): string {
  if (d.userId) return d.userId;
  const ip = d.sourceIp ?? 'unknown';
  return `ip:${ipv6Prefix64(ip) ?? ip}`;
}

/** The upsert of the window's aggregate item for a denial (exported for tests). */
export function denialUpdate(d: Denial, now = new Date(), windowSeconds = config.denialAuditWindowSeconds()): UpdateCommandInput {
  const windowStart = new Date(Math.floor(now.getTime() / 1000 / windowSeconds) * windowSeconds * 1000);
  const actor = denialActor(d);
  const traceId = traceRoot(process.env._X_AMZN_TRACE_ID);
  const latest = { at: now.toISOString(), method: d.method, path: d.path, ...(d.code ? { code: d.code } : {}), ...(d.reason ? { reason: d.reason } : {}) };
  return {
    TableName: tableName('audit'),
    // Time-ordered like every audit key, and one per actor, action and window.
    Key: { subject: `access#${actor}`, sk: `${windowStart.toISOString()}#${d.action}` },
    UpdateExpression:
      'ADD #count :one SET category = :category, #action = :action, actor = :actor, #at = if_not_exists(#at, :now), ' +
      'details = if_not_exists(details, :details), latest = :latest, #ttl = if_not_exists(#ttl, :expires)' +
      (traceId ? ', traceId = if_not_exists(traceId, :trace)' : ''),
    ExpressionAttributeNames: { '#count': 'count', '#action': 'action', '#at': 'at', '#ttl': TTL_ATTRIBUTE },
    ExpressionAttributeValues: {
      ':one': 1,
      ':category': 'security',
      ':action': d.action,
      ':actor': actor,
      ':now': now.toISOString(),
      // The first refusal of the window, and the window itself; `latest` is the most recent one.
      ':details': { ...latest, windowStart: windowStart.toISOString(), windowSeconds, ...(d.sourceIp ? { sourceIp: d.sourceIp } : {}) },
      ':latest': latest,
      // Kept as long as the security category says (functions/domain/auditRetention.ts).
      ':expires': auditExpiresAt(now, config.auditRetentionDays('security')),
      ...(traceId ? { ':trace': traceId } : {}),
    },
  };
}

export async function recordDenial(d: Denial, now = new Date()): Promise<void> {
  await dynamo().send(new UpdateCommand(denialUpdate(d, now)));
}
