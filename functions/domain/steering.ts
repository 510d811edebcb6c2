/**
 * Steering a running deployment (issue 11, docs/adr/0019-steering-running-deployments.md): cancel,
 * pause / resume of a canary, promote. This is the plain part: which request applies to a
 * deployment in which state (and the 409 reason when none does), and what the canary's bake gate
 * does next given the hold and promotion recorded on the deployment.
 */
import { orderedStages, TERMINAL_STATUSES, type DeploymentRecord, type StageRecord } from './deployment.ts';

export const HOLD_DEADLINE_ACTIONS = ['resume', 'rollback'] as const;
export type HoldDeadlineAction = (typeof HOLD_DEADLINE_ACTIONS)[number];
export const PROMOTION_TARGETS = ['nextWave', 'full'] as const;
export type PromotionTarget = (typeof PROMOTION_TARGETS)[number];

/** A cancel request, recorded on the deployment before its execution is stopped. */
export interface Cancellation {
  requestedBy: string;
  requestedAt: string;
  reason?: string;
}

/** A canary held before its next wave. */
export interface Hold {
  requestedBy: string;
  requestedAt: string;
  reason?: string;
  /** When the hold ends by itself, and what happens then. */
  deadline?: string;
  onDeadline: HoldDeadlineAction;
}

/** Skip the remaining bake: of the wave baking now (or the next one to bake), or of every wave left. */
export interface Promotion {
  requestedBy: string;
  requestedAt: string;
  to: PromotionTarget;
  /** The wave whose bake a `nextWave` promotion cut short (it then applies to no other wave). */
  consumedByWave?: number;
}

export interface Steerable {
  status: DeploymentRecord['status'];
  stageOrder: DeploymentRecord['stageOrder'];
  stages: DeploymentRecord['stages'];
  executionId: string;
  cancellation?: Cancellation;
  hold?: Hold;
  promotion?: Promotion;
}

/** Why a request does not apply (answered as 409 with this code and message). */
export interface NotApplicable {
  code: string;
  message: string;
}

/** The canary stage that is running now, if any. */
export function runningCanaryStage(d: Pick<Steerable, 'stageOrder' | 'stages'>): StageRecord | undefined {
  return orderedStages(d).find((s) => s.kind === 'environment' && s.strategy === 'Canary' && s.status === 'Running');
}

/**
 * A cancel applies to a deployment that has not finished. One whose cancel was already recorded
 * but has not settled yet is `resume`d: the request is driven again (stopping an execution twice
 * and starting the rollback under its condition are both harmless), so a retry finishes a cancel
 * whose first attempt was interrupted.
 */
export function cancelApplies(d: Steerable): { ok: true; repeat: boolean } | ({ ok: false } & NotApplicable) {
  if (TERMINAL_STATUSES.includes(d.status)) {
    return d.status === 'Cancelled'
      ? { ok: false, code: 'AlreadyCancelled', message: `${d.executionId} is already Cancelled` }
      : { ok: false, code: 'DeploymentFinished', message: `${d.executionId} already ended ${d.status}; roll it back instead (POST …/rollback)` };
  }
  return { ok: true, repeat: d.cancellation !== undefined };
}

/** Pause, resume and promote apply to a running canary only, and never to one being cancelled. */
function canaryRunning(d: Steerable): NotApplicable | undefined {
  if (TERMINAL_STATUSES.includes(d.status)) return { code: 'DeploymentFinished', message: `${d.executionId} already ended ${d.status}` };
  if (d.cancellation) return { code: 'CancelRequested', message: `${d.executionId} is being cancelled (requested by ${d.cancellation.requestedBy})` };
  if (!runningCanaryStage(d)) {
    const canary = orderedStages(d).find((s) => s.strategy === 'Canary');
    return {
      code: 'NotInCanary',
      message: canary
        ? `${d.executionId} is ${d.status} and its ${canary.name} canary is ${canary.status}; only a running canary can be paused, resumed or promoted`
        : `${d.executionId} deploys to no environment with a Canary strategy`,
    };
  }
  return undefined;
}

export function pauseApplies(d: Steerable): NotApplicable | undefined {
  const notRunning = canaryRunning(d);
  if (notRunning) return notRunning;
  if (d.hold) return { code: 'AlreadyPaused', message: `${d.executionId} is already paused (by ${d.hold.requestedBy} at ${d.hold.requestedAt})` };
  return undefined;
}

