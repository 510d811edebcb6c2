/**
 * Blue-Green across modules. The live colour is per environment while deployments are per module,
 * so before a deployment of module M switches traffic to the idle colour, that colour must carry
 * every other module at the version the live colour serves: then the switch changes only M
 * (issue 10's defect). Pure functions; the PlanEnvironment, DeployBatch and SwitchTraffic tasks
 * apply them.
 */
import type { Colour } from './strategy.ts';

/** A node as alignment sees it: its colour and what it runs. */
export interface ColouredNode {
  nodeId: string;
  colour?: Colour;
  modules?: Record<string, { version: string } | undefined>;
}

/** module → the version the live colour serves (`null`: it serves none). */
export type ServedVersions = Record<string, string | null>;

export interface Served {
  versions: ServedVersions;
  /** Modules whose live nodes do not agree; the version most of them run is taken. */
  mixed: string[];
}

/** What one node changes to carry the served versions: module → from/to. */
export type NodeAlignment = Record<string, { from: string | null; to: string | null }>;

/**
 * What the nodes of `colour` serve, for every module any node of the environment knows except
 * `except` (the module being deployed). Per module, the version most live nodes run (ties: a
 * version before none, then the highest version, so the answer is stable); `null` when most live
 * nodes run none.
 */
export function servedByColour(nodes: readonly ColouredNode[], colour: Colour, except: string): Served {
  const live = nodes.filter((n) => n.colour === colour);
  const modules = new Set(nodes.flatMap((n) => Object.keys(n.modules ?? {})).filter((m) => m !== except));
  const versions: ServedVersions = {};
  const mixed: string[] = [];
  for (const m of [...modules].sort()) {
    if (live.length === 0) continue;
    const counts = new Map<string | null, number>();
    for (const n of live) {
      const v = n.modules?.[m]?.version ?? null;
      counts.set(v, (counts.get(v) ?? 0) + 1);
    }
    if (counts.size > 1) mixed.push(m);
    const [winner] = [...counts.entries()].sort((a, b) => b[1] - a[1] || tieBreak(a[0], b[0]));
    versions[m] = winner[0];
  }
  return { versions, mixed };
}

const tieBreak = (a: string | null, b: string | null) => (a === null ? 1 : b === null ? -1 : b.localeCompare(a, 'en', { numeric: true }));

/** The changes that make `node` carry `versions` (empty when it already does). */
export function alignmentFor(node: ColouredNode, versions: ServedVersions): NodeAlignment {
  const out: NodeAlignment = {};
  for (const [m, to] of Object.entries(versions)) {
    const from = node.modules?.[m]?.version ?? null;
    if (from !== to) out[m] = { from, to };
  }
  return out;
}

/**
 * Nodes of `colour` that do not carry what `versions` says, with what differs: empty when the
 * colour may take the traffic without changing any module but the deployed one.
 */
export function misaligned(nodes: readonly ColouredNode[], colour: Colour, versions: ServedVersions): Record<string, NodeAlignment> {
  const out: Record<string, NodeAlignment> = {};
  for (const n of nodes.filter((x) => x.colour === colour)) {
    const a = alignmentFor(n, versions);
    if (Object.keys(a).length) out[n.nodeId] = a;
  }
  return out;
}

/**
 * The instant switch-back window (Argo's scaleDownDelaySeconds; docs/adr/0020-traffic-routers.md):
 * for this long after a switch the old colour is promised to stand as it served, so a rollback
 * moves traffic back to it at once. Nothing tears the old colour down afterwards; after the window
 * the promise is simply no longer made (the next Blue-Green deployment may have redeployed it).
 */
export function switchBackUntil(switchedAt: Date, windowSeconds: number): string {
  return new Date(switchedAt.getTime() + Math.max(0, windowSeconds) * 1000).toISOString();
}

/** The rollback's note on moving traffic back: within the window, or after it (no longer guaranteed). */
export function switchBackNote(colour: string, until: string | undefined, now: Date): string {
  if (!until) return `traffic switched back to ${colour}`;
  if (now.getTime() <= Date.parse(until)) return `traffic switched back to ${colour} (instant switch-back, window open until ${until})`;
  return `traffic switched back to ${colour} after its switch-back window closed at ${until}: the old colour was no longer guaranteed to serve as before the switch`;
}
