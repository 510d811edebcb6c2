import { describe, expect, it } from 'vitest';
import { AppError } from '../../../../functions/domain/errors.ts';
import { jsonErrors } from '../../../../functions/lib/middleware/jsonErrors.ts';
import { event, run } from './harness.ts';

describe('jsonErrors', () => {
  it('maps an AppError to { code, message, details } with its status and headers', async () => {
    const r = await run([jsonErrors()], async () => {
      throw new AppError('ValidationError', 'bad', 400, [{ path: 'x' }], { 'Retry-After': '1' });
    })(event());
    expect(r).toEqual({
      statusCode: 400,
      headers: { 'content-type': 'application/json', 'Retry-After': '1' },
      body: JSON.stringify({ code: 'ValidationError', message: 'bad', details: [{ path: 'x' }] }),
    });
  });

  it('hides and logs anything else as a 500 with the request id', async () => {
    const logged: unknown[] = [];
    const r = await run([jsonErrors({ error: (...a: unknown[]) => void logged.push(a) })], async () => {
      throw new Error('secret detail');
    })(event());
    expect(r.statusCode).toBe(500);
    expect(JSON.parse(r.body)).toEqual({ code: 'InternalError', message: 'an internal error occurred; it has been logged', requestId: 'req-1' });
    expect(logged).toHaveLength(1);
  });
});
