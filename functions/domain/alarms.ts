/**
 * Alarm-driven stop (issue 10 item 6): an environment names alarms. One that fires during a canary
 * bake or a batch's health check stops the deployment and rolls it back, with the alarm in the
 * reason (functions/lib/alarms.ts, called by CanaryGate and VerifyBatch). Two kinds:
 *
 * - a metric condition over the deployed nodes' agent reports (the local cloud, or anywhere):
 *   {"name":"HighLatency","metric":"latencyMs","above":60,"scope":"anyNode"}
 * - a CloudWatch alarm by name (AWS; fires while it is in ALARM, as CodeDeploy's alarms do):
 *   {"name":"ApiErrors","cloudwatchAlarm":"kmod-prod-5xx"}
 *
 *   ALARMS='{"Production":[{…}, …]}'
 */
import { z } from 'zod';
import { ENVIRONMENTS, type Environment } from './environments.ts';

export const ALARM_METRICS = ['errorRatePercent', 'latencyMs', 'cpuPercent', 'memoryPercent'] as const;
type AlarmMetric = (typeof ALARM_METRICS)[number];

const alarmName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)');

export const metricAlarmSchema = z
  .object({
    name: alarmName,
    metric: z.enum(ALARM_METRICS),
    /** Fires when the value is above this (every metric is ≥ 0). */
    above: z.number().min(0),
    /** `average` over the nodes (default), or `anyNode`: one node above is enough. */
    scope: z.enum(['average', 'anyNode']).default('average'),
  })
  .strict();

export const cloudWatchAlarmSchema = z
  .object({
    name: alarmName,
    /** The CloudWatch alarm's name, in the orchestrator's account and region (1–255 characters). */
    cloudwatchAlarm: z.string().min(1).max(255),
  })
  .strict();

export type MetricAlarmRule = z.infer<typeof metricAlarmSchema>;
export type CloudWatchAlarmRule = z.infer<typeof cloudWatchAlarmSchema>;
export type AlarmRule = MetricAlarmRule | CloudWatchAlarmRule;

/** A rule naming `cloudwatchAlarm` is a CloudWatch alarm, any other a metric condition: each judged, and its errors named, by its own schema. */
export const alarmRuleSchema = z.unknown().transform((v, ctx): AlarmRule => {
  const schema = v !== null && typeof v === 'object' && 'cloudwatchAlarm' in v ? cloudWatchAlarmSchema : metricAlarmSchema;
  const r = schema.safeParse(v);
  if (r.success) return r.data;
  for (const i of r.error.issues) ctx.addIssue({ code: 'custom', message: i.message, path: i.path });
  return z.NEVER;
});
export const isCloudWatchAlarm = (r: AlarmRule): r is CloudWatchAlarmRule => 'cloudwatchAlarm' in r;

export const alarmsConfigSchema = z.partialRecord(
  z.enum(ENVIRONMENTS),
  z
    .array(alarmRuleSchema)
    .max(50)
    .refine((rules) => new Set(rules.map((r) => r.name)).size === rules.length, 'alarm names are unique within an environment'),
);
export type AlarmsConfig = z.infer<typeof alarmsConfigSchema>;

/** The alarms of an environment from the ALARMS setting (JSON); a malformed setting is an error, not silence. */
export function parseAlarms(raw: string | undefined, environment: Environment): AlarmRule[] {
  if (!raw) return [];
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw new Error('ALARMS is not valid: not JSON');
  }
  const parsed = alarmsConfigSchema.safeParse(json);
  if (!parsed.success) throw new Error(`ALARMS is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data[environment] ?? [];
}

export interface FiredAlarm {
  name: string;
  /** Metric conditions: what was measured against what. */
  metric?: AlarmMetric;
  value?: number;
  above?: number;
  /** The node, for `anyNode` alarms. */
  nodeId?: string;
  /** CloudWatch alarms: the alarm, and why CloudWatch says it is in ALARM. */
  cloudwatchAlarm?: string;
  stateReason?: string;
  message: string;
}

/** What a CloudWatch alarm's state means here: ALARM fires; a missing alarm fires too (fail closed, as CodeDeploy does by default). */
export function judgeCloudWatchAlarms(rules: readonly CloudWatchAlarmRule[], states: ReadonlyMap<string, { state: string; reason?: string }>): FiredAlarm[] {
  return rules.flatMap((r): FiredAlarm[] => {
    const s = states.get(r.cloudwatchAlarm);
    if (!s)
      return [
        {
          name: r.name,
          cloudwatchAlarm: r.cloudwatchAlarm,
          message: `alarm ${r.name}: CloudWatch alarm ${r.cloudwatchAlarm} does not exist (an alarm that cannot be read stops the deployment)`,
        },
      ];
    if (s.state !== 'ALARM') return [];
    return [
      {
        name: r.name,
        cloudwatchAlarm: r.cloudwatchAlarm,
        stateReason: s.reason,
        message: `alarm ${r.name}: CloudWatch alarm ${r.cloudwatchAlarm} is in ALARM${s.reason ? ` (${s.reason})` : ''}`,
      },
    ];
  });
}

const round = (n: number) => Math.round(n * 100) / 100;

/** The metric conditions among `rules` over the nodes' reports (CloudWatch alarms are read elsewhere). */
export function evaluateAlarms(rules: readonly AlarmRule[], reports: readonly ({ nodeId: string } & Record<AlarmMetric, number>)[]): FiredAlarm[] {
  if (reports.length === 0) return [];
  const fired: FiredAlarm[] = [];
  for (const r of rules.filter((x): x is MetricAlarmRule => !isCloudWatchAlarm(x))) {
    if (r.scope === 'anyNode') {
      const worst = reports.reduce((a, b) => (b[r.metric] > a[r.metric] ? b : a));
      if (worst[r.metric] > r.above)
        fired.push({
          name: r.name,
          metric: r.metric,
          value: worst[r.metric],
          above: r.above,
          nodeId: worst.nodeId,
          message: `alarm ${r.name}: ${r.metric} ${worst[r.metric]} > ${r.above} on ${worst.nodeId}`,
        });
    } else {
      const avg = round(reports.reduce((s, x) => s + x[r.metric], 0) / reports.length);
      if (avg > r.above)
        fired.push({
          name: r.name,
          metric: r.metric,
          value: avg,
          above: r.above,
          message: `alarm ${r.name}: ${r.metric} ${avg} > ${r.above} (average of ${reports.length} nodes)`,
        });
    }
  }
  return fired;
}
