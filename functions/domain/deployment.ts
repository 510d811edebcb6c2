import { environmentsUpTo, ENVIRONMENT_PROFILES, type Environment, type Strategy } from './environments.ts';
import type { UnreachablePolicy } from './membership.ts';
import type { Cancellation, Hold, Promotion } from './steering.ts';

export const DEPLOYMENT_STATUSES = ['Pending', 'Running', 'WaitingForApproval', 'Succeeded', 'Failed', 'RolledBack', 'Cancelled'] as const;
export type DeploymentStatus = (typeof DEPLOYMENT_STATUSES)[number];
export const TERMINAL_STATUSES: readonly DeploymentStatus[] = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'];

export const STAGE_STATUSES = ['Pending', 'Running', 'Succeeded', 'Failed', 'RolledBack', 'Skipped'] as const;
export type StageStatus = (typeof STAGE_STATUSES)[number];

export const CHECK_STAGES = ['Build', 'Test', 'SecurityScan'] as const;
export type CheckStage = (typeof CHECK_STAGES)[number];
export type StageName = CheckStage | Environment | 'Validation';

export interface StageRecord {
  name: StageName;
  kind: 'check' | 'environment' | 'validation';
  status: StageStatus;
  environment?: Environment;
  strategy?: Strategy;
  startedAt?: string;
  finishedAt?: string;
  durationMs?: number;
  message?: string;
  nodesTotal?: number;
  nodesDeployed?: number;
  nodesFailed?: number;
  nodesRolledBack?: number;
  details?: Record<string, unknown>;
}

export interface DeploymentRecord {
  executionId: string;
  moduleName: string;
  version: string;
  targetEnvironment: Environment;
  status: DeploymentStatus;
  requestedBy: string;
  /** The correlation id of the API request that started it: every task's input and log lines carry it (docs/adr/0030-telemetry.md). */
  correlationId?: string;
  createdAt: string;
  updatedAt: string;
  finishedAt?: string;
  metadata?: Record<string, string>;
  executionArn?: string;
  stageOrder: StageName[];
  stages: Record<string, StageRecord>;
  failure?: { stage?: StageName; code: string; message: string };
  /** What PlanEnvironment does with enrolled nodes that stopped heartbeating (absent: fail). */
  unreachableNodes?: UnreachablePolicy;
  /** Rollback on demand, once requested. */
  rollback?: {
    status: 'Running' | 'Succeeded' | 'Failed';
    requestedBy: string;
    requestedAt: string;
    reason?: string;
    finishedAt?: string;
    message?: string;
    /** The rollback execution's name: a dead execution's event settles only its own attempt. */
    executionName?: string;
    /** Started by a cancel: the deployment stays Cancelled when it completes. */
    cancel?: true;
  };
  /** A cancel request (docs/adr/0019-steering-running-deployments.md), recorded before the execution is stopped. */
  cancellation?: Cancellation;
  /** A running canary held before its next wave. */
  hold?: Hold;
  /** The canary's remaining bake cut short. */
  promotion?: Promotion;
}

/** The stages a deployment to `target` goes through, all Pending. */
export function initialStages(target: Environment): { stageOrder: StageName[]; stages: Record<string, StageRecord> } {
  const stages: StageRecord[] = [
    ...CHECK_STAGES.map((name): StageRecord => ({ name, kind: 'check', status: 'Pending' })),
    ...environmentsUpTo(target).map(
      (env): StageRecord => ({ name: env, kind: 'environment', status: 'Pending', environment: env, strategy: ENVIRONMENT_PROFILES[env].strategy }),
    ),
    { name: 'Validation', kind: 'validation', status: 'Pending' },
  ];
  return { stageOrder: stages.map((s) => s.name), stages: Object.fromEntries(stages.map((s) => [s.name, s])) };
}

/**
 * The status a failed deployment ends in: `RolledBack` when an environment's automatic rollback
 * put nodes back, `Failed` when it failed before any node changed or could not be rolled back.
 */
export function failedOutcome(stages: StageRecord[]): Extract<DeploymentStatus, 'Failed' | 'RolledBack'> {
  const anyRolledBack = stages.some((s) => s.kind === 'environment' && s.status === 'RolledBack');
  const anyFailedEnv = stages.some((s) => s.kind === 'environment' && s.status === 'Failed');
  return anyRolledBack && !anyFailedEnv ? 'RolledBack' : 'Failed';
}

export function orderedStages(d: Pick<DeploymentRecord, 'stageOrder' | 'stages'>): StageRecord[] {
  return d.stageOrder.map((n) => d.stages[n]).filter((s): s is StageRecord => s !== undefined);
}

/** Time-sortable, URL-safe, unique execution id (also the Step Functions execution name). */
export function newExecutionId(now: Date, random: string): string {
  return `dep-${now.getTime().toString(36).padStart(9, '0')}-${random}`;
}
