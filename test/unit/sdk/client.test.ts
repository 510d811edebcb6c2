/**
 * The typed client (sdk/typescript/client.ts): what it sends and how it reports failures, and — checked by
 * `tsc` in `npm test` — that its types are the API's, not placeholders: every `@ts-expect-error` below must
 * be an error, or the type check fails.
 */
import { once } from 'node:events';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { ApiError, createKmodClient, type Schemas, unwrap } from '../../../sdk/typescript/client.ts';

function recorder(answer: () => Response | Promise<Response>) {
  const seen: Request[] = [];
  const fetch = async (input: RequestInfo | URL, init?: RequestInit) => {
    seen.push(input instanceof Request ? input : new Request(input, init));
    return answer();
  };
  return { seen, fetch };
}

describe('the typed client', () => {
  it('sends the bearer token (asked for before each request) and JSON to the base URL, path parameters encoded', async () => {
    const r = recorder(() => Response.json({ items: [], nextCursor: null }));
    let n = 0;
    const api = createKmodClient({ baseUrl: 'http://api.test/prod/', token: () => `t${++n}`, fetch: r.fetch });
    await unwrap(api.GET('/api/v1/deployments', { params: { query: { status: 'Running', limit: 5 } } }));
    await unwrap(api.POST('/api/v1/deployments/{executionId}/cancel', { params: { path: { executionId: 'a/b' } }, body: { reason: 'why' } }));
    expect(r.seen.map((q) => `${q.method} ${q.url} ${q.headers.get('authorization')}`)).toEqual([
      'GET http://api.test/prod/api/v1/deployments?status=Running&limit=5 Bearer t1',
      'POST http://api.test/prod/api/v1/deployments/a%2Fb/cancel Bearer t2',
    ]);
    expect(await r.seen[1].json()).toEqual({ reason: 'why' });
    expect(r.seen[1].headers.get('content-type')).toBe('application/json');
  });

  it("an error answer becomes an ApiError with the API's code, message and details", async () => {
    const body = { code: 'DeploymentLocked', message: 'Production is locked by dep-x', details: { holder: 'dep-x' } };
    const api = createKmodClient({ baseUrl: 'http://api.test', token: 't', fetch: recorder(() => Response.json(body, { status: 409 })).fetch });
    const e = await unwrap(api.GET('/api/v1/clusters')).catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect({ status: e.status, code: e.code, message: e.message, details: e.details }).toEqual({ status: 409, ...body });
  });

  it('an error answer without the API’s body (a proxy’s 502) is HTTP<status> with the text', async () => {
    const api = createKmodClient({
      baseUrl: 'http://api.test',
      token: 't',
      fetch: recorder(() => new Response('Bad Gateway from proxy', { status: 502 })).fetch,
    });
    const e = await unwrap(api.GET('/api/v1/clusters')).catch((x) => x);
    expect(e).toMatchObject({ status: 502, code: 'HTTP502', message: 'Bad Gateway from proxy' });
  });

  it('an API it cannot reach is ApiError status 0 Unreachable, naming the URL and the cause', async () => {
    // A port that was just free: nothing listens on it.
    const server = createServer().listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as AddressInfo;
    await new Promise((r) => server.close(r));
    const api = createKmodClient({ baseUrl: `http://127.0.0.1:${port}`, token: 't' });
    const e = await unwrap(api.GET('/api/v1/clusters')).catch((x) => x);
    expect(e).toBeInstanceOf(ApiError);
    expect(e).toMatchObject({ status: 0, code: 'Unreachable' });
    expect(e.message).toBe(`cannot reach http://127.0.0.1:${port} (connect ECONNREFUSED 127.0.0.1:${port})`);
  });
});

describe('its types are the API’s', () => {
  const api = createKmodClient({ baseUrl: 'http://api.test', token: 't', fetch: async () => Response.json({}) });

  it('answers are typed by route', () => {
    expectTypeOf(unwrap(api.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId: 'x' } } }))).resolves.toEqualTypeOf<
      Schemas['Deployment']
    >();
    expectTypeOf<Schemas['Deployment']['status']>().toEqualTypeOf<
      'Pending' | 'Running' | 'WaitingForApproval' | 'Succeeded' | 'Failed' | 'RolledBack' | 'Cancelled'
    >();
    expectTypeOf<Schemas['ClusterList']['items'][number]['nodeCount']>().toEqualTypeOf<number>();
    expectTypeOf<Schemas['AuditPage']['nextCursor']>().toEqualTypeOf<string | null>();
  });

  it('wrong paths, parameters and bodies do not compile', () => {
    // Each call is only type-checked (never awaited): the directives fail `tsc` if the call were accepted.
    const calls = [
      // @ts-expect-error no such route
      () => api.GET('/api/v1/deployment'),
      // @ts-expect-error the path parameter is required
      () => api.GET('/api/v1/deployments/{executionId}'),
      // @ts-expect-error not an environment
      () => api.GET('/api/v1/clusters/{environment}', { params: { path: { environment: 'Moon' } } }),
      // @ts-expect-error targetEnvironment is required
      () => api.POST('/api/v1/deployments', { body: { moduleName: 'demo-kernel', version: '1.0.0' } }),
      // @ts-expect-error promote goes to nextWave or full
      () => api.POST('/api/v1/deployments/{executionId}/promote', { params: { path: { executionId: 'x' } }, body: { to: 'halfway' } }),
      // @ts-expect-error the approvals routes are POST
      () => api.GET('/api/v1/approvals/deployments/{executionId}/approve', { params: { path: { executionId: 'x' } } }),
    ];
    expect(calls).toHaveLength(6);
  });
});
