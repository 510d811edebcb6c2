/**
 * Desired state and convergence, pure parts (docs/adr/0011-pull-convergence.md).
 *
 * Each environment records, per module, the version it should run: what its last successful
 * deployment or rollback left. An enrolled node converges to it by itself, through the answer to
 * its heartbeat: the orchestrator compares what the node reports with the desired state and
 * answers with the commands that close the gap. A deployment holding the module's lock in the
 * environment decides for itself, so no convergence is issued then; and the desired state changes
 * only when a stage completes, so a node never converges to a version not yet promoted to its
 * environment.
 */
import type { Colour } from './strategy.ts';

/** A version an environment should run; `version: null` means the module should not be loaded. */
export interface DesiredVersion {
  version: string | null;
  /** The deployment that left it; null when inferred from what the nodes ran before any recorded deployment. */
  deploymentId: string | null;
  /** Blue-green: the colour that serves it. Nodes of the other colour are the standby and keep what they run. */
  colour?: Colour;
}

/** A desired version and, nested, the ones it replaced (newest first, at most DESIRED_HISTORY_DEPTH). */
export interface DesiredHistory extends DesiredVersion {
  previous?: DesiredHistory;
}

export interface DesiredModule extends DesiredVersion {
  /** Counts every change of this module's entry: convergence commands are named after it. */
  revision: number;
  setAt: string;
  setBy: 'deployment' | 'rollback';
  /** Set by a rollback: the deployment whose rollback restored this entry. */
  rolledBack?: string;
  /** What this entry replaced; a rollback of `deploymentId` puts it back. */
  previous?: DesiredHistory;
}

export type DesiredModules = Record<string, DesiredModule>;

/** How many replaced entries an entry remembers (rollbacks of older deployments restore from them). */
export const DESIRED_HISTORY_DEPTH = 5;

function history(entry: DesiredHistory | undefined, depth: number): DesiredHistory | undefined {
  if (!entry || depth <= 0) return undefined;
  const previous = history(entry.previous, depth - 1);
  return {
    version: entry.version,
    deploymentId: entry.deploymentId,
    ...(entry.colour ? { colour: entry.colour } : {}),
    ...(previous ? { previous } : {}),
  };
}

/**
 * The entry a deployment leaves when its stage in the environment succeeds. What it replaces is
 * the current entry, or, when none was recorded yet, what the nodes ran before (`inferred`, if
 * they all ran the same), so that rolling this deployment back has a state to return to.
 */
export function promote(current: DesiredModule | undefined, next: DesiredVersion, inferred: DesiredVersion | undefined, at: string): DesiredModule {
  const previous = history(current ?? inferred, DESIRED_HISTORY_DEPTH);
  return {
    version: next.version,
    deploymentId: next.deploymentId,
    ...(next.colour ? { colour: next.colour } : {}),
    revision: (current?.revision ?? 0) + 1,
    setAt: at,
    setBy: 'deployment',
    ...(previous ? { previous } : {}),
  };
}

/**
 * The entry after `deploymentId` is rolled back: what it replaced; `null` to remove the entry (it
 * replaced nothing known); `undefined` when the entry is not that deployment's (it never set it,
 * a later deployment replaced it, or the rollback already restored it), so nothing changes.
 */
export function restore(current: DesiredModule | undefined, deploymentId: string, at: string): DesiredModule | null | undefined {
  if (!current || current.deploymentId !== deploymentId) return undefined;
  const back = current.previous;
  if (!back) return null;
  return {
    version: back.version,
    deploymentId: back.deploymentId,
    ...(back.colour ? { colour: back.colour } : {}),
    revision: current.revision + 1,
    setAt: at,
    setBy: 'rollback',
    rolledBack: deploymentId,
    ...(back.previous ? { previous: back.previous } : {}),
  };
}

/** The one version all of these nodes ran (null: none of them had the module), or undefined if they differed. */
export function uniformVersion(versions: readonly (string | null)[]): { version: string | null } | undefined {
  if (versions.length === 0) return undefined;
  return versions.every((v) => v === versions[0]) ? { version: versions[0] } : undefined;
}

/**
 * The deployment id of the commands that converge a node to this entry: the same for every retry
 * (the agent treats a repeated id as a replay), new for every change of the entry.
 */
export const convergeCommandId = (entry: Pick<DesiredModule, 'deploymentId' | 'revision'>) => `converge:${entry.deploymentId ?? 'inferred'}:r${entry.revision}`;

/** One module on one node that differs from the desired state. */
export interface ConvergenceStep {
  module: string;
  from: string | null;
  to: string | null;
  commandId: string;
  desired: DesiredModule;
  /** The deployment holding the module's lock in the environment: it decides, no command is issued. */
  waitingFor?: string;
}

export interface NodeModules {
  colour?: Colour;
  /** What the node reports it runs. */
  reported: Record<string, { version: string }>;
}

