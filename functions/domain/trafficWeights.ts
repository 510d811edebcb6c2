/**
 * Traffic-weighted canary (docs/adr/0020-traffic-routers.md): with a router that moves requests by
 * weight, each canary wave is a share of traffic, and the share the canary nodes really served is
 * measured from the router's counts. Pure functions; CanaryGate applies them.
 */

/**
 * The traffic weight of each wave the canary plan made: the cumulative percent that produced it
 * (planWaves in domain/canary.ts drops waves a small fleet cannot tell apart; this follows it).
 */
export function wavePercents(total: number, cumulativePercents: number[]): number[] {
  const percents = [...cumulativePercents];
  if (percents.at(-1) !== 100) percents.push(100);
  const out: number[] = [];
  let done = 0;
  for (const p of percents) {
    const upTo = Math.min(total, Math.max(done + 1, Math.ceil((total * p) / 100)));
    // A wave that reaches every node takes all the traffic, whatever percent made it.
    if (upTo > done) out.push(upTo === total ? 100 : p);
    done = upTo;
  }
  return out;
}

export interface ServedCount {
  /** Requests the router answered from every node. */
  total: number;
  /** Of which from the canary nodes. */
  canary: number;
}

/** Sum a router's per-node counts into all nodes and the canary ones. */
export function countServed(perNode: Record<string, number>, canaryNodes: ReadonlySet<string>): ServedCount {
  let total = 0;
  let canary = 0;
  for (const [id, n] of Object.entries(perNode)) {
    total += n;
    if (canaryNodes.has(id)) canary += n;
  }
  return { total, canary };
}

export interface MeasuredShare {
  weightPercent: number;
  requests: number;
  canaryRequests: number;
  /** The canary nodes' share of the requests served in the window, in percent (null: no requests). */
  measuredPercent: number | null;
}

/** The share the canary served between two readings of the router's counts. */
export function measuredShare(weightPercent: number, start: ServedCount, end: ServedCount): MeasuredShare {
  const requests = Math.max(0, end.total - start.total);
  const canaryRequests = Math.max(0, end.canary - start.canary);
  return { weightPercent, requests, canaryRequests, measuredPercent: requests ? Math.round((canaryRequests / requests) * 1000) / 10 : null };
}
