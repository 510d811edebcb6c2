/** What the HTTP middlewares share: the matched route and the caller ride on the Lambda context. */
import type middy from '@middy/core';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import type { RouteSpec } from '../../catalog.ts';
import type { Principal } from '../../domain/roles.ts';
import type { Correlation } from '../traceContext.ts';

export interface ApiContext extends Context {
  /** Set by matchRoute. */
  route?: RouteSpec;
  /** Set by identity; always set on protected routes once authorize has passed. */
  principal?: Principal;
  /** Set by correlation: the request's correlation id and route. */
  correlation?: Correlation;
}

export type ApiRequest = middy.Request<APIGatewayProxyEvent, APIGatewayProxyResult, Error, ApiContext>;
export type ApiMiddleware = middy.MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult, Error, ApiContext>;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}
