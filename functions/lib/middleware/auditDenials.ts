/**
 * Denied calls (401/403) are security events in the audit trail, aggregated per caller (or source
 * address), kind and window (lib/securityEvents.ts): a flood of refusals adds one item, not one each.
 */
import { AppError } from '../../domain/errors.ts';
import { recordDenial, type Denial } from '../securityEvents.ts';
import { logger } from '../telemetry.ts';
import { principalOf } from './identity.ts';
import type { ApiMiddleware } from './types.ts';

export function auditDenials(record: (denial: Denial) => Promise<void> = recordDenial, log: Pick<typeof logger, 'warn'> = logger): ApiMiddleware {
  return {
    onError: async (request) => {
      const e = request.error;
      if (!(e instanceof AppError) || (e.status !== 401 && e.status !== 403)) return;
      const { event } = request;
      try {
        await record({
          action: e.status === 401 ? 'access.unauthenticated' : 'access.denied',
          userId: principalOf(event)?.userId,
          sourceIp: event.requestContext?.identity?.sourceIp,
          method: event.httpMethod,
          path: event.path,
          code: e.code,
        });
      } catch (err) {
        log.warn('could not audit a denied call', err as Error);
      }
    },
  };
}
