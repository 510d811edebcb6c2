/** CORS for the origins on the allowlist only (none by default: same-origin and non-browser callers). */
import httpCors from '@middy/http-cors';
import type { ApiMiddleware } from './types.ts';

export function allowedOrigins(setting = process.env.CORS_ALLOWED_ORIGINS): string[] {
  return (setting ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
}

/**
 * The allowlisted origin a request's Origin names, if any. Scheme and host compare without case,
 * and the lookup is a Map, so names like `constructor` or `__proto__` match nothing.
 */
export function originMatcher(origins: string[]): (incoming: string | undefined) => string | undefined {
  const byLowerCase = new Map(origins.map((o) => [o.toLowerCase(), o]));
  return (incoming) => (incoming ? byLowerCase.get(incoming.toLowerCase()) : undefined);
}

/** Undefined when no origin is allowed: then no CORS headers at all. */
export function cors(origins = allowedOrigins()): ApiMiddleware | undefined {
  if (!origins.length) return undefined;
  const match = originMatcher(origins);
  // `vary` is honoured by @middy/http-cors 6 but missing from its typings; one allowed origin needs it too.
  const options = { origins, getOrigin: (incoming: string) => match(incoming) ?? '', headers: 'Authorization,Content-Type,Idempotency-Key', vary: 'Origin' };
  return httpCors(options) as ApiMiddleware;
}
