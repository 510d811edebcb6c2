/**
 * The web ACL of functions/webAcl.ts, locally: the rate-based rule per source address and the
 * body-size rule, checked by the local API gateway before routing, authorizer and Lambda, as AWS WAF
 * is in front of API Gateway. The managed rule sets (common, known bad inputs) run only on AWS.
 *
 * The rate is counted over a sliding window of BUCKETS buckets per address (one second each for a
 * 60 s window, ten for 600 s): AWS WAF counts the same requests but evaluates them every few
 * seconds, so there it starts blocking somewhat later. Its memory is bounded: a counter is the same
 * size whatever the window, and at most MAX_TRACKED_ADDRESSES addresses are tracked at once, the
 * least recently seen forgotten first. Before, each address held one 4-byte bucket per second of
 * the window (2.4 KB at 600 s) and any number of addresses were kept for a whole window: 100,000
 * addresses (a loopback /8 or an IPv6 prefix offers millions) grew the local cloud by 100-230 MB.
 */
import { WAF_LARGE_BODY_ROUTES, WAF_MAX_BODY_BYTES, type WafSettings } from '../functions/webAcl.ts';

/** Buckets per address, whatever the window (each window / BUCKETS seconds wide). */
export const BUCKETS = 60;
/**
 * Addresses tracked at once (about 1 KB each with the Map entry; AWS WAF too tracks a bounded number per
 * rate-based rule and blocks at most 10,000). Past it the least recently seen is forgotten:
 * an address that keeps sending stays tracked (and blocked), one gone quiet may be forgotten early.
 */
export const MAX_TRACKED_ADDRESSES = 10_000;

interface Counter {
  /** The newest bucket's number (time / bucket width). */
  bucket: number;
  buckets: Uint32Array;
  total: number;
}

export class LocalWebAcl {
  /** In order of last request, oldest first. */
  private readonly counters = new Map<string, Counter>();
  private sweptAt = 0;
  private readonly bucketMs: number;

  constructor(
    readonly settings: WafSettings,
    private readonly maxTracked = MAX_TRACKED_ADDRESSES,
  ) {
    this.bucketMs = (settings.windowSeconds * 1000) / BUCKETS;
  }

  /** How many addresses are tracked now. */
  get tracked(): number {
    return this.counters.size;
  }

  /** Counts the request (blocked ones too, as WAF does); true when the address is over its rate. */
  overRate(address: string, now = Date.now()): boolean {
    const bucket = Math.floor(now / this.bucketMs);
    let c = this.counters.get(address);
    if (c) this.counters.delete(address);
    else c = { bucket, buckets: new Uint32Array(BUCKETS), total: 0 };
    // Last seen last: the first entry is the one to forget when too many are tracked.
    this.counters.set(address, c);
    // Empty the buckets that fell out of the window since the last request.
    for (let b = c.bucket + 1; b <= Math.min(bucket, c.bucket + BUCKETS); b++) {
      c.total -= c.buckets[b % BUCKETS];
      c.buckets[b % BUCKETS] = 0;
    }
    c.bucket = Math.max(c.bucket, bucket);
    c.buckets[c.bucket % BUCKETS]++;
    c.total++;
    while (this.counters.size > this.maxTracked) this.counters.delete(this.counters.keys().next().value!);
    this.sweep(bucket);
    return c.total > this.settings.ratePerAddress;
  }

  /** Whether a body of `bytes` is over the edge limit for this route. */
  bodyTooLarge(method: string, routePath: string, bytes: number): boolean {
    const large = WAF_LARGE_BODY_ROUTES.some((r) => r.method === method && r.path === routePath);
    return !large && bytes > WAF_MAX_BODY_BYTES;
  }

  /** Forgets addresses idle for a whole window, at most once a window (the oldest come first: stops at the first still in it). */
  private sweep(bucket: number): void {
    if (bucket - this.sweptAt < BUCKETS) return;
    this.sweptAt = bucket;
    for (const [address, c] of this.counters) {
      if (bucket - c.bucket < BUCKETS) break;
      this.counters.delete(address);
    }
  }
}