export function resumeApplies(d: Steerable): NotApplicable | undefined {
  if (!d.hold) return { code: 'NotPaused', message: `${d.executionId} is not paused` };
  return canaryRunning(d);
}

export function promoteApplies(d: Steerable, to: PromotionTarget): NotApplicable | undefined {
  const notRunning = canaryRunning(d);
  if (notRunning) return notRunning;
  if (d.hold) return { code: 'Paused', message: `${d.executionId} is paused; resume it first` };
  const p = d.promotion;
  if (p?.to === 'full') return { code: 'AlreadyPromoted', message: `${d.executionId} is already promoted to 100 % (by ${p.requestedBy})` };
  if (p && p.consumedByWave === undefined && to === 'nextWave')
    return { code: 'PromotionPending', message: `a promotion of ${d.executionId} by ${p.requestedBy} has not been acted on yet` };
  return undefined;
}

/** What the canary's bake gate does next. */
export type GateDecision =
  /** Keep baking (or holding): wait this many seconds, then ask again. */
  | { action: 'wait'; waitSeconds: number; reason: 'bake' | 'hold' | 'traffic' }
  /** The bake is over (or cut short by a promotion): judge the wave. */
  | { action: 'judge'; promoted: boolean }
  /** Promoted to 100 %: no bake, no judgement, straight to the next wave. */
  | { action: 'skip' }
  /** The hold's deadline passed and it was configured to resume: lift it, then decide again. */
  | { action: 'lift' }
  /** The hold's deadline passed and it was configured to roll back. */
  | { action: 'abort'; code: string; message: string };

export interface GateInput {
  now: Date;
  wave: number;
  bakeStartedAt: Date;
  bakeSeconds: number;
  /** Longest single wait between two looks at the deployment (CANARY_POLL_SECONDS). */
  pollSeconds: number;
  hold?: Hold;
  promotion?: Promotion;
  /**
   * With a weighted router: the requests it counted since the wave began, and the least a wave is
   * judged on. Short of it, the bake goes on (in polls) until `maxBakeSeconds` from its start.
   */
  traffic?: { requests: number; minRequests: number; maxBakeSeconds: number };
}

const secondsUntil = (t: number, now: Date) => Math.max(1, Math.ceil((t - now.getTime()) / 1000));

/**
 * The bake gate after each wave: a hold keeps the wave waiting (before its judgement, so before
 * the next wave) until it is lifted or its deadline passes; a promotion cuts the bake short; the
 * bake otherwise runs its `bakeSeconds` from `bakeStartedAt`, in waits of at most `pollSeconds`.
 */
export function gateDecision(g: GateInput): GateDecision {
  if (g.hold) {
    const deadline = g.hold.deadline ? Date.parse(g.hold.deadline) : undefined;
    if (deadline !== undefined && g.now.getTime() >= deadline) {
      return g.hold.onDeadline === 'resume'
        ? { action: 'lift' }
        : { action: 'abort', code: 'CanaryHoldExpired', message: `the canary was paused by ${g.hold.requestedBy} past its deadline ${g.hold.deadline}` };
    }
    const wait = deadline === undefined ? g.pollSeconds : Math.min(g.pollSeconds, secondsUntil(deadline, g.now));
    return { action: 'wait', waitSeconds: Math.max(1, Math.ceil(wait)), reason: 'hold' };
  }
  if (g.promotion?.to === 'full') return { action: 'skip' };
  if (g.promotion && (g.promotion.consumedByWave === undefined || g.promotion.consumedByWave === g.wave)) return { action: 'judge', promoted: true };
  const end = g.bakeStartedAt.getTime() + g.bakeSeconds * 1000;
  if (g.now.getTime() >= end) {
    const t = g.traffic;
    const longest = t ? g.bakeStartedAt.getTime() + Math.max(g.bakeSeconds, t.maxBakeSeconds) * 1000 : end;
    // Too few requests to judge: bake on, but never past the longest bake (then judge what there is).
    if (t && t.requests < t.minRequests && g.now.getTime() < longest) {
      return { action: 'wait', waitSeconds: Math.min(Math.max(1, Math.ceil(g.pollSeconds)), secondsUntil(longest, g.now)), reason: 'traffic' };
    }
    return { action: 'judge', promoted: false };
  }
  return { action: 'wait', waitSeconds: Math.min(Math.max(1, Math.ceil(g.pollSeconds)), secondsUntil(end, g.now)), reason: 'bake' };
}
