import { describe, expect, it } from 'vitest';
import { AppError, forbidden, unauthorized } from '../../../../functions/domain/errors.ts';
import type { AuditEvent } from '../../../../functions/lib/audit.ts';
import { auditDenials } from '../../../../functions/lib/middleware/auditDenials.ts';
import { asAnswer, event, run } from './harness.ts';

const throwing = (e: Error) => async () => {
  throw e;
};

describe('auditDenials', () => {
  it('records 401 and 403 as security events, by caller or address', async () => {
    const written: AuditEvent[] = [];
    const write = async (e: AuditEvent) => void written.push(e);
    await run([asAnswer, auditDenials(write)], throwing(unauthorized('no token')))(event());
    await run([asAnswer, auditDenials(write)], throwing(forbidden('no role')))(event({ httpMethod: 'POST', authorizer: { userId: 'u1', roles: 'Viewer' } }));
    expect(written).toEqual([
      {
        subject: 'access#GET /api/v1/deployments',
        category: 'security',
        action: 'access.unauthenticated',
        actor: 'ip:203.0.113.9',
        details: { code: 'Unauthorized', method: 'GET', path: '/api/v1/deployments', sourceIp: '203.0.113.9' },
      },
      expect.objectContaining({
        subject: 'access#POST /api/v1/deployments',
        action: 'access.denied',
        actor: 'u1',
        details: expect.objectContaining({ code: 'Forbidden' }),
      }),
    ]);
  });

  it('ignores other errors, and a failing audit write does not change the answer', async () => {
    const written: AuditEvent[] = [];
    await run([asAnswer, auditDenials(async (e) => void written.push(e))], throwing(new AppError('NotFound', 'x', 404)))(event());
    expect(written).toEqual([]);
    const warned: unknown[] = [];
    const r = await run(
      [asAnswer, auditDenials(async () => Promise.reject(new Error('table down')), { warn: (...a: unknown[]) => void warned.push(a) })],
      throwing(forbidden('no')),
    )(event());
    expect(r.statusCode).toBe(403);
    expect(warned).toHaveLength(1);
  });
});
