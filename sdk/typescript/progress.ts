/** What both clients (the kmod CLI and the web console) show of a deployment's progress. */
import type { Schemas } from './client.ts';

type Stage = Schemas['Stage'];

/** Batches done of a stage's batches, from the nodes deployed (the planner splits nodes evenly); undefined without batches. */
export function batchesDone(s: Pick<Stage, 'status' | 'nodesTotal' | 'nodesDeployed'> & { details?: unknown }): [number, number] | undefined {
  const total = (s.details as { batches?: unknown } | undefined)?.batches;
  if (typeof total !== 'number' || total <= 0) return undefined;
  if (s.status === 'Succeeded') return [total, total];
  if (!s.nodesTotal || !s.nodesDeployed) return [0, total];
  if (s.nodesDeployed >= s.nodesTotal) return [total, total];
  const size = Math.ceil(s.nodesTotal / total);
  return [Math.min(total, Math.floor(s.nodesDeployed / size)), total];
}
