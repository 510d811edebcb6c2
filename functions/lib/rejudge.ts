/**
 * Rejudge: the recorded samples of a canary's waves judged again under other settings, without
 * touching a node or the deployment (a dry run for tuning; docs/runbooks/canary-tuning.md).
 */
import { z } from 'zod';
import { type CanaryThresholds, judgeWave, type MinimumDeltas, presentJudgement, baselineSampleSet } from '../domain/canary.ts';
import type { DeploymentRecord } from '../domain/deployment.ts';
import { ENVIRONMENT_PROFILES, ENVIRONMENTS, type Environment } from '../domain/environments.ts';
import { conflict } from '../domain/errors.ts';
import type { Principal } from '../domain/roles.ts';
import { audit, deploymentSubject } from './audit.ts';
import { listWaveSamples } from './canarySamples.ts';
import { config } from './config.ts';
import { getPlan } from './targets.ts';

const percent = z.number().min(0).max(100_000);
const delta = z.number().min(0).max(100_000);

export const rejudgeSchema = z
  .object({
    /** The canary environment to rejudge; default: the deployment's only canary stage. */
    environment: z.enum(ENVIRONMENTS).optional(),
    /** Confidence of the statistical judge (default: CANARY_CONFIDENCE). */
    confidence: z.number().min(0.5).max(0.999999).optional(),
    /** Largest allowed rises over the baseline, in percent (default: the CANARY_MAX_*_INCREASE_PERCENT settings). */
    thresholds: z.object({ errorRatePercent: percent, latencyPercent: percent, cpuPercent: percent, memoryPercent: percent }).partial().strict().optional(),
    /** Smallest absolute changes that can fail a metric (default: the CANARY_MIN_*_DELTA settings). */
    minimumDeltas: z.object({ errorRatePercent: delta, latencyMs: delta, cpuPercent: delta, memoryPercent: delta }).partial().strict().optional(),
  })
  .strict()
  .optional();

export type RejudgeRequest = z.infer<typeof rejudgeSchema>;

export async function rejudge(d: DeploymentRecord, body: RejudgeRequest, caller: Principal) {
  const canaryStages = d.stages
    ? Object.keys(d.stages).filter(
        (s): s is Environment => (ENVIRONMENTS as readonly string[]).includes(s) && ENVIRONMENT_PROFILES[s as Environment].strategy === 'Canary',
      )
    : [];
  const environment = body?.environment ?? canaryStages[0];
  if (!environment || !canaryStages.includes(environment))
    throw conflict('NoCanaryStage', `${d.executionId} has no canary stage${body?.environment ? ` in ${body.environment}` : ''} to rejudge`);
  const plan = await getPlan(d.executionId, environment);
  const waves = await listWaveSamples(d.executionId, environment);
  if (!plan?.baseline || waves.length === 0)
    throw conflict('NoCanarySamples', `${d.executionId} has no judged canary wave in ${environment} yet: nothing recorded to rejudge`);
  const settings = {
    confidence: body?.confidence ?? config.canaryConfidence(),
    thresholds: { ...config.canaryThresholds(), ...body?.thresholds } satisfies CanaryThresholds,
    minimum: { ...config.canaryMinimumDeltas(), ...body?.minimumDeltas } satisfies MinimumDeltas,
  };
  const baseline = baselineSampleSet(plan.baseline);
  const recorded = (d.stages?.[environment]?.details ?? {}) as Record<string, { passed?: boolean; summary?: string } | undefined>;
  const results = waves.map((w) => {
    const j = judgeWave(baseline, w.samples, settings);
    const original = recorded[`wave${w.wave}`];
    return {
      wave: w.wave,
      percent: w.percent,
      judgedAt: w.judgedAt,
      nodes: w.samples.nodes.length,
      recorded: original ? { passed: original.passed ?? null, summary: original.summary ?? null } : null,
      ...presentJudgement(j),
    };
  });
  await audit({
    subject: deploymentSubject(d.executionId),
    category: 'deployment',
    action: 'canary.rejudged',
    actor: caller.userId,
    details: {
      environment,
      settings: { confidence: settings.confidence, thresholds: settings.thresholds, minimumDeltas: settings.minimum },
      waves: results.map((r) => ({ wave: r.wave, recordedPassed: r.recorded?.passed ?? null, passed: r.passed })),
    },
  });
  return {
    executionId: d.executionId,
    environment,
    dryRun: true,
    settings: { confidence: settings.confidence, thresholds: settings.thresholds, minimumDeltas: settings.minimum },
    waves: results,
  };
}
