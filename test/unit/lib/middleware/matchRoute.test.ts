import { describe, expect, it } from 'vitest';
import { matchRoute } from '../../../../functions/lib/middleware/matchRoute.ts';
import type { ApiContext } from '../../../../functions/lib/middleware/types.ts';
import { asAnswer, event, run } from './harness.ts';

describe('matchRoute', () => {
  it('puts the catalog route spec on the context', async () => {
    let seen: ApiContext['route'];
    const h = run([matchRoute(['POST /api/v1/deployments'])], async (_e, ctx) => {
      seen = ctx.route;
      return { statusCode: 202, body: '' };
    });
    expect((await h(event({ httpMethod: 'POST' }))).statusCode).toBe(202);
    expect(seen).toMatchObject({ method: 'POST', path: '/api/v1/deployments', rateLimit: 'deployments' });
  });

  it('answers 404 for a route not in the catalog or not served by this Lambda', async () => {
    const h = run([asAnswer, matchRoute(['GET /api/v1/deployments'])]);
    expect(await h(event({ resource: '/nope' }))).toMatchObject({ statusCode: 404, body: '{"code":"NotFound"}' });
    expect((await h(event({ httpMethod: 'POST' }))).statusCode).toBe(404);
    expect((await h(event())).statusCode).toBe(200);
  });
});
