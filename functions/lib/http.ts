/**
 * Cross-cutting concerns of the HTTP handlers, as middy middleware: logging and tracing
 * (Powertools), security headers, the caller's identity from the authorizer, JSON errors with a
 * stable `code`, and schema validation of bodies and query strings.
 */
import middy from '@middy/core';
import httpSecurityHeaders from '@middy/http-security-headers';
import httpCors from '@middy/http-cors';
import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { captureLambdaHandler } from '@aws-lambda-powertools/tracer/middleware';
import type { APIGatewayProxyEvent, APIGatewayProxyResult, Context } from 'aws-lambda';
import { z } from 'zod';
import { AppError, badRequest, forbidden, unauthorized } from '../domain/errors.ts';
import { logger, tracer } from './telemetry.ts';
import { audit } from './audit.ts';
import { consume, rateLimitSettings } from './rateLimits.ts';

import { ROUTES } from '../catalog.ts';
import { ROLES, type Role } from '../domain/roles.ts';
export { ROLES, type Role };

export interface Principal {
  userId: string;
  username: string;
  roles: Role[];
}

/** Request bodies larger than this are refused before parsing. */
export const MAX_BODY_BYTES = 16 * 1024;

export type RouteHandler = (event: APIGatewayProxyEvent, principal: Principal | undefined) => Promise<APIGatewayProxyResult>;

export function json(statusCode: number, body: unknown, headers: Record<string, string> = {}): APIGatewayProxyResult {
  return { statusCode, headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) };
}

/** The caller as the authorizer described it in the request context. */
export function principalOf(event: APIGatewayProxyEvent): Principal | undefined {
  const a = event.requestContext?.authorizer as Record<string, unknown> | null | undefined;
  if (!a || typeof a.userId !== 'string') return undefined;
  const roles = String(a.roles ?? '')
    .split(',')
    .filter((r): r is Role => (ROLES as readonly string[]).includes(r));
  return { userId: a.userId, username: String(a.username ?? a.userId), roles };
}

export function requireRole(principal: Principal | undefined, allowed: readonly Role[]): Principal {
  if (!principal) throw unauthorized('a bearer token is required');
  if (!principal.roles.some((r) => allowed.includes(r))) {
    throw forbidden(`this action needs one of the roles ${allowed.join(', ')}; you have ${principal.roles.join(', ') || 'none'}`);
  }
  return principal;
}

/** The caller of a protected route (httpApi has already checked the route's roles). */
export function signedIn(principal: Principal | undefined): Principal {
  if (!principal) throw unauthorized('a bearer token is required');
  return principal;
}

/** The roles the authorization matrix (catalog ROUTES) allows on a route. */
export function allowedRoles(method: string, resource: string): readonly Role[] | 'public' | undefined {
  return ROUTES.find((r) => r.method === method && r.path === resource)?.roles;
}

function issuesMessage(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : 'body';
      return `${where}: ${i.message}`;
    })
    .join('; ');
}

export function parseBody<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S, maxBytes = MAX_BODY_BYTES): z.infer<S> {
  const raw = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
  if (Buffer.byteLength(raw) > maxBytes) throw new AppError('BodyTooLarge', `the request body exceeds ${maxBytes} bytes`, 400);
  const type = Object.entries(event.headers ?? {}).find(([k]) => k.toLowerCase() === 'content-type')?.[1] ?? '';
  if (raw && !/^application\/json\b/i.test(type)) throw new AppError('UnsupportedMediaType', 'the request body must be application/json', 415);
  let value: unknown;
  try {
    value = raw ? JSON.parse(raw) : undefined;
  } catch {
    throw badRequest('the request body is not valid JSON');
  }
  const r = schema.safeParse(value);
  if (!r.success)
    throw badRequest(
      issuesMessage(r.error),
      r.error.issues.map((i) => ({ path: i.path.join('.'), message: i.message })),
    );
  return r.data;
}

export function parseQuery<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S): z.infer<S> {
  const r = schema.safeParse(event.queryStringParameters ?? {});
  if (!r.success) throw badRequest(issuesMessage(r.error));
  return r.data;
}

export function parsePath<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S): z.infer<S> {
  const r = schema.safeParse(event.pathParameters ?? {});
  if (!r.success) throw new AppError('NotFound', issuesMessage(r.error), 404);
  return r.data;
}

