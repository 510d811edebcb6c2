import { describe, expect, it } from 'vitest';
import { DEFAULT_WAF, WAF_MAX_BODY_BYTES, wafSettingsFromEnv } from '../../../functions/webAcl.ts';
import { BUCKETS, LocalWebAcl, MAX_TRACKED_ADDRESSES } from '../../../localcloud/webAcl.ts';

describe('the local web ACL (issue 15 defect 4)', () => {
  it('counts every request of an address over a sliding window, blocked ones too, and each address apart', () => {
    const acl = new LocalWebAcl({ ratePerAddress: 10, windowSeconds: 60 });
    const t0 = 1_000_000_000;
    const hits = (n: number, at: number, address = '198.51.100.7') => Array.from({ length: n }, () => acl.overRate(address, at));
    expect(hits(10, t0)).toEqual(Array(10).fill(false));
    expect(hits(2, t0 + 30_000)).toEqual([true, true]);
    expect(acl.overRate('198.51.100.8', t0 + 30_000)).toBe(false);
    // The first ten leave the window 60 s after they came; the two blocked ones still count.
    expect(acl.overRate('198.51.100.7', t0 + 59_000)).toBe(true);
    expect(hits(7, t0 + 60_000)).toEqual(Array(7).fill(false));
    expect(acl.overRate('198.51.100.7', t0 + 60_000)).toBe(true);
  });

  it('tracks a bounded number of addresses: the least recently seen is forgotten, one that keeps sending stays blocked', () => {
    const acl = new LocalWebAcl({ ratePerAddress: 10, windowSeconds: 60 }, 1000);
    const t0 = 1_000_000_000;
    const hot = '203.0.113.9';
    for (let i = 0; i < 11; i++) acl.overRate(hot, t0);
    expect(acl.overRate(hot, t0)).toBe(true);
    // 5,000 addresses in the same minute (before: all 5,000 kept for the whole window), the hot one still sending among them.
    for (let i = 0; i < 5000; i++) {
      expect(acl.overRate(`10.0.${i >> 8}.${i & 255}`, t0 + 1000)).toBe(false);
      if (i % 100 === 0) expect(acl.overRate(hot, t0 + 1000)).toBe(true);
      expect(acl.tracked).toBeLessThanOrEqual(1000);
    }
    expect(acl.overRate(hot, t0 + 2000)).toBe(true);
    // An address forgotten early starts again from zero, as a new one does.
    expect(acl.overRate('10.0.0.0', t0 + 2000)).toBe(false);
    expect(MAX_TRACKED_ADDRESSES).toBe(10_000);
  });

  it('keeps the same number of buckets per address for every window, and still counts the whole window', () => {
    // 600 s in 60 buckets of 10 s.
    const acl = new LocalWebAcl({ ratePerAddress: 10, windowSeconds: 600 });
    const t0 = 1_000_000_000_000;
    for (let i = 0; i < 10; i++) expect(acl.overRate('198.51.100.1', t0)).toBe(false);
    expect(acl.overRate('198.51.100.1', t0 + 300_000)).toBe(true);
    expect(acl.overRate('198.51.100.1', t0 + 599_000)).toBe(true);
    // The first ten have left the window (the two blocked ones still count: 2 + 8 = 10).
    for (let i = 0; i < 8; i++) expect(acl.overRate('198.51.100.1', t0 + 600_000)).toBe(false);
    expect(acl.overRate('198.51.100.1', t0 + 600_000)).toBe(true);
    expect(BUCKETS).toBe(60);
  });

  it('forgets every address idle for a whole window', () => {
    const acl = new LocalWebAcl({ ratePerAddress: 10, windowSeconds: 60 });
    const t0 = 1_000_000_000;
    for (let i = 0; i < 500; i++) acl.overRate(`10.1.${i >> 8}.${i & 255}`, t0);
    expect(acl.tracked).toBe(500);
    acl.overRate('10.2.0.1', t0 + 61_000);
    expect(acl.tracked).toBe(1);
  });

  it('refuses bodies over the edge limit except where a route may carry more', () => {
    const acl = new LocalWebAcl(DEFAULT_WAF);
    expect(acl.bodyTooLarge('POST', '/api/v1/deployments', WAF_MAX_BODY_BYTES)).toBe(false);
    expect(acl.bodyTooLarge('POST', '/api/v1/deployments', WAF_MAX_BODY_BYTES + 1)).toBe(true);
    expect(acl.bodyTooLarge('POST', '/api/v1/modules', 5 * 1024 * 1024)).toBe(false);
  });

  it('reads its settings from the environment within WAF’s bounds', () => {
    expect(wafSettingsFromEnv({})).toEqual({ ratePerAddress: 1000, windowSeconds: 60 });
    expect(wafSettingsFromEnv({ WAF_RATE_LIMIT_PER_ADDRESS: '300', WAF_RATE_WINDOW_SECONDS: '120' })).toEqual({ ratePerAddress: 300, windowSeconds: 120 });
    expect(() => wafSettingsFromEnv({ WAF_RATE_LIMIT_PER_ADDRESS: '5' })).toThrow(/at least 10/);
    expect(() => wafSettingsFromEnv({ WAF_RATE_WINDOW_SECONDS: '30' })).toThrow(/one of 60, 120, 300, 600/);
  });
});
