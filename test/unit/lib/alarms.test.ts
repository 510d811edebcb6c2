/**
 * CloudWatch alarms cannot be read here (the local cloud has no CloudWatch): the DescribeAlarms
 * call is checked with aws-sdk-client-mock. The metric conditions are tested for real in
 * test/integration/alarms.test.ts.
 */
import { CloudWatchClient, DescribeAlarmsCommand } from '@aws-sdk/client-cloudwatch';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { firedAlarms, hasAlarms } from '../../../functions/lib/alarms.ts';

const cw = mockClient(CloudWatchClient);
const report = (nodeId: string, latencyMs: number) => ({ nodeId, latencyMs, errorRatePercent: 0.5, cpuPercent: 20, memoryPercent: 40 });

beforeEach(() => {
  cw.reset();
  process.env.ALARMS = JSON.stringify({
    Production: [
      { name: 'Api5xx', cloudwatchAlarm: 'kmod-prod-5xx' },
      { name: 'Composite', cloudwatchAlarm: 'kmod-prod-health' },
      { name: 'NodeLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' },
    ],
    Staging: [{ name: 'NodeLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' }],
  });
});
afterEach(() => {
  delete process.env.ALARMS;
});

describe('the environment’s alarms now', () => {
  it('reads every named CloudWatch alarm (metric and composite) in one call, beside the metric conditions', async () => {
    cw.on(DescribeAlarmsCommand).resolves({
      MetricAlarms: [{ AlarmName: 'kmod-prod-5xx', StateValue: 'ALARM', StateReason: 'Threshold Crossed' }],
      CompositeAlarms: [{ AlarmName: 'kmod-prod-health', StateValue: 'OK' }],
    });
    const fired = await firedAlarms('Production', [report('p1', 20), report('p2', 90)]);
    expect(fired.map((f) => f.message)).toEqual([
      'alarm NodeLatency: latencyMs 90 > 60 on p2',
      'alarm Api5xx: CloudWatch alarm kmod-prod-5xx is in ALARM (Threshold Crossed)',
    ]);
    const calls = cw.commandCalls(DescribeAlarmsCommand);
    expect(calls).toHaveLength(1);
    expect(calls[0].args[0].input).toMatchObject({ AlarmNames: ['kmod-prod-5xx', 'kmod-prod-health'], AlarmTypes: ['MetricAlarm', 'CompositeAlarm'] });
  });

  it('never calls CloudWatch for an environment without CloudWatch alarms; none at all: nothing to watch', async () => {
    expect(await firedAlarms('Staging', [report('s1', 20)])).toEqual([]);
    expect(cw.commandCalls(DescribeAlarmsCommand)).toHaveLength(0);
    expect(hasAlarms('Staging')).toBe(true);
    expect(hasAlarms('QA')).toBe(false);
  });

  it('a CloudWatch error fails the check (the task is retried, then the deployment stops), never passes it', async () => {
    cw.on(DescribeAlarmsCommand).rejects(new Error('AccessDenied'));
    await expect(firedAlarms('Production', [report('p1', 20)])).rejects.toThrow(/AccessDenied/);
  });
});
