/**
 * Refused calls (401/403) as security audit events, aggregated (issue 15 defect 4): one audit item
 * per actor, action and window, created by the first refusal and counted by every later one with an
 * atomic ADD, so its `count` is always current. A flood of refused requests still costs one write
 * each, but adds one item per window instead of one per request; only the window's creation is
 * linked into the hash chain (one transaction with the chain head, once per window). The actor is the caller when
 * known, else the source address (an IPv6 address by its /64, which one host usually holds whole).
 */
import { isIPv6 } from 'node:net';
import { ConditionalCheckFailedException, TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { UpdateCommand, type UpdateCommandInput } from '@aws-sdk/lib-dynamodb';
import { transactWrite } from './auditChain.ts';
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

/**
 * The two writes of a denial (exported for tests): `count`, the common case, adds the refusal to
 * its window's item if the item exists; `create`, the first refusal of a window, puts the item if
 * it does not. Only the creation is an audit event of the hash chain (docs/adr/0032): it is sent
 * through `transactWrite`, linked into the actor's `security` chain. `count` and `latest` grow
 * afterwards, so the item names them in `mutable` and its hash leaves them out.
 */
export function denialWrites(d: Denial, now = new Date(), windowSeconds = config.denialAuditWindowSeconds()) {
  const windowStart = new Date(Math.floor(now.getTime() / 1000 / windowSeconds) * windowSeconds * 1000);
  const actor = denialActor(d);
  const traceId = traceRoot(process.env._X_AMZN_TRACE_ID);
  const latest = { at: now.toISOString(), method: d.method, path: d.path, ...(d.code ? { code: d.code } : {}), ...(d.reason ? { reason: d.reason } : {}) };
  // Time-ordered like every audit key, and one per actor, action and window.
  const Key = { subject: `access#${actor}`, sk: `${windowStart.toISOString()}#${d.action}` };
  const count: UpdateCommandInput = {
    TableName: tableName('audit'),
    Key,
    UpdateExpression: 'ADD #count :one SET latest = :latest',
    ConditionExpression: 'attribute_exists(subject)',
    ExpressionAttributeNames: { '#count': 'count' },
    ExpressionAttributeValues: { ':one': 1, ':latest': latest },
  };
  const create = {
    TableName: tableName('audit'),
    Item: {
      ...Key,
      at: now.toISOString(),
      category: 'security',
      action: d.action,
      actor,
      // The first refusal of the window, and the window itself; `latest` is the most recent one.
      details: { ...latest, windowStart: windowStart.toISOString(), windowSeconds, ...(d.sourceIp ? { sourceIp: d.sourceIp } : {}) },
      ...(traceId ? { traceId } : {}),
      // Kept as long as the security category says (functions/domain/auditRetention.ts).
      [TTL_ATTRIBUTE]: auditExpiresAt(now, config.auditRetentionDays('security')),
      count: 1,
      latest,
      mutable: [...DENIAL_MUTABLE_FIELDS],
    },
    ConditionExpression: 'attribute_not_exists(subject)',
  };
  return { count, create };
}

/** The attributes of a denial window that change after it is written, left out of its hash. */
export const DENIAL_MUTABLE_FIELDS = ['count', 'latest'] as const;

const conditionFailed = (e: unknown) =>
  e instanceof ConditionalCheckFailedException || (e instanceof TransactionCanceledException && e.CancellationReasons?.[0]?.Code === 'ConditionalCheckFailed');

/**
 * Count a refusal: one conditional update when its window's item exists (every refusal but the
 * first of a window), else the item's creation, linked into its chain. Two first refusals racing:
 * the loser's creation fails its condition and it counts instead.
 */
export async function recordDenial(d: Denial, now = new Date()): Promise<void> {
  const { count, create } = denialWrites(d, now);
  for (let attempt = 0; ; attempt++) {
    try {
      await dynamo().send(new UpdateCommand(count));
      return;
    } catch (e) {
      if (!conditionFailed(e)) throw e;
    }
    try {
      await transactWrite([{ Put: create }]);
      return;
    } catch (e) {
      if (!conditionFailed(e) || attempt >= 2) throw e;
    }
  }
}
