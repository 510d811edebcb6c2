/**
 * Schema validation of a request's body, query string and path. Plain functions, not middleware:
 * the schema belongs to the route's handler, and each handler decides the order (a bad path is a
 * 404 before a bad body is a 400). Header names are lower case (http-header-normalizer).
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { parse as parseContentType } from 'content-type';
import type { z } from 'zod';
import { AppError, badRequest } from '../domain/errors.ts';

/** Request bodies larger than this are refused before parsing. */
export const MAX_BODY_BYTES = 16 * 1024;

function issuesMessage(error: z.ZodError): string {
  return error.issues
    .map((i) => {
      const where = i.path.length ? i.path.join('.') : 'body';
      return `${where}: ${i.message}`;
    })
    .join('; ');
}

/**
 * A JSON body's media type: `application/json` (any case), with no parameter but an optional
 * `charset=utf-8`. Anything else, another charset above all, is not parsed as UTF-8 JSON.
 */
export function isJsonMediaType(header: string | undefined): boolean {
  if (!header) return false;
  const { type, parameters } = parseContentType(header);
  if (type !== 'application/json') return false;
  return Object.entries(parameters).every(([name, value]) => name === 'charset' && value.toLowerCase() === 'utf-8');
}

const unsupportedMediaType = () => new AppError('UnsupportedMediaType', 'the request body must be application/json (optionally with charset=utf-8)', 415);

export function parseBody<S extends z.ZodType>(event: APIGatewayProxyEvent, schema: S, maxBytes = MAX_BODY_BYTES): z.infer<S> {
  const raw = event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');
  if (Buffer.byteLength(raw) > maxBytes) throw new AppError('BodyTooLarge', `the request body exceeds ${maxBytes} bytes`, 400);
  const type = event.headers?.['content-type'];
  if (raw && !isJsonMediaType(type)) throw unsupportedMediaType();
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
