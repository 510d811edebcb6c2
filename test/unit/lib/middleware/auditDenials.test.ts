import { describe, expect, it } from 'vitest';
import { AppError, forbidden, unauthorized } from '../../../../functions/domain/errors.ts';
import { auditDenials } from '../../../../functions/lib/middleware/auditDenials.ts';
import type { Denial } from '../../../../functions/lib/securityEvents.ts';
import { asAnswer, event, run } from './harness.ts';

const throwing = (e: Error) => async () => {
  throw e;
};

describe('auditDenials', () => {
  it('records 401 and 403 as denials of the caller, or of the address when there is none', async () => {
    const recorded: Denial[] = [];
    const record = async (d: Denial) => void recorded.push(d);
    await run([asAnswer, auditDenials(record)], throwing(unauthorized('no token')))(event());
    await run([asAnswer, auditDenials(record)], throwing(forbidden('no role')))(event({ httpMethod: 'POST', authorizer: { userId: 'u1', roles: 'Viewer' } }));
    expect(recorded).toEqual([
      { action: 'access.unauthenticated', userId: undefined, sourceIp: '203.0.113.9', method: 'GET', path: '/api/v1/deployments', code: 'Unauthorized' },
      { action: 'access.denied', userId: 'u1', sourceIp: '203.0.113.9', method: 'POST', path: '/api/v1/deployments', code: 'Forbidden' },
    ]);
  });

  it('ignores other errors, and a failing audit write does not change the answer', async () => {
    const recorded: Denial[] = [];
    await run([asAnswer, auditDenials(async (d) => void recorded.push(d))], throwing(new AppError('NotFound', 'x', 404)))(event());
    expect(recorded).toEqual([]);
    const warned: unknown[] = [];
    const r = await run(
      [asAnswer, auditDenials(async () => Promise.reject(new Error('table down')), { warn: (...a: unknown[]) => void warned.push(a) })],
      throwing(forbidden('no')),
    )(event());
    expect(r.statusCode).toBe(403);
    expect(warned).toHaveLength(1);
  });
});
