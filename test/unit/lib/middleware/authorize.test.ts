import { describe, expect, it } from 'vitest';
import { ROUTES } from '../../../../functions/catalog.ts';
import { authorize, isMatrixDenial } from '../../../../functions/lib/middleware/authorize.ts';
import { identity } from '../../../../functions/lib/middleware/identity.ts';
import { matchRoute } from '../../../../functions/lib/middleware/matchRoute.ts';
import { asAnswer, event, run } from './harness.ts';

const all = ROUTES.map((r) => `${r.method} ${r.path}`);
const h = run([asAnswer, matchRoute(all), identity(), authorize()]);
const as = (roles: string) => ({ authorizer: { userId: 'u1', roles } });

describe('authorize', () => {
  it('lets the route roles through and public routes without a caller', async () => {
    expect((await h(event({ httpMethod: 'POST', ...as('Deployer') }))).statusCode).toBe(200);
    expect((await h(event({ resource: '/health', path: '/health' }))).statusCode).toBe(200);
  });

  it('401 without a caller, 403 with the wrong role, marked as the matrix denials', async () => {
    expect(await h(event({ httpMethod: 'POST' }))).toMatchObject({ statusCode: 401, body: '{"code":"Unauthorized"}' });
    expect(await h(event({ httpMethod: 'POST', ...as('Viewer,Approver') }))).toMatchObject({ statusCode: 403, body: '{"code":"Forbidden"}' });
    let denial: unknown;
    await run([{ onError: (r) => void (denial = r.error) }, asAnswer, matchRoute(all), identity(), authorize()])(
      event({ resource: '/api/v1/audit', ...as('Viewer') }),
    );
    expect(isMatrixDenial(denial)).toBe(true);
    expect(isMatrixDenial(new Error('x'))).toBe(false);
  });
});
