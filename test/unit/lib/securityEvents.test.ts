import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DENIAL_MUTABLE_FIELDS, denialActor, denialWrites, ipv6Prefix64 } from '../../../functions/lib/securityEvents.ts';

describe('aggregated denial events (issue 15 defect 4)', () => {
  beforeEach(() => {
    process.env.AUDIT_TABLE = 'kmod-Audit';
  });
  afterEach(() => {
    delete process.env.AUDIT_TABLE;
  });

  it('counts a caller by id, an unknown caller by address, and an IPv6 address by its /64', () => {
    expect(denialActor({ userId: 'dev-viewer', sourceIp: '203.0.113.9' })).toBe('dev-viewer');
    expect(denialActor({ sourceIp: '203.0.113.9' })).toBe('ip:203.0.113.9');
    expect(denialActor({})).toBe('ip:unknown');
    expect(denialActor({ sourceIp: '2001:db8:0:12:abcd::1' })).toBe('ip:2001:db8:0:12::/64');
    expect(ipv6Prefix64('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(ipv6Prefix64('::1')).toBe('0:0:0:0::/64');
    expect(ipv6Prefix64('2001:0db8:0001:0002:0003:0004:0005:0006')).toBe('2001:db8:1:2::/64');
    expect(ipv6Prefix64('64:ff9b::192.0.2.33')).toBe('64:ff9b:0:0::/64');
    expect(ipv6Prefix64('192.0.2.33')).toBeUndefined();
  });

  it('one item per actor, action and window: the first refusal creates it (a chained audit event), every later one adds to its count', () => {
    const denial = { action: 'auth.failed' as const, sourceIp: '203.0.113.9', method: 'GET', path: '/api/v1/clusters', reason: 'invalid token' };
    const first = denialWrites(denial, new Date('2026-01-01T10:02:10.000Z'), 300);
    const later = denialWrites({ ...denial, path: '/api/v1/deployments' }, new Date('2026-01-01T10:04:59.999Z'), 300);
    const next = denialWrites(denial, new Date('2026-01-01T10:05:00.000Z'), 300);
    expect(first.count.Key).toEqual({ subject: 'access#ip:203.0.113.9', sk: '2026-01-01T10:00:00.000Z#auth.failed' });
    expect(later.count.Key).toEqual(first.count.Key);
    expect(next.count.Key).toEqual({ subject: 'access#ip:203.0.113.9', sk: '2026-01-01T10:05:00.000Z#auth.failed' });
    // Counting touches only the mutable fields, and only an existing window.
    expect(first.count.UpdateExpression).toBe('ADD #count :one SET latest = :latest');
    expect(first.count.ConditionExpression).toBe('attribute_exists(subject)');
    // Creating puts the whole event, only if the window has none yet, naming what may change after it.
    expect(first.create.ConditionExpression).toBe('attribute_not_exists(subject)');
    expect(first.create.Item).toMatchObject({
      subject: 'access#ip:203.0.113.9',
      sk: '2026-01-01T10:00:00.000Z#auth.failed',
      at: '2026-01-01T10:02:10.000Z',
      category: 'security',
      action: 'auth.failed',
      actor: 'ip:203.0.113.9',
      count: 1,
      mutable: [...DENIAL_MUTABLE_FIELDS],
      details: {
        method: 'GET',
        path: '/api/v1/clusters',
        reason: 'invalid token',
        windowStart: '2026-01-01T10:00:00.000Z',
        windowSeconds: 300,
        sourceIp: '203.0.113.9',
      },
    });
    expect(Object.keys(first.create.Item)).toEqual(expect.arrayContaining([...DENIAL_MUTABLE_FIELDS]));
    expect(later.count.ExpressionAttributeValues?.[':latest']).toEqual({
      at: '2026-01-01T10:04:59.999Z',
      method: 'GET',
      path: '/api/v1/deployments',
      reason: 'invalid token',
    });
  });
});
