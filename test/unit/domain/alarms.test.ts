import { describe, expect, it } from 'vitest';
import { evaluateAlarms, judgeCloudWatchAlarms, parseAlarms } from '../../../functions/domain/alarms.ts';

const node = (nodeId: string, latencyMs: number, errorRatePercent = 0.5) => ({ nodeId, latencyMs, errorRatePercent, cpuPercent: 25, memoryPercent: 40 });

describe('alarms', () => {
  it('parses the ALARMS setting per environment, refusing a malformed one', () => {
    const raw = JSON.stringify({
      Production: [
        { name: 'HighLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' },
        { name: 'Errors', metric: 'errorRatePercent', above: 2 },
      ],
    });
    expect(parseAlarms(raw, 'Production')).toEqual([
      { name: 'HighLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' },
      { name: 'Errors', metric: 'errorRatePercent', above: 2, scope: 'average' },
    ]);
    expect(parseAlarms(raw, 'Staging')).toEqual([]);
    expect(parseAlarms(undefined, 'Production')).toEqual([]);
    expect(() => parseAlarms(JSON.stringify({ Production: [{ name: 'x', metric: 'disk', above: 1 }] }), 'Production')).toThrow(
      /ALARMS is not valid: Production\.0\.metric/,
    );
    expect(() => parseAlarms(JSON.stringify({ Moon: [] }), 'Production')).toThrow(/ALARMS is not valid/);
  });

  it('fires on the average, or on any one node, and names what fired', () => {
    const rules = parseAlarms(
      JSON.stringify({
        Production: [
          { name: 'AvgLatency', metric: 'latencyMs', above: 60 },
          { name: 'NodeLatency', metric: 'latencyMs', above: 60, scope: 'anyNode' },
        ],
      }),
      'Production',
    );
    expect(evaluateAlarms(rules, [node('p1', 20), node('p2', 20)])).toEqual([]);
    const fired = evaluateAlarms(rules, [node('p1', 20), node('p2', 100)]);
    expect(fired.map((f) => f.message)).toEqual(['alarm NodeLatency: latencyMs 100 > 60 on p2']);
    expect(evaluateAlarms(rules, [node('p1', 70), node('p2', 100)]).map((f) => f.name)).toEqual(['AvgLatency', 'NodeLatency']);
    expect(evaluateAlarms(rules, [])).toEqual([]);
  });

  it('names CloudWatch alarms: in ALARM fires with its reason, OK and INSUFFICIENT_DATA do not, a missing one fires (fail closed)', () => {
    const rules = parseAlarms(
      JSON.stringify({
        Production: [
          { name: 'Api5xx', cloudwatchAlarm: 'kmod-prod-5xx' },
          { name: 'Latency', cloudwatchAlarm: 'kmod-prod-p99' },
          { name: 'Gone', cloudwatchAlarm: 'deleted-alarm' },
          { name: 'Quiet', cloudwatchAlarm: 'kmod-prod-quiet' },
          { name: 'AvgLatency', metric: 'latencyMs', above: 60 },
        ],
      }),
      'Production',
    );
    // Metric conditions ignore CloudWatch rules and the reverse.
    expect(evaluateAlarms(rules, [node('p1', 20)])).toEqual([]);
    const states = new Map([
      ['kmod-prod-5xx', { state: 'ALARM', reason: 'Threshold Crossed: 3 datapoints [12.0, 9.0, 15.0] were greater than the threshold (5.0)' }],
      ['kmod-prod-p99', { state: 'OK' }],
      ['kmod-prod-quiet', { state: 'INSUFFICIENT_DATA' }],
    ]);
    const cw = rules.filter((r) => 'cloudwatchAlarm' in r) as Parameters<typeof judgeCloudWatchAlarms>[0];
    expect(judgeCloudWatchAlarms(cw, states)).toEqual([
      {
        name: 'Api5xx',
        cloudwatchAlarm: 'kmod-prod-5xx',
        stateReason: 'Threshold Crossed: 3 datapoints [12.0, 9.0, 15.0] were greater than the threshold (5.0)',
        message:
          'alarm Api5xx: CloudWatch alarm kmod-prod-5xx is in ALARM (Threshold Crossed: 3 datapoints [12.0, 9.0, 15.0] were greater than the threshold (5.0))',
      },
      expect.objectContaining({ name: 'Gone', message: expect.stringMatching(/does not exist/) }),
    ]);
    // A rule is a metric condition or a CloudWatch alarm, never both or neither.
    for (const bad of [{ name: 'x', cloudwatchAlarm: 'a', metric: 'latencyMs', above: 1 }, { name: 'x' }, { name: 'x', cloudwatchAlarm: '' }])
      expect(() => parseAlarms(JSON.stringify({ Production: [bad] }), 'Production'), JSON.stringify(bad)).toThrow(/ALARMS is not valid/);
  });
});
