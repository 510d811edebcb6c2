/**
 * The local gateway's authorizer result cache behaves as API Gateway's: keyed by the Authorization
 * header, for the configured TTL, a cached policy evaluated against each request's method ARN, a
 * refusal not cached, and a request without the header refused before any authorizer runs.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { APIGatewayAuthorizerResult } from 'aws-lambda';
import { LocalApiGateway, policyAllows } from '../../../localcloud/apigateway.ts';
import { LambdaFunctionError, type LocalLambda } from '../../../localcloud/lambda.ts';
import { LocalWebAcl } from '../../../localcloud/webAcl.ts';

const ARN = 'arn:aws:execute-api:us-east-1:000000000000:localapi01/local';

function policy(effect: 'Allow' | 'Deny', resource: string): APIGatewayAuthorizerResult {
  return {
    principalId: 'amy',
    policyDocument: { Version: '2012-10-17', Statement: [{ Action: 'execute-api:Invoke', Effect: effect, Resource: resource }] },
    context: { userId: 'amy', username: 'amy', roles: 'Viewer' },
  };
}

/** A Lambda service whose authorizer answers from `answers` by token, and whose routes answer 200. */
function fakeLambda(answers: Record<string, APIGatewayAuthorizerResult | 'Unauthorized'>) {
  const calls: string[] = [];
  const lambda = {
    invoke: async (name: string, event: { headers?: Record<string, string> }) => {
      if (name.endsWith('Authorizer')) {
        const token = event.headers?.authorization ?? '';
        calls.push(token);
        const a = answers[token];
        if (!a || a === 'Unauthorized') throw new LambdaFunctionError({ errorType: 'Error', errorMessage: 'Unauthorized', trace: [] });
        return a;
      }
      return { statusCode: 200, headers: { 'content-type': 'application/json' }, body: '{"ok":true}' };
    },
  } as unknown as LocalLambda;
  return { lambda, calls };
}

const gateways: LocalApiGateway[] = [];
afterEach(async () => {
  await Promise.all(gateways.splice(0).map((g) => g.close()));
});

async function start(lambda: LocalLambda, ttlSeconds: number) {
  const g = new LocalApiGateway(lambda, true, new LocalWebAcl({ ratePerAddress: 1_000_000, windowSeconds: 60 }), undefined, ttlSeconds);
  g.ready = true;
  gateways.push(g);
  const url = await g.listen(0);
  const get = (path: string, token?: string) => fetch(`${url}${path}`, { headers: token ? { authorization: token } : {} }).then((r) => r.status);
  const post = (path: string, token: string) => fetch(`${url}${path}`, { method: 'POST', headers: { authorization: token } }).then((r) => r.status);
  return { g, get, post };
}

describe('policyAllows', () => {
  it('matches wildcards against the method ARN; an explicit Deny wins', () => {
    expect(policyAllows(policy('Allow', `${ARN}/*/*`).policyDocument, `${ARN}/GET/api/v1/clusters`)).toBe(true);
    expect(policyAllows(policy('Allow', `${ARN}/GET/api/v1/clusters`).policyDocument, `${ARN}/POST/api/v1/deployments`)).toBe(false);
    expect(policyAllows(policy('Allow', `${ARN}/GET/*`).policyDocument, `${ARN}/GET/api/v1/deployments/*`)).toBe(true);
    const both = policy('Allow', `${ARN}/*/*`);
    both.policyDocument.Statement.push({ Action: 'execute-api:Invoke', Effect: 'Deny', Resource: `${ARN}/POST/*` });
    expect(policyAllows(both.policyDocument, `${ARN}/GET/api/v1/clusters`)).toBe(true);
    expect(policyAllows(both.policyDocument, `${ARN}/POST/api/v1/deployments`)).toBe(false);
    // Characters that mean something in a regular expression are literal in an ARN.
    expect(policyAllows(policy('Allow', `${ARN}/GET/api.v1`).policyDocument, `${ARN}/GET/apixv1`)).toBe(false);
  });
});

describe('the local gateway’s authorizer cache', () => {
  it('runs the authorizer once per token within the TTL, and again after it', async () => {
    const { lambda, calls } = fakeLambda({ 'Bearer a': policy('Allow', `${ARN}/*/*`), 'Bearer b': policy('Allow', `${ARN}/*/*`) });
    const { get } = await start(lambda, 1);
    expect(await Promise.all([get('/api/v1/clusters', 'Bearer a'), get('/api/v1/deployments', 'Bearer a')])).toEqual([200, 200]);
    expect(await get('/api/v1/clusters', 'Bearer a')).toBe(200);
    expect(await get('/api/v1/clusters', 'Bearer b')).toBe(200);
    // Two requests in flight together may both miss (as on API Gateway); after that, hits.
    const first = calls.filter((c) => c === 'Bearer a').length;
    expect(first).toBeLessThanOrEqual(2);
    expect(calls.filter((c) => c === 'Bearer b')).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 1100));
    expect(await get('/api/v1/clusters', 'Bearer a')).toBe(200);
    expect(calls.filter((c) => c === 'Bearer a')).toHaveLength(first + 1);
  });

  it('evaluates a cached policy against each route, does not cache a refusal, and refuses a request without the header unasked', async () => {
    const answers: Record<string, APIGatewayAuthorizerResult | 'Unauthorized'> = {
      'Bearer reads': policy('Allow', `${ARN}/GET/*`),
      'Bearer later': 'Unauthorized',
    };
    const { lambda, calls } = fakeLambda(answers);
    const { get, post } = await start(lambda, 60);
    expect(await get('/api/v1/clusters', 'Bearer reads')).toBe(200);
    // The same cached answer, another method: its policy does not allow it.
    expect(await post('/api/v1/deployments', 'Bearer reads')).toBe(403);
    expect(await get('/api/v1/clusters', 'Bearer later')).toBe(401);
    answers['Bearer later'] = policy('Allow', `${ARN}/*/*`);
    expect(await get('/api/v1/clusters', 'Bearer later')).toBe(200);
    expect(calls).toEqual(['Bearer reads', 'Bearer later', 'Bearer later']);
    expect(await get('/api/v1/clusters')).toBe(401);
    expect(calls).toHaveLength(3);
  });

  it('runs the authorizer on every request with a TTL of 0 (the default)', async () => {
    const { lambda, calls } = fakeLambda({ 'Bearer a': policy('Allow', `${ARN}/*/*`) });
    const { get } = await start(lambda, 0);
    for (let i = 0; i < 3; i++) expect(await get('/api/v1/clusters', 'Bearer a')).toBe(200);
    expect(calls).toHaveLength(3);
  });
});
