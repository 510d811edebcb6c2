/**
 * Security headers (@middy/http-security-headers 6): HSTS, nosniff and the like on every answer;
 * the page-only headers (CSP, framing, permissions) on HTML answers, i.e. the approval
 * confirmation pages. One page has its own policy: the API reference at GET /docs loads its script
 * from this origin (lib/apiDocs.ts, DOCS_CSP); every other page keeps the no-script policy.
 */
import httpSecurityHeaders from '@middy/http-security-headers';
import { DOCS_CSP } from '../apiDocs.ts';
import type { ApiMiddleware } from './types.ts';

/** Routes whose HTML answers carry their own Content-Security-Policy instead of the default. */
const OWN_POLICY: Record<string, string> = { '/docs': DOCS_CSP };

export function securityHeaders(): ApiMiddleware {
  const base = headers();
  const ownPolicy: NonNullable<ApiMiddleware['after']> = async (request) => {
    const policy = OWN_POLICY[request.event.resource];
    const h = request.response?.headers;
    if (!policy || !h || !String(h['Content-Type'] ?? h['content-type'] ?? '').includes('text/html')) return;
    delete h['content-security-policy'];
    h['Content-Security-Policy'] = policy;
  };
  return {
    after: async (request) => {
      await base.after?.(request);
      await ownPolicy(request);
    },
    onError: async (request) => {
      await base.onError?.(request);
      await ownPolicy(request);
    },
  };
}

function headers(): ApiMiddleware {
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
