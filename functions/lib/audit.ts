import { randomBytes } from 'node:crypto';
import { transactWrite } from './auditChain.ts';
import { config } from './config.ts';
import { tableName, TTL_ATTRIBUTE } from './tables.ts';
import { traceRoot } from './traceContext.ts';

import { type AuditCategory, auditExpiresAt } from '../domain/auditRetention.ts';
export { AUDIT_CATEGORIES, type AuditCategory } from '../domain/auditRetention.ts';

export interface AuditEvent {
  /** What the event is about, e.g. `deployment#<executionId>`, `module#demo-kernel`. */
  subject: string;
  category: AuditCategory;
  action: string;
  /** Who caused it: a user id, or `system:<component>`. */
  actor: string;
  details?: Record<string, unknown>;
  traceId?: string;
}

/**
 * The audit item for an event, for a transaction sent with `transactWrite` (functions/lib/auditChain.ts),
 * which links it into its hash chain: an audit Put sent any other way would break the chain.
 */
export function auditItem(event: AuditEvent, at = new Date()) {
  const iso = at.toISOString();
  return {
    TableName: tableName('audit'),
    Item: {
      subject: event.subject,
      // Time-ordered and unique even for events in the same millisecond.
      sk: `${iso}#${randomBytes(6).toString('hex')}`,
      at: iso,
      category: event.category,
      action: event.action,
      actor: event.actor,
      details: event.details ?? {},
      traceId: event.traceId ?? traceRoot(process.env._X_AMZN_TRACE_ID),
      [TTL_ATTRIBUTE]: auditExpiresAt(at, config.auditRetentionDays(event.category)),
    },
  };
}

/** Write one audit event on its own, linked into its chain (functions/lib/auditChain.ts). */
export async function audit(event: AuditEvent): Promise<void> {
  await transactWrite([{ Put: auditItem(event) }]);
}

export const deploymentSubject = (executionId: string) => `deployment#${executionId}`;
