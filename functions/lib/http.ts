/**
 * An API Lambda: one handler per route it serves (dispatched on API Gateway's resource template),
 * wrapped in the HTTP middlewares of lib/middleware, in this order.
 */
import middy from '@middy/core';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { APIGatewayProxyEvent, APIGatewayProxyResult } from 'aws-lambda';
import type { ROUTES } from '../catalog.ts';
import type { Principal } from '../domain/roles.ts';
import { flushMetrics, logger, tracer, withCorrelation } from './telemetry.ts';
import { correlation } from './middleware/correlation.ts';
import { executionIdSchema } from './task.ts';
import { auditDenials } from './middleware/auditDenials.ts';
import { authorize } from './middleware/authorize.ts';
import { cors } from './middleware/cors.ts';
import { normalizeHeaders } from './middleware/headers.ts';
import { identity } from './middleware/identity.ts';
import { jsonErrors } from './middleware/jsonErrors.ts';
import { matchRoute, routeKey } from './middleware/matchRoute.ts';
import { noQueryOnWrites } from './middleware/noQueryOnWrites.ts';
import { rateLimit } from './middleware/rateLimit.ts';
import { securityHeaders } from './middleware/securityHeaders.ts';
import type { ApiContext, ApiMiddleware } from './middleware/types.ts';
export { json } from './middleware/types.ts';

type Route = (typeof ROUTES)[number];
type KeyOf<R> = R extends { method: infer M extends string; path: infer P extends string } ? `${M} ${P}` : never;
export type RouteKey = KeyOf<Route>;
type RouteAt<K extends RouteKey, R = Route> = R extends Route ? (KeyOf<R> extends K ? R : never) : never;
/** Protected routes always have a caller (authorize has checked it); public ones may not. */
export type CallerOf<K extends RouteKey> = RouteAt<K>['roles'] extends 'public' ? Principal | undefined : Principal;
export type RouteHandler<K extends RouteKey> = (event: APIGatewayProxyEvent, principal: CallerOf<K>) => Promise<APIGatewayProxyResult>;

/** The deployment a route's path names (`{executionId}`), when it is a well-formed execution id. */
function deploymentOf(event: APIGatewayProxyEvent): { executionId?: string; deploymentId?: string } {
  const id = executionIdSchema.safeParse(event.pathParameters?.executionId);
  return id.success ? { executionId: id.data, deploymentId: id.data } : {};
}

export function apiHandler<K extends RouteKey>(routes: { [P in K]: RouteHandler<P> }) {
  const handlers = routes as Record<string, (event: APIGatewayProxyEvent, principal: Principal | undefined) => Promise<APIGatewayProxyResult>>;
  // The route's work runs with the request's correlation (and its caller), which agent calls and log lines carry.
  // A route about one deployment (steering, approvals, reads) logs its execution id next to the
  // request's own correlation id, so searching for either finds the request.
  const dispatch = (event: APIGatewayProxyEvent, context: ApiContext) =>
    withCorrelation({ ...context.correlation, user: context.principal?.userId, ...deploymentOf(event) }, async () => {
      const result = await handlers[routeKey(event.httpMethod, event.resource)](event, context.principal);
      // One line per change at INFO (reads stay quiet; unexpected errors are logged by jsonErrors, denials audited).
      if (event.httpMethod !== 'GET') logger.info('request done', { statusCode: result.statusCode });
      return result;
    });
  const handler = middy<APIGatewayProxyEvent, APIGatewayProxyResult, Error, ApiContext>(dispatch);
  const allowOrigins = cors();
  if (allowOrigins) handler.use(allowOrigins);
  return handler
    .use(injectLambdaContext(logger, { resetKeys: true }) as ApiMiddleware)
    .use(captureLambdaHandler(tracer) as ApiMiddleware)
    .use(flushMetrics() as ApiMiddleware)
    .use(correlation())
    .use(securityHeaders())
    .use(jsonErrors())
    .use(auditDenials())
    .use(normalizeHeaders() as ApiMiddleware)
    .use(matchRoute(Object.keys(routes)))
    .use(identity())
    .use(rateLimit())
    .use(authorize())
    .use(noQueryOnWrites());
}
