/**
 * Security headers (@middy/http-security-headers 6): HSTS, nosniff and the like on every answer;
 * the page-only headers (CSP, framing, permissions) on HTML answers, i.e. the approval
 * confirmation pages.
 */
import httpSecurityHeaders from '@middy/http-security-headers';
import type { ApiMiddleware } from './types.ts';

export function securityHeaders(): ApiMiddleware {
  return httpSecurityHeaders({
    // No scripts, inline styles only, forms post back to this origin only, never framed.
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
  }) as ApiMiddleware;
}
