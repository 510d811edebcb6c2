/**
 * The environment's alarms now (functions/domain/alarms.ts): metric conditions over the agents'
 * reports the caller already has, and CloudWatch alarms by name, read in one DescribeAlarms call.
 */
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { evaluateAlarms, type FiredAlarm, isCloudWatchAlarm, judgeCloudWatchAlarms } from '../domain/alarms.ts';
import type { Environment } from '../domain/environments.ts';
import { config } from './config.ts';

let client: CloudWatchClient | undefined;
const cloudWatch = () => {
  client ??= new CloudWatchClient({});
  return client;
};

/** Whether the environment names any alarm (no agent call or CloudWatch read without one). */
export const hasAlarms = (environment: Environment): boolean => config.alarms(environment).length > 0;

export async function firedAlarms(environment: Environment, reports: Parameters<typeof evaluateAlarms>[1]): Promise<FiredAlarm[]> {
  const rules = config.alarms(environment);
  const cw = rules.filter(isCloudWatchAlarm);
  const fired = evaluateAlarms(rules, reports);
  if (cw.length === 0) return fired;
  const states = new Map<string, { state: string; reason?: string }>();
  const names = [...new Set(cw.map((r) => r.cloudwatchAlarm))];
  // DescribeAlarms takes at most 100 names a call; an environment names at most 50 alarms.
  const r = await cloudWatch().send(new DescribeAlarmsCommand({ AlarmNames: names, AlarmTypes: ['MetricAlarm', 'CompositeAlarm'], MaxRecords: 100 }));
  for (const a of [...(r.MetricAlarms ?? []), ...(r.CompositeAlarms ?? [])])
    if (a.AlarmName) states.set(a.AlarmName, { state: a.StateValue ?? 'INSUFFICIENT_DATA', reason: a.StateReason });
  return [...fired, ...judgeCloudWatchAlarms(cw, states)];
}
