/**
 * Security headers (@middy/http-security-headers). Middy 7 puts every header on every answer;
 * as under middy 6, those that only matter to a browser rendering a page (CSP, framing,
 * cross-origin isolation, permissions) go on HTML answers only: the approval confirmation pages.
 */
import httpSecurityHeaders from '@middy/http-security-headers';
import type { ApiMiddleware, ApiRequest } from './types.ts';

const everyAnswer = httpSecurityHeaders({
  contentSecurityPolicy: false,
  crossOriginEmbedderPolicy: false,
  crossOriginOpenerPolicy: false,
  crossOriginResourcePolicy: false,
  permissionsPolicy: false,
  frameOptions: false,
  reportTo: false,
}) as ApiMiddleware;

const htmlOnly = httpSecurityHeaders({
  contentTypeOptions: false,
  dnsPrefetchControl: false,
  downloadOptions: false,
  originAgentCluster: false,
  permittedCrossDomainPolicies: false,
  referrerPolicy: false,
  reportingEndpoints: false,
  reportTo: false,
  strictTransportSecurity: false,
  xssProtection: true,
  // No scripts, inline styles only, forms post back to this origin only, never framed.
  contentSecurityPolicy: {
    'default-src': "'none'",
    'trusted-types': "'none'",
    'style-src': "'unsafe-inline'",
    'form-action': "'self'",
    'frame-ancestors': "'none'",
    'base-uri': "'none'",
    'report-to': null,
    sandbox: null,
    'upgrade-insecure-requests': null,
  } as never,
}) as ApiMiddleware;

const isHtml = (headers: Record<string, unknown> | undefined) => String(headers?.['Content-Type'] ?? headers?.['content-type'] ?? '').includes('text/html');

async function apply(request: ApiRequest) {
  await everyAnswer.after!(request);
  if (isHtml(request.response?.headers)) await htmlOnly.after!(request);
}

export function securityHeaders(): ApiMiddleware {
  return {
    after: apply,
    onError: async (request) => {
      if (request.response !== undefined) await apply(request);
    },
  };
}
