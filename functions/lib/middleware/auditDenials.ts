/** Denied calls (401/403) are security events in the audit trail. */
import { AppError } from '../../domain/errors.ts';
import { audit, type AuditEvent } from '../audit.ts';
import { logger } from '../telemetry.ts';
import { principalOf } from './identity.ts';
import type { ApiMiddleware } from './types.ts';

export function auditDenials(write: (event: AuditEvent) => Promise<void> = audit, log: Pick<typeof logger, 'warn'> = logger): ApiMiddleware {
  return {
    onError: async (request) => {
      const e = request.error;
      if (!(e instanceof AppError) || (e.status !== 401 && e.status !== 403)) return;
      const { event } = request;
      const sourceIp = event.requestContext?.identity?.sourceIp;
      try {
        await write({
          subject: `access#${event.httpMethod} ${event.resource}`,
          category: 'security',
          action: e.status === 401 ? 'access.unauthenticated' : 'access.denied',
          actor: principalOf(event)?.userId ?? `ip:${sourceIp ?? 'unknown'}`,
          details: { code: e.code, method: event.httpMethod, path: event.path, sourceIp },
        });
      } catch (err) {
        log.warn('could not audit a denied call', err as Error);
      }
    },
  };
}
