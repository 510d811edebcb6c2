/**
 * Alarm-driven stop (issue 10 item 6), the local form: an environment names alarms, each a metric
 * condition over its canary nodes' agent reports. One that fires during a canary bake stops the
 * deployment and rolls it back, with the alarm in the reason (functions/handlers/tasks/canaryGate.ts).
 *
 *   ALARMS='{"Production":[{"name":"HighLatency","metric":"latencyMs","above":60,"scope":"anyNode"}]}'
 */
import { z } from 'zod';
import { ENVIRONMENTS, type Environment } from './environments.ts';

export const ALARM_METRICS = ['errorRatePercent', 'latencyMs', 'cpuPercent', 'memoryPercent'] as const;
type AlarmMetric = (typeof ALARM_METRICS)[number];

export const alarmRuleSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'letters, digits, _ . - (at most 64)'),
    metric: z.enum(ALARM_METRICS),
    /** Fires when the value is above this. */
    above: z.number(),
    /** `average` over the canary nodes (default), or `anyNode`: one node above is enough. */
    scope: z.enum(['average', 'anyNode']).default('average'),
  })
  .strict();

export type AlarmRule = z.infer<typeof alarmRuleSchema>;

export const alarmsConfigSchema = z.partialRecord(z.enum(ENVIRONMENTS), z.array(alarmRuleSchema).max(50));

/** The alarms of an environment from the ALARMS setting (JSON); a malformed setting is an error, not silence. */
export function parseAlarms(raw: string | undefined, environment: Environment): AlarmRule[] {
  if (!raw) return [];
  const parsed = alarmsConfigSchema.safeParse(JSON.parse(raw));
  if (!parsed.success) throw new Error(`ALARMS is not valid: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  return parsed.data[environment] ?? [];
}

export interface FiredAlarm {
  name: string;
  metric: AlarmMetric;
  value: number;
  above: number;
  /** The node, for `anyNode` alarms. */
  nodeId?: string;
  message: string;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function evaluateAlarms(rules: readonly AlarmRule[], reports: readonly ({ nodeId: string } & Record<AlarmMetric, number>)[]): FiredAlarm[] {
  if (reports.length === 0) return [];
  const fired: FiredAlarm[] = [];
  for (const r of rules) {
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
          message: `alarm ${r.name}: ${r.metric} ${avg} > ${r.above} (average of ${reports.length} canary nodes)`,
        });
    }
  }
  return fired;
}