/** Map thrown errors to `{ code, message }` JSON; unexpected ones are logged and hidden. */
const jsonErrors = (): middy.MiddlewareObj<APIGatewayProxyEvent, APIGatewayProxyResult> => ({
  onError: async (request) => {
    const e = request.error;
    if (e instanceof AppError) {
      request.response = json(e.status, { code: e.code, message: e.message, ...(e.details ? { details: e.details } : {}) }, e.headers);
      if (e.status === 401 || e.status === 403) await auditDenied(request.event, e);
      return;
    }
    logger.error('unhandled error', e as Error);
    request.response = json(500, { code: 'InternalError', message: 'an internal error occurred; it has been logged', requestId: request.context.awsRequestId });
  },
});

/** Which limits a request counts against: per address always, per user on costly routes. */
async function enforceRateLimits(event: APIGatewayProxyEvent, principal: Principal | undefined): Promise<Record<string, string>> {
  if (event.resource === '/health') return {};
  const s = await rateLimitSettings();
  const ip = event.requestContext?.identity?.sourceIp ?? 'unknown';
  let headers = await consume('ip', ip, s.perIp, s.windowSeconds);
  const key = `${event.httpMethod} ${event.resource}`;
  if (principal && key === 'POST /api/v1/deployments') headers = await consume('deployments', principal.userId, s.deploymentCreatePerUser, s.windowSeconds);
  if (principal && key === 'GET /api/v1/clusters/{environment}/metrics')
    headers = await consume('metrics', principal.userId, s.metricsPerUser, s.windowSeconds);
  return headers;
}

/** Denied calls are security events. */
async function auditDenied(event: APIGatewayProxyEvent, e: AppError): Promise<void> {
  const principal = principalOf(event);
  try {
    await audit({
      subject: `access#${event.httpMethod} ${event.resource}`,
      category: 'security',
      action: e.status === 401 ? 'access.unauthenticated' : 'access.denied',
      actor: principal?.userId ?? `ip:${event.requestContext?.identity?.sourceIp ?? 'unknown'}`,
      details: { code: e.code, method: event.httpMethod, path: event.path, sourceIp: event.requestContext?.identity?.sourceIp },
    });
  } catch (err) {
    logger.warn('could not audit a denied call', err as Error);
  }
}

/** One Lambda serves several routes: dispatch on API Gateway's resource template. */
export function httpApi(routes: Record<string, RouteHandler>) {
  const base = async (event: APIGatewayProxyEvent, _context: Context): Promise<APIGatewayProxyResult> => {
    const route = routes[`${event.httpMethod} ${event.resource}`];
    const roles = allowedRoles(event.httpMethod, event.resource);
    if (!route || !roles) throw new AppError('NotFound', `no route for ${event.httpMethod} ${event.resource}`, 404);
    const principal = principalOf(event);
    const limitHeaders = await enforceRateLimits(event, principal);
    if (roles !== 'public') requireRole(principal, roles);
    try {
      const result = await route(event, principal);
      return { ...result, headers: { ...limitHeaders, ...result.headers } };
    } catch (e) {
      if (e instanceof AppError) Object.assign(e.headers, limitHeaders, e.headers);
      throw e;
    }
  };
  // CORS only for the origins on the allowlist (none by default: same-origin and non-browser callers).
  const corsOrigins = (process.env.CORS_ALLOWED_ORIGINS ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
  const handler = middy(base);
  if (corsOrigins.length) handler.use(httpCors({ origins: corsOrigins, headers: 'Authorization,Content-Type,Idempotency-Key', vary: 'Origin' }));
  return handler
    .use(injectLambdaContext(logger, { resetKeys: true }))
    .use(captureLambdaHandler(tracer))
    .use(
      httpSecurityHeaders({
        // Applies to HTML answers (the approval confirmation pages): no scripts, inline styles
        // only, forms post back to this origin only, never framed.
        contentSecurityPolicy: {
          'default-src': "'none'",
          'style-src': "'unsafe-inline'",
          'form-action': "'self'",
          'frame-ancestors': "'none'",
          'base-uri': "'none'",
          'navigate-to': null,
          'report-to': null,
          sandbox: null,
          'upgrade-insecure-requests': null,
        } as never,
      }),
    )
    .use(jsonErrors());
}

/** Page cursors are opaque to clients: the last key, base64url JSON. */
export function encodeCursor(key: Record<string, unknown> | undefined): string | null {
  return key ? Buffer.from(JSON.stringify(key)).toString('base64url') : null;
}

export function decodeCursor(cursor: string | undefined): Record<string, unknown> | undefined {
  if (!cursor) return undefined;
  try {
    const key = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as unknown;
    if (key && typeof key === 'object' && !Array.isArray(key) && Object.values(key).every((v) => typeof v === 'string')) return key as Record<string, unknown>;
  } catch {
    /* fall through */
  }
  throw new AppError('ValidationError', 'cursor is not one this API returned');
}
