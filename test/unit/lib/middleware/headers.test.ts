import { describe, expect, it } from 'vitest';
import { conflictingHeader, normalizeHeaders } from '../../../../functions/lib/middleware/headers.ts';
import { event, run } from './harness.ts';

describe('conflictingHeader', () => {
  it('finds a single-valued header sent twice with different values, in any case', () => {
    expect(conflictingHeader({ headers: { Authorization: 'Bearer a', authorization: 'Bearer b' } })).toBe('authorization');
    expect(conflictingHeader({ headers: { 'Idempotency-Key': 'k1' }, multiValueHeaders: { 'idempotency-key': ['k1', 'k2'] } })).toBe('idempotency-key');
    expect(conflictingHeader({ headers: { 'Content-Type': 'text/plain', 'content-type': 'application/json' } })).toBe('content-type');
  });

  it('lets repeated equal values and ordinary multi-valued headers through', () => {
    expect(conflictingHeader({ headers: { Authorization: 'Bearer a', authorization: 'Bearer a' } })).toBeUndefined();
    expect(conflictingHeader({ headers: { Accept: 'text/html' }, multiValueHeaders: { accept: ['text/html', 'application/json'] } })).toBeUndefined();
    expect(conflictingHeader({ headers: null, multiValueHeaders: null })).toBeUndefined();
  });
});

describe('normalizeHeaders', () => {
  it('answers 400 AmbiguousHeader before the handler runs', async () => {
    let ran = false;
    const h = run([normalizeHeaders() as never], async () => {
      ran = true;
      return { statusCode: 200, body: '' };
    });
    await expect(h(event({ headers: { 'Idempotency-Key': 'a', 'idempotency-key': 'b' } }))).rejects.toMatchObject({ code: 'AmbiguousHeader', status: 400 });
    expect(ran).toBe(false);
  });

  it('lower-cases header names for the handler', async () => {
    let seen: Record<string, unknown> = {};
    const h = run([normalizeHeaders() as never], async (e) => {
      seen = e.headers;
      return { statusCode: 200, body: '' };
    });
    await h(event({ headers: { 'Idempotency-Key': 'a' } }));
    expect(seen).toMatchObject({ 'idempotency-key': 'a' });
  });
});
