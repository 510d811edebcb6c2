/**
 * What API Gateway itself answers (before or instead of a Lambda): JSON `{ code, message }` like
 * every other error. The CDK stack configures these gateway responses; the local API gateway
 * answers the same way.
 */
export interface GatewayResponse {
  type: 'UNAUTHORIZED' | 'ACCESS_DENIED' | 'MISSING_AUTHENTICATION_TOKEN' | 'REQUEST_TOO_LARGE' | 'THROTTLED' | 'DEFAULT_4XX' | 'DEFAULT_5XX';
  statusCode: number;
  code: string;
  message: string;
  headers?: Record<string, string>;
}

export const GATEWAY_RESPONSES: GatewayResponse[] = [
  {
    type: 'UNAUTHORIZED',
    statusCode: 401,
    code: 'Unauthorized',
    message: 'a valid bearer token is required',
    headers: { 'WWW-Authenticate': 'Bearer realm="kmod-orchestrator", error="invalid_token"' },
  },
  { type: 'ACCESS_DENIED', statusCode: 403, code: 'Forbidden', message: 'access denied' },
  { type: 'MISSING_AUTHENTICATION_TOKEN', statusCode: 404, code: 'NotFound', message: 'no such route' },
  { type: 'REQUEST_TOO_LARGE', statusCode: 413, code: 'RequestTooLarge', message: 'the request is too large' },
  { type: 'THROTTLED', statusCode: 429, code: 'TooManyRequests', message: 'too many requests' },
  { type: 'DEFAULT_4XX', statusCode: 400, code: 'BadRequest', message: 'the request was rejected' },
  { type: 'DEFAULT_5XX', statusCode: 502, code: 'InternalError', message: 'internal server error' },
];

/** Sent with every gateway answer too, as the Lambdas' own answers carry them. */
export const GATEWAY_SECURITY_HEADERS = { 'Strict-Transport-Security': 'max-age=15552000; includeSubDomains; preload', 'X-Content-Type-Options': 'nosniff' };

export function gatewayResponse(type: GatewayResponse['type']): GatewayResponse {
  return GATEWAY_RESPONSES.find((g) => g.type === type)!;
}

/**
 * API Gateway's authorizer result cache, per bearer token. Off by default: the authorizer answers
 * with the caller's roles from the directory (cached DIRECTORY_CACHE_SECONDS), and a cached answer
 * would keep a demoted or disabled principal in, or an expired token valid, for as long again.
 * The CDK app (context `authorizerCacheSeconds`) and the local gateway (`AUTHORIZER_CACHE_SECONDS`)
 * read the same setting, so both behave alike (docs/adr/0024-hot-path-reads.md).
 */
export const AUTHORIZER_CACHE_SECONDS_DEFAULT = 0;

export function authorizerCacheSecondsFromEnv(env: Record<string, string | undefined> = process.env): number {
  const v = Number(env.AUTHORIZER_CACHE_SECONDS ?? AUTHORIZER_CACHE_SECONDS_DEFAULT);
  if (!Number.isInteger(v) || v < 0 || v > 3600)
    throw new Error(`AUTHORIZER_CACHE_SECONDS must be a whole number of seconds from 0 to 3600, got "${env.AUTHORIZER_CACHE_SECONDS}"`);
  return v;
}
