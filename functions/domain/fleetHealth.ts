/**
 * Nodes per environment by their last reported health: the `kmod_nodes_by_health` gauge of
 * `/metrics` and the `NodesByHealth` CloudWatch metric the scheduled PublishNodeHealth function
 * publishes (docs/adr/0030-telemetry.md). One count, so the two cannot disagree.
 */
import type { Environment } from './environments.ts';

/** What agents report (functions/agent/protocol.ts HealthReport.status). */
export const NODE_HEALTH_STATUSES = ['healthy', 'unhealthy'] as const;
/** A node that has not reported yet. */
export const UNKNOWN_HEALTH = 'Unknown';

export interface FleetNodes {
  environment: Environment;
  nodes: readonly { lastHealth?: { status?: string } }[];
}

export interface HealthCount {
  environment: Environment;
  status: string;
  value: number;
}

/**
 * The count of each environment's nodes per health status, in the order first seen. With `zeros`,
 * every known status (and Unknown) of every environment is there, 0 when no node has it: a
 * CloudWatch metric that stops being published reads as missing data, not as 0.
 */
export function nodesByHealth(fleet: readonly FleetNodes[], opts: { zeros?: boolean } = {}): HealthCount[] {
  return fleet.flatMap(({ environment, nodes }) => {
    const counts = new Map<string, number>(opts.zeros ? [...NODE_HEALTH_STATUSES, UNKNOWN_HEALTH].map((s) => [s, 0]) : []);
    for (const n of nodes) {
      const status = n.lastHealth?.status ?? UNKNOWN_HEALTH;
      counts.set(status, (counts.get(status) ?? 0) + 1);
    }
    return [...counts].map(([status, value]) => ({ environment, status, value }));
  });
}
