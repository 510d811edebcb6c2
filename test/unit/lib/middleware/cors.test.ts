import { describe, expect, it } from 'vitest';
import { allowedOrigins, cors } from '../../../../functions/lib/middleware/cors.ts';
import { event, run } from './harness.ts';

describe('cors', () => {
  it('is off without an allowlist', () => {
    expect(allowedOrigins(undefined)).toEqual([]);
    expect(allowedOrigins(' https://a.example , ,https://b.example')).toEqual(['https://a.example', 'https://b.example']);
    expect(cors([])).toBeUndefined();
  });

  it('answers only the origins on the allowlist', async () => {
    const h = run([cors(['https://console.example.com'])!]);
    const allowed = await h(event({ headers: { origin: 'https://console.example.com' } }));
    expect(allowed.headers).toMatchObject({
      'Access-Control-Allow-Origin': 'https://console.example.com',
      'Access-Control-Allow-Headers': 'Authorization,Content-Type,Idempotency-Key',
    });
    const other = await h(event({ headers: { origin: 'https://evil.example' } }));
    expect(other.headers?.['Access-Control-Allow-Origin']).toBeUndefined();
  });
});
