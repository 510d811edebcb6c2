import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../../../functions/catalog.ts';
import { AppError } from '../../../../functions/domain/errors.ts';
import { authorize } from '../../../../functions/lib/middleware/authorize.ts';
import { identity } from '../../../../functions/lib/middleware/identity.ts';
import { matchRoute } from '../../../../functions/lib/middleware/matchRoute.ts';
import { rateLimit, type RateLimitStore } from '../../../../functions/lib/middleware/rateLimit.ts';
import { asAnswer, event, run } from './harness.ts';

const all = ROUTES.map((r) => `${r.method} ${r.path}`);
const settings = { windowSeconds: 60, deploymentCreatePerUser: 10, metricsPerUser: 60 };

function fakeStore(limitAt = Infinity) {
  const calls: string[] = [];
  const store: RateLimitStore = {
    settings: async () => settings,
    consume: async (kind, who, limit) => {
      calls.push(`${kind}:${who}:${limit}`);
      const headers = { 'RateLimit-Limit': String(limit), 'RateLimit-Remaining': '1', 'RateLimit-Reset': '30' };
      if (calls.length >= limitAt) throw new AppError('TooManyRequests', 'slow down', 429, undefined, { ...headers, 'Retry-After': '30' });
      return headers;
    },
  };
  return { store, calls };
}
const deployer = { authorizer: { userId: 'u1', roles: 'Deployer' } };

describe('rateLimit', () => {
  it('counts per user on the route class from the catalog, and nothing on other routes (the edge counts per address)', async () => {
    const { store, calls } = fakeStore();
    const h = run([asAnswer, matchRoute(all), identity(), rateLimit(store), authorize()]);
    const ok = await h(event({ httpMethod: 'POST', ...deployer }));
    expect(calls).toEqual(['deployments:u1:10']);
    expect(ok.headers).toMatchObject({ 'RateLimit-Limit': '10' });
    await h(event({ resource: '/api/v1/clusters/{environment}/metrics', ...deployer }));
    expect(calls.slice(1)).toEqual(['metrics:u1:60']);
    await h(event({ resource: '/health' }));
    const read = await h(event({ ...deployer }));
    expect(calls).toHaveLength(2);
    expect(read.headers?.['RateLimit-Limit']).toBeUndefined();
  });

  it('answers 429 with the headers from the store', async () => {
    const { store } = fakeStore(1);
    const r = await run([asAnswer, matchRoute(all), identity(), rateLimit(store), authorize()])(event({ httpMethod: 'POST', ...deployer }));
    expect(r).toMatchObject({ statusCode: 429, headers: { 'Retry-After': '30', 'RateLimit-Limit': '10' } });
  });

  it("adds the headers to the route's own errors, not to the matrix's denials", async () => {
    const { store } = fakeStore();
    const failing = run([asAnswer, matchRoute(all), identity(), rateLimit(store), authorize()], async () => {
      throw new AppError('Conflict', 'no', 409, undefined, { location: '/x' });
    });
    expect((await failing(event({ httpMethod: 'POST', ...deployer }))).headers).toEqual({
      location: '/x',
      'RateLimit-Limit': '10',
      'RateLimit-Remaining': '1',
      'RateLimit-Reset': '30',
    });
    const denied = await failing(event({ httpMethod: 'POST', authorizer: { userId: 'u2', roles: 'Viewer' } }));
    expect(denied).toMatchObject({ statusCode: 403, headers: {} });
  });
});
