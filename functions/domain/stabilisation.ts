/**
 * Adaptive stabilisation (docs/adr/0023-adaptive-stabilisation.md): before a canary wave is
 * judged, its nodes' metrics are polled until they stop moving — the last `polls` batch averages
 * each within the tolerance of their mean (CPU and memory ±10 %, latency ±15 % by default) — and
 * at least `minSeconds` have passed. After `maxSeconds` the wave is judged as it is, marked not
 * stable: the judge (not the wait) decides whether moving metrics are a regression.
 */
export interface StabilisationSettings {
  minSeconds: number;
  maxSeconds: number;
  pollSeconds: number;
  /** Consecutive polls that must agree. */
  polls: number;
  /** Largest deviation of a poll from the polls' mean, in percent of the mean. */
  tolerancePercent: { cpuPercent: number; memoryPercent: number; latencyMs: number };
}

export type StabilityMetric = keyof StabilisationSettings['tolerancePercent'];
export type Poll = Record<StabilityMetric, number>;

/** Carried through the state machine between polls: small (the last few polls only). */
export interface StabilisationState {
  startedAt: string;
  pollCount: number;
  recent: Poll[];
}

export type StabilisationDecision =
  | { action: 'wait'; waitSeconds: number; state: StabilisationState; unstable: StabilityMetric[] }
  | { action: 'judge'; stable: boolean; waitedSeconds: number; pollCount: number; unstable: StabilityMetric[] };

const METRICS: StabilityMetric[] = ['cpuPercent', 'memoryPercent', 'latencyMs'];

/** The metrics whose last `polls` values are not all within tolerance of their mean (all of them before there are enough polls). */
export function unstableMetrics(recent: readonly Poll[], s: StabilisationSettings): StabilityMetric[] {
  if (recent.length < s.polls) return [...METRICS];
  const last = recent.slice(-s.polls);
  return METRICS.filter((m) => {
    const values = last.map((p) => p[m]);
    const mean = values.reduce((a, b) => a + b, 0) / values.length;
    const allowed = (Math.abs(mean) * s.tolerancePercent[m]) / 100;
    return values.some((v) => Math.abs(v - mean) > allowed);
  });
}

/**
 * One poll's verdict: judge once the metrics are stable and the minimum wait has passed, or once
 * the maximum wait has passed; otherwise wait one poll interval (never beyond the maximum).
 */
export function stabilise(previous: StabilisationState | undefined, poll: Poll, now: Date, s: StabilisationSettings): StabilisationDecision {
  const state: StabilisationState = {
    startedAt: previous?.startedAt ?? now.toISOString(),
    pollCount: (previous?.pollCount ?? 0) + 1,
    recent: [...(previous?.recent ?? []), poll].slice(-Math.max(1, s.polls)),
  };
  const waited = Math.max(0, (now.getTime() - new Date(state.startedAt).getTime()) / 1000);
  const unstable = unstableMetrics(state.recent, s);
  if ((unstable.length === 0 && waited >= s.minSeconds) || waited >= s.maxSeconds)
    return { action: 'judge', stable: unstable.length === 0, waitedSeconds: Math.round(waited), pollCount: state.pollCount, unstable };
  const untilMin = s.minSeconds - waited;
  const untilMax = s.maxSeconds - waited;
  const next = unstable.length === 0 ? Math.min(s.pollSeconds, untilMin) : s.pollSeconds;
  return { action: 'wait', waitSeconds: Math.max(1, Math.ceil(Math.min(next, untilMax))), state, unstable };
}
