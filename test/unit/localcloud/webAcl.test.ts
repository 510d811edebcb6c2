import { describe, expect, it } from 'vitest';
import { DEFAULT_WAF, WAF_MAX_BODY_BYTES, wafSettingsFromEnv } from '../../../functions/webAcl.ts';
import { LocalWebAcl } from '../../../localcloud/webAcl.ts';

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
