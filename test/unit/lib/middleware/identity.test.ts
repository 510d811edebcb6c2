import { describe, expect, it } from 'vitest';
import { identity, principalOf } from '../../../../functions/lib/middleware/identity.ts';
import type { ApiContext } from '../../../../functions/lib/middleware/types.ts';
import { event, run } from './harness.ts';

describe('identity', () => {
  it('reads the caller from the authorizer context, keeping known roles only', () => {
    expect(principalOf(event({ authorizer: { userId: 'u1', username: 'amy', roles: 'Deployer,Root,Viewer' } }))).toEqual({
      userId: 'u1',
      username: 'amy',
      roles: ['Deployer', 'Viewer'],
    });
    expect(principalOf(event({ authorizer: { userId: 'u2' } }))).toEqual({ userId: 'u2', username: 'u2', roles: [] });
    expect(principalOf(event())).toBeUndefined();
  });

  it('puts it on the context', async () => {
    let seen: ApiContext['principal'];
    await run([identity()], async (_e, ctx) => {
      seen = ctx.principal;
      return { statusCode: 200, body: '' };
    })(event({ authorizer: { userId: 'u1', username: 'amy', roles: 'Admin' } }));
    expect(seen).toEqual({ userId: 'u1', username: 'amy', roles: ['Admin'] });
  });
});
