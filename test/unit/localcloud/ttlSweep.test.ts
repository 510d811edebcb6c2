import { describe, expect, it } from 'vitest';
import { TTL_MAX_AGE_SECONDS, expiredKeys, isExpired } from '../../../localcloud/ttlSweep.ts';

describe('TTL sweep selection (as DynamoDB TTL decides)', () => {
  const now = 1_800_000_000;

  it('an item whose TTL is in the past is expired; now or later is not', () => {
    expect(isExpired({ expiresAt: now - 1 }, now)).toBe(true);
    expect(isExpired({ expiresAt: now }, now)).toBe(false);
    expect(isExpired({ expiresAt: now + 86_400 }, now)).toBe(false);
  });

  it('an item without a numeric TTL never expires', () => {
    expect(isExpired({}, now)).toBe(false);
    expect(isExpired({ expiresAt: String(now - 10) }, now)).toBe(false);
    expect(isExpired({ expiresAt: Number.NaN }, now)).toBe(false);
  });

  it('a TTL more than five years back is left alone (DynamoDB’s guard against milliseconds for seconds)', () => {
    expect(isExpired({ expiresAt: now - TTL_MAX_AGE_SECONDS }, now)).toBe(true);
    expect(isExpired({ expiresAt: now - TTL_MAX_AGE_SECONDS - 1 }, now)).toBe(false);
    expect(isExpired({ expiresAt: 0 }, now)).toBe(false);
  });

  it('names the expired items by their table’s key, partition and sort', () => {
    const items = [
      { subject: 's1', sk: 'k1', expiresAt: now - 5, other: 1 },
      { subject: 's2', sk: 'k2', expiresAt: now + 5 },
      { subject: 's3', sk: 'k3' },
    ];
    expect(expiredKeys({ partitionKey: 'subject', sortKey: 'sk' }, items, now)).toEqual([{ subject: 's1', sk: 'k1' }]);
    expect(expiredKeys({ partitionKey: 'key' }, [{ key: 'a', expiresAt: now - 1 }], now)).toEqual([{ key: 'a' }]);
  });
});
