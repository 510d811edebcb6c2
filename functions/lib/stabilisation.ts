import { z } from 'zod';
import { averageMetrics } from '../domain/canary.ts';
import { type StabilisationDecision, type StabilisationState, stabilise } from '../domain/stabilisation.ts';
import type { MetricsReport } from '../agent/protocol.ts';
import { config } from './config.ts';

/**
 * The one stabilisation mechanism (docs/adr/0023-adaptive-stabilisation.md) shared by the canary's
 * judgement (AnalyzeCanary) and the post-batch health checks (StabiliseBatches): average the
 * polled nodes' metrics, ask domain/stabilisation.ts whether to wait or go on, and carry the small
 * state between the state machine's Wait states.
 */
export const stabilisationStateSchema = z.object({
  startedAt: z.string().datetime(),
  pollCount: z.number().int().min(0),
  recent: z.array(z.object({ cpuPercent: z.number(), memoryPercent: z.number(), latencyMs: z.number() })).max(100),
});

export function pollStability(previous: StabilisationState | null | undefined, reports: readonly MetricsReport[], now = new Date()): StabilisationDecision {
  const { cpuPercent, memoryPercent, latencyMs } = averageMetrics([...reports]);
  return stabilise(previous ?? undefined, { cpuPercent, memoryPercent, latencyMs }, now, config.stabilisation());
}

/** What the stage details show once the wait is over. */
export function stabilisationDetail(d: Extract<StabilisationDecision, { action: 'judge' }>) {
  return { stable: d.stable, waitedSeconds: d.waitedSeconds, polls: d.pollCount, unstable: d.unstable };
}
