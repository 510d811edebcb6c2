/**
 * The web ACL of functions/webAcl.ts, locally: the rate-based rule per source address and the
 * body-size rule, checked by the local API gateway before routing, authorizer and Lambda, as AWS WAF
 * is in front of API Gateway. The managed rule sets (common, known bad inputs) run only on AWS.
 *
 * The rate is counted over a sliding window of one-second buckets. AWS WAF counts the same
 * requests but evaluates them every few seconds, so there it starts blocking somewhat later.
 */
import { WAF_LARGE_BODY_ROUTES, WAF_MAX_BODY_BYTES, type WafSettings } from '../functions/webAcl.ts';

interface Counter {
  /** The second of the newest bucket. */
  second: number;
  buckets: Uint32Array;
  total: number;
}

export class LocalWebAcl {
  private readonly counters = new Map<string, Counter>();
  private sweptAt = 0;

  constructor(readonly settings: WafSettings) {}

  /** Counts the request (blocked ones too, as WAF does); true when the address is over its rate. */
  overRate(address: string, now = Date.now()): boolean {
    const window = this.settings.windowSeconds;
    const second = Math.floor(now / 1000);
    let c = this.counters.get(address);
    if (!c) {
      c = { second, buckets: new Uint32Array(window), total: 0 };
      this.counters.set(address, c);
    }
    // Empty the buckets that fell out of the window since the last request.
    for (let s = c.second + 1; s <= Math.min(second, c.second + window); s++) {
      c.total -= c.buckets[s % window];
      c.buckets[s % window] = 0;
    }
    c.second = Math.max(c.second, second);
    c.buckets[second % window]++;
    c.total++;
    this.sweep(second);
    return c.total > this.settings.ratePerAddress;
  }

  /** Whether a body of `bytes` is over the edge limit for this route. */
  bodyTooLarge(method: string, routePath: string, bytes: number): boolean {
    const large = WAF_LARGE_BODY_ROUTES.some((r) => r.method === method && r.path === routePath);
    return !large && bytes > WAF_MAX_BODY_BYTES;
  }

  /** Forgets addresses idle for a whole window, at most once a window. */
  private sweep(second: number): void {
    if (second - this.sweptAt < this.settings.windowSeconds) return;
    this.sweptAt = second;
    for (const [address, c] of this.counters) if (second - c.second >= this.settings.windowSeconds) this.counters.delete(address);
  }
}
