/**
 * Degraded environments, pure parts (issue 15, defect 9).
 *
 * A rollback that cannot finish (a node does not answer) leaves an environment where some nodes
 * run the new version and the rest the old one. The deployment ends, its locks are released, but
 * the environment stays marked `Degraded` for that module (in its Clusters item, under
 * `degradedModules`) until it is consistent again: a rollback on demand of the same deployment
 * that reaches every stuck node, or the stuck nodes' own convergence to the desired state. While
 * marked, no new deployment of the module may touch the environment, and no rollback of another
 * deployment either: only the repair.
 */

/** One node a rollback could not bring back: what it should run again. */
export interface StuckNode {
  /** The version the node ran before the deployment (null: the module was not loaded). */
  previousVersion: string | null;
  /** Why its rollback failed, as the agent call reported it. */
  message: string;
}

/** The mark on one module in one environment (`degradedModules.<module>` of the Clusters item). */
export interface DegradedMark {
  /** The deployment whose rollback could not finish: only its rollback on demand may touch the environment. */
  deploymentId: string;
  /** The version that deployment brought (what the stuck nodes still run). */
  version: string;
  /** The nodes still on `version`, by id. */
  stuckNodes: Record<string, StuckNode>;
  since: string;
  /** When a later attempt updated the list of stuck nodes. */
  updatedAt?: string;
}

export type DegradedModules = Record<string, DegradedMark>;

/** The same stuck nodes (a retried rollback that changed nothing writes, and audits, nothing). */
export function sameStuckNodes(a: DegradedMark | undefined, b: Record<string, StuckNode>): boolean {
  if (!a) return false;
  const ids = Object.keys(a.stuckNodes).sort();
  const other = Object.keys(b).sort();
  return ids.length === other.length && ids.every((id, i) => id === other[i]);
}

/** What a node runs now, as far as the orchestrator knows (undefined: the node is gone or decommissioned). */
export type RunningVersion = string | null | undefined;

/**
 * Whether a mark can be cleared: every stuck node runs what the environment should run on it (the
 * desired version when one applies to the node, otherwise the version it ran before), or is gone.
 * `desiredFor` answers undefined when no desired entry applies to the node (none recorded, or a
 * blue-green entry of the other colour).
 */
export function isRepaired(
  mark: DegradedMark,
  running: (nodeId: string) => RunningVersion,
  desiredFor: (nodeId: string) => { version: string | null } | undefined,
): boolean {
  return Object.entries(mark.stuckNodes).every(([nodeId, stuck]) => {
    const now = running(nodeId);
    if (now === undefined) return true;
    const desired = desiredFor(nodeId);
    return now === (desired ? desired.version : stuck.previousVersion);
  });
}

/** The 409 message of a request refused because the environment is degraded: what happened and how to repair it. */
export function degradedMessage(module: string, environment: string, mark: DegradedMark): string {
  const nodes = Object.keys(mark.stuckNodes).sort();
  return [
    `${module} in ${environment} is Degraded since ${mark.since}: the rollback of ${mark.deploymentId} could not finish on ${nodes.join(', ')},`,
    `which still run ${module}@${mark.version} while the other nodes were rolled back.`,
    `Repair it first: bring the node(s) back and POST /api/v1/deployments/${mark.deploymentId}/rollback,`,
    'or let enrolled nodes converge to the desired state; the mark clears when every node runs it.',
  ].join(' ');
}
