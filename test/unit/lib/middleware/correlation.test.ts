import { describe, expect, it } from 'vitest';
import { correlation } from '../../../../functions/lib/middleware/correlation.ts';
import type { ApiContext } from '../../../../functions/lib/middleware/types.ts';
import { asAnswer, event, run } from './harness.ts';

describe('correlation', () => {
  it("echoes the caller's x-correlation-id (any case) and puts it and the route on the context", async () => {
    let seen: ApiContext['correlation'];
    const r = await run([correlation()], async (_, context) => {
      seen = context.correlation;
      return { statusCode: 200, headers: {}, body: '{}' };
    })(event({ headers: { 'X-Correlation-Id': 'ticket-4711' } }));
    expect(r.headers).toMatchObject({ 'x-correlation-id': 'ticket-4711' });
    expect(seen).toEqual({ correlationId: 'ticket-4711', route: 'GET /api/v1/deployments' });
  });

  it("uses API Gateway's request id when the caller gives none or a bad one, errors included", async () => {
    const withRequestId = (headers: Record<string, string>) =>
      event({ headers, requestContext: { requestId: 'gw-req-9', identity: { sourceIp: '203.0.113.9' } } as never });
    const ok = await run([correlation()])(withRequestId({}));
    expect(ok.headers).toMatchObject({ 'x-correlation-id': 'gw-req-9' });
    const forged = await run([correlation()])(withRequestId({ 'x-correlation-id': 'a\nlevel=ERROR' }));
    expect(forged.headers).toMatchObject({ 'x-correlation-id': 'gw-req-9' });
    const failed = await run([correlation(), asAnswer], async () => Promise.reject(Object.assign(new Error('no'), { status: 401, code: 'Unauthorized' })))(
      withRequestId({ 'x-correlation-id': 'ticket-1' }),
    );
    expect(failed.statusCode).toBe(401);
    expect(failed.headers).toMatchObject({ 'x-correlation-id': 'ticket-1' });
  });
});
