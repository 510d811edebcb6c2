import { z } from 'zod';
import { gateDecision } from '../../domain/steering.ts';
import { config } from '../../lib/config.ts';
import { requireDeployment } from '../../lib/deployments.ts';
import { environmentInput } from '../../lib/environmentStage.ts';
import { renewDeploymentLocks } from '../../lib/locks.ts';
import { consumePromotion, liftHold } from '../../lib/steering.ts';
import { taskHandler } from '../../lib/task.ts';
import type { FiredAlarm } from '../../domain/alarms.ts';
import { firedAlarms, hasAlarms } from '../../lib/alarms.ts';
import type { DeploymentRecord } from '../../domain/deployment.ts';
import type { Environment } from '../../domain/environments.ts';
import { countServed, measuredShare, wavePercents, type ServedCount } from '../../domain/trafficWeights.ts';
import { agentClient, mapLimit } from '../../lib/agentClient.ts';
import { recordStageDetail } from '../../lib/deployments.ts';
import { getNodes, type NodeRecord } from '../../lib/nodes.ts';
import { abortPlan, getBatch, getPlan, listBatches } from '../../lib/targets.ts';
import { trafficRouter } from '../../lib/trafficRouter.ts';

/**
 * The canary's bake gate after each wave (statemachines/canary.asl.json: StartBake, then CheckBake
 * in a loop with short Waits): reads the deployment's hold and promotion and answers what comes
 * next (domain/steering.ts): wait (bake or hold), judge the wave, skip (promoted to 100 %), or
 * abort (a hold's deadline passed, configured to roll back). The first call starts the bake clock;
 * every call renews the deployment's locks for the wait it leads into, so a long hold keeps them.
 */
/** The environment's alarms (ALARMS): metric conditions over the canary nodes so far, and CloudWatch alarms. */
async function canaryAlarms(executionId: string, environment: Environment, wave: number): Promise<FiredAlarm[]> {
  if (!hasAlarms(environment)) return [];
  const plan = await getPlan(executionId, environment);
  if (!plan?.waves) return [];
  const batches = await Promise.all(
    plan.waves
      .slice(0, wave + 1)
      .flat()
      .map((b) => getBatch(executionId, environment, b)),
  );
  const ids = batches.flatMap((b) => Object.keys(b.nodes)).slice(-200);
  const nodes = await getNodes(environment, ids);
  const reports = await mapLimit(ids, config.agentConcurrency(), async (nodeId) => agentClient.metrics(nodes.get(nodeId) as NodeRecord));
  return firedAlarms(
    environment,
    reports.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : [])),
  );
}

export const handler = taskHandler(
  environmentInput.extend({
    wave: z.number().int().min(0),
    bakeSeconds: z.number().int().min(0),
    bakeStartedAt: z.string().datetime().optional(),
  }),
  async ({ executionId, environment, wave, bakeSeconds, bakeStartedAt }) => {
    const now = new Date();
    const started = bakeStartedAt ?? now.toISOString();
    let d = await requireDeployment(executionId);
    const decide = (traffic?: { requests: number; minRequests: number; maxBakeSeconds: number }) =>
      gateDecision({
        now,
        wave,
        bakeStartedAt: new Date(started),
        bakeSeconds,
        pollSeconds: config.canaryPollSeconds(),
        hold: d.hold,
        promotion: d.promotion,
        traffic,
      });
    let decision = decide();
    if (decision.action === 'lift') {
      await liftHold(d, 'system:canary', 'deadline');
      d = await requireDeployment(executionId);
      decision = decide();
      // Paused again meanwhile with a deadline already past: look again after a short wait.
      if (decision.action === 'lift') decision = { action: 'wait', waitSeconds: 1, reason: 'hold' };
    }
    // The bake is over: with a minimum of requests per wave, ask the router how many it has served
    // (the same reading then measures the wave's share).
    const minRequests = config.canaryMinWaveRequests();
    let counted: WaveCounts | undefined;
    if (bakeStartedAt && decision.action === 'judge' && !decision.promoted && minRequests > 0) {
      counted = await readWaveCounts(d, environment, wave);
      if (counted)
        decision = decide({ requests: counted.counts.total - counted.detail.start.total, minRequests, maxBakeSeconds: config.canaryMaxBakeSeconds() });
    }
    // Alarm-driven stop: an alarm of the environment firing during the bake stops and rolls back.
    if (decision.action === 'wait' || decision.action === 'judge') {
      const fired = await canaryAlarms(executionId, environment, wave);
      if (fired.length) {
        const message = `${fired.map((f) => f.message).join('; ')} during the bake of canary wave ${wave + 1}`;
        await recordStageDetail(executionId, environment, 'alarm', { wave: wave + 1, fired, at: now.toISOString() }, 'canary.alarm.fired');
        await abortPlan(executionId, environment, message);
        decision = { action: 'abort', code: 'AlarmFired', message };
      }
    }
    if (decision.action === 'judge' && decision.promoted) await consumePromotion(d, wave);
    // With a weighted router, the wave is a share of traffic: set at the bake's start, measured at its end.
    if (!bakeStartedAt) await weighWave(executionId, environment, wave);
    else if (decision.action === 'judge') await measureWave(d, environment, wave, counted ?? (await readWaveCounts(d, environment, wave)));
    await renewDeploymentLocks(d, executionId, { bakeSeconds: decision.action === 'wait' ? decision.waitSeconds : 0 });
    return { ...decision, environment, wave, bakeStartedAt: started };
  },
);

