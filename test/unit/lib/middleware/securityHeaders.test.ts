import { describe, expect, it } from 'vitest';
import { securityHeaders } from '../../../../functions/lib/middleware/securityHeaders.ts';
import { asAnswer, event, run } from './harness.ts';

const answer = (contentType: string) =>
  run([securityHeaders()], async () => ({ statusCode: 200, headers: { 'content-type': contentType }, body: '' }))(event());

describe('securityHeaders', () => {
  it('puts the transport and sniffing headers on every answer, errors included', async () => {
    const r = await answer('application/json');
    expect(r.headers).toMatchObject({
      'Strict-Transport-Security': 'max-age=15552000; includeSubDomains; preload',
      'X-Content-Type-Options': 'nosniff',
      'Referrer-Policy': 'no-referrer',
    });
    expect(r.headers).not.toHaveProperty('Content-Security-Policy');
    expect(r.headers).not.toHaveProperty('X-Frame-Options');
    const failed = await run([securityHeaders(), asAnswer], async () => Promise.reject(new Error('x')))(event());
    expect(failed.headers).toHaveProperty('X-Content-Type-Options', 'nosniff');
  });

  it('adds the page CSP, framing and isolation headers to HTML answers', async () => {
    const r = await answer('text/html; charset=utf-8');
    expect(r.headers!['Content-Security-Policy']).toBe(
      "default-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; require-trusted-types-for 'script'; trusted-types 'none'; style-src 'unsafe-inline'",
    );
    expect(r.headers).toMatchObject({
      'X-Frame-Options': 'DENY',
      'Cross-Origin-Opener-Policy': 'same-origin',
      'Cross-Origin-Resource-Policy': 'same-origin',
      'X-Content-Type-Options': 'nosniff',
    });
  });
});
