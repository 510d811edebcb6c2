/** CORS for the origins on the allowlist only (none by default: same-origin and non-browser callers). */
import httpCors from '@middy/http-cors';
import type { ApiMiddleware } from './types.ts';

export function allowedOrigins(setting = process.env.CORS_ALLOWED_ORIGINS): string[] {
  return (setting ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean);
}

/** Undefined when no origin is allowed: then no CORS headers at all. */
export function cors(origins = allowedOrigins()): ApiMiddleware | undefined {
  if (!origins.length) return undefined;
  // `vary` is honoured by @middy/http-cors 6 but missing from its typings; one allowed origin needs it too.
  const options = { origins, headers: 'Authorization,Content-Type,Idempotency-Key', vary: 'Origin' };
  return httpCors(options) as ApiMiddleware;
}