/** The canary nodes so far (this wave and the earlier ones) and this wave's traffic weight. */
async function waveTraffic(executionId: string, environment: Environment, wave: number) {
  const plan = await getPlan(executionId, environment);
  if (!plan?.waves) return undefined;
  const batches = new Set(plan.waves.slice(0, wave + 1).flat());
  const ids = (await listBatches(executionId, environment)).filter((b) => batches.has(b.batch)).flatMap((b) => Object.keys(b.nodes));
  const weightPercent = wavePercents(plan.nodesTotal, config.canaryWaves())[wave] ?? 100;
  return { ids, weightPercent };
}

/**
 * Bake start: the router sends the wave's share of requests to the canary nodes (idempotent), and
 * its counts now are the start of the measurement window (stage detail `wave<n>Traffic`).
 */
async function weighWave(executionId: string, environment: Environment, wave: number): Promise<void> {
  const router = trafficRouter(environment);
  if (!router.weighted) return;
  const t = await waveTraffic(executionId, environment, wave);
  if (!t) return;
  await router.setCanaryWeight(environment, t.ids, t.weightPercent, executionId);
  const counts = await router.servedCounts(environment);
  const start = counts ? countServed(counts, new Set(t.ids)) : undefined;
  await recordStageDetail(
    executionId,
    environment,
    `wave${wave + 1}Traffic`,
    { weightPercent: t.weightPercent, canaryNodes: t.ids.length, router: router.kind, at: new Date().toISOString(), start },
    'canary.traffic.weighted',
  );
}

interface WaveTrafficDetail {
  weightPercent: number;
  canaryNodes: number;
  start: ServedCount;
  at: string;
}
interface WaveCounts {
  key: string;
  detail: WaveTrafficDetail;
  /** The router's per-node counts now, and their total. */
  perNode: Record<string, number>;
  counts: ServedCount;
}

/** The wave's traffic record (from its bake's start) and the router's counts now; undefined without a weighted router's counts. */
async function readWaveCounts(d: DeploymentRecord, environment: Environment, wave: number): Promise<WaveCounts | undefined> {
  const router = trafficRouter(environment);
  const key = `wave${wave + 1}Traffic`;
  const detail = d.stages[environment]?.details?.[key] as Partial<WaveTrafficDetail> | undefined;
  if (!router.weighted || !detail?.start) return undefined;
  const perNode = await router.servedCounts(environment);
  return perNode ? { key, detail: detail as WaveTrafficDetail, perNode, counts: countServed(perNode, new Set()) } : undefined;
}

/** Bake end: the share of requests the canary nodes really served during the bake, as the router counted them. */
async function measureWave(d: DeploymentRecord, environment: Environment, wave: number, w: WaveCounts | undefined): Promise<void> {
  if (!w) return;
  const t = await waveTraffic(d.executionId, environment, wave);
  if (!t) return;
  const share = measuredShare(w.detail.weightPercent, w.detail.start, countServed(w.perNode, new Set(t.ids)));
  // A wave judged after its longest bake on fewer requests than asked for says so.
  const min = config.canaryMinWaveRequests();
  const minimum = min > 0 ? { minRequests: min, belowMinimum: share.requests < min } : {};
  await recordStageDetail(
    d.executionId,
    environment,
    w.key,
    { ...w.detail, ...share, ...minimum, measuredAt: new Date().toISOString() },
    'canary.traffic.measured',
  );
}