/** Whether an entry applies to a node: in blue-green environments, only to nodes of the colour that serves it. */
const appliesTo = (entry: DesiredModule, node: NodeModules) => !entry.colour || node.colour === entry.colour;

/**
 * What differs between the desired state and what a node runs, module by module. A module whose
 * lock a deployment holds is listed with `waitingFor`: the deployment decides, not convergence.
 */
export function convergenceSteps(desired: DesiredModules, node: NodeModules, lockHolder: (module: string) => string | undefined): ConvergenceStep[] {
  const steps: ConvergenceStep[] = [];
  for (const [module, entry] of Object.entries(desired).sort(([a], [b]) => a.localeCompare(b))) {
    if (!appliesTo(entry, node)) continue;
    const from = node.reported[module]?.version ?? null;
    if (from === entry.version) continue;
    const waitingFor = lockHolder(module);
    steps.push({ module, from, to: entry.version, commandId: convergeCommandId(entry), desired: entry, ...(waitingFor ? { waitingFor } : {}) });
  }
  return steps;
}

/** A convergence in progress, kept on the node record (`convergence.<module>`): dedupes its audit events. */
export interface TrackedConvergence {
  commandId: string;
  from: string | null;
  to: string | null;
  startedAt: string;
  lastError?: { code: string; message: string; at: string };
}

/** A convergence command that failed on the agent, as its next heartbeat reports it. */
export interface ConvergenceFailure {
  module: string;
  deploymentId: string;
  code: string;
  message: string;
}

export interface ConvergenceBookkeeping {
  /** Commands to answer the heartbeat with (every step no deployment is deciding). */
  issue: ConvergenceStep[];
  /** Steps issued for the first time for their desired entry (audited `node.convergence.started`). */
  start: ConvergenceStep[];
  /** Tracked convergences the node has completed (audited `node.converged`). */
  converged: { module: string; tracked: TrackedConvergence; version: string | null }[];
  /** Tracked convergences no longer wanted: the entry is gone or no longer applies (audited `node.convergence.cancelled`). */
  cancelled: { module: string; tracked: TrackedConvergence }[];
  /** Failures the agent reported for the command now tracked, not recorded yet (audited `node.convergence.failed`). */
  failed: { module: string; tracked: TrackedConvergence; failure: ConvergenceFailure }[];
}

/** What a heartbeat changes in a node's convergence bookkeeping, given what it reports. */
export function convergenceBookkeeping(
  tracked: Record<string, TrackedConvergence>,
  steps: readonly ConvergenceStep[],
  desired: DesiredModules,
  node: NodeModules,
  failures: readonly ConvergenceFailure[],
): ConvergenceBookkeeping {
  const byModule = new Map(steps.map((s) => [s.module, s]));
  const issue = steps.filter((s) => !s.waitingFor);
  const start = issue.filter((s) => tracked[s.module]?.commandId !== s.commandId);
  const converged: ConvergenceBookkeeping['converged'] = [];
  const cancelled: ConvergenceBookkeeping['cancelled'] = [];
  for (const [module, t] of Object.entries(tracked)) {
    if (byModule.has(module)) continue;
    const entry = desired[module];
    if (entry && appliesTo(entry, node)) converged.push({ module, tracked: t, version: entry.version });
    else cancelled.push({ module, tracked: t });
  }
  const failed: ConvergenceBookkeeping['failed'] = [];
  for (const f of failures) {
    const t = tracked[f.module];
    const step = byModule.get(f.module);
    if (!t || t.commandId !== f.deploymentId || step?.commandId !== f.deploymentId) continue;
    if (t.lastError?.code === f.code && t.lastError.message === f.message) continue;
    failed.push({ module: f.module, tracked: t, failure: f });
  }
  return { issue, start, converged, cancelled, failed };
}

export interface ConvergenceView {
  state: 'Converged' | 'Converging';
  pending: {
    module: string;
    from: string | null;
    to: string | null;
    desiredBy: string | null;
    since?: string;
    waitingFor?: string;
    lastError?: TrackedConvergence['lastError'];
  }[];
}

/** A node's convergence as the cluster view shows it. */
export function convergenceView(steps: readonly ConvergenceStep[], tracked: Record<string, TrackedConvergence>): ConvergenceView {
  const pending = steps.map((s) => {
    const t = tracked[s.module]?.commandId === s.commandId ? tracked[s.module] : undefined;
    return {
      module: s.module,
      from: s.from,
      to: s.to,
      desiredBy: s.desired.deploymentId,
      ...(t ? { since: t.startedAt } : {}),
      ...(s.waitingFor ? { waitingFor: s.waitingFor } : {}),
      ...(t?.lastError ? { lastError: t.lastError } : {}),
    };
  });
  return { state: pending.length ? 'Converging' : 'Converged', pending };
}
