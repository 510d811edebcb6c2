/** Runs middlewares around a handler with middy itself, no local cloud. */
import middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { ApiContext, ApiMiddleware } from '../../../../functions/lib/middleware/types.ts';

export function event(over: Partial<APIGatewayProxyEvent> & { authorizer?: Record<string, unknown>; sourceIp?: string } = {}): APIGatewayProxyEvent {
  const { authorizer, sourceIp = '203.0.113.9', ...rest } = over;
  return {
    httpMethod: 'GET',
    resource: '/api/v1/deployments',
    path: '/api/v1/deployments',
    headers: {},
    body: null,
    isBase64Encoded: false,
    queryStringParameters: null,
    pathParameters: null,
    requestContext: { authorizer, identity: { sourceIp } },
    ...rest,
  } as unknown as APIGatewayProxyEvent;
}

export function run(
  middlewares: ApiMiddleware[],
  handler: (event: APIGatewayProxyEvent, context: ApiContext) => Promise<APIGatewayProxyResult> = async () => ({ statusCode: 200, headers: {}, body: '{}' }),
  context: Partial<ApiContext> = {},
) {
  const h = middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, ApiContext>(handler);
  for (const m of middlewares) h.use(m);
  return (e: APIGatewayProxyEvent) => h(e, { awsRequestId: 'req-1', ...context } as ApiContext);
}

/** Maps errors as the API does, so a test sees answers rather than throws. */
export const asAnswer: ApiMiddleware = {
  onError: (request) => {
    const e = request.error as Error & { status?: number; code?: string; headers?: Record<string, string> };
    request.response = { statusCode: e.status ?? 500, headers: { ...(e.headers ?? {}) }, body: JSON.stringify({ code: e.code }) };
  },
};
