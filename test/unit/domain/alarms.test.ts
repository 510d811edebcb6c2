import { describe, expect, it } from 'vitest';
import { evaluateAlarms, parseAlarms } from '../../../functions/domain/alarms.ts';

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
});
