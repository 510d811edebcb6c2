/**
 * docs/grafana/kmod-dashboard.json: the fields Grafana needs to load a dashboard, and every metric
 * its PromQL names is one that /metrics exposes (from the code's metric registry).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { exposedSampleNames } from '../../../functions/lib/metrics.ts';

const datasource = z.object({ type: z.literal('prometheus'), uid: z.string().min(1) });
const panel = z.object({
  id: z.number().int().positive(),
  title: z.string().min(1),
  type: z.enum(['timeseries', 'stat', 'bargauge', 'gauge', 'table', 'heatmap', 'barchart']),
  datasource,
  gridPos: z.object({ x: z.number().int().min(0).max(23), y: z.number().int().min(0), w: z.number().int().min(1).max(24), h: z.number().int().min(1) }),
  targets: z.array(z.object({ refId: z.string().min(1), expr: z.string().min(1), legendFormat: z.string().optional() })).min(1),
});
const dashboard = z.object({
  title: z.string().min(1),
  uid: z.string().min(1).max(40),
  schemaVersion: z.number().int().min(36),
  time: z.object({ from: z.string(), to: z.string() }),
  templating: z.object({ list: z.array(z.object({ name: z.string().min(1), type: z.enum(['datasource', 'query', 'custom', 'constant', 'interval']) })) }),
  panels: z.array(panel).min(5),
});

const raw = JSON.parse(readFileSync(join(import.meta.dirname, '../../../docs/grafana/kmod-dashboard.json'), 'utf8'));

/** Metric names in a PromQL expression: identifiers followed by `{`, `[`, `)` or the end, minus functions and keywords. */
function metricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"[^"]*"/g, '""').replace(/\{[^}]*\}/g, '{}');
  const withoutGrouping = withoutStrings.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, '');
  return [...withoutGrouping.matchAll(/\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()/g)]
    .map((m) => m[1])
    .filter((n) => !/^\d/.test(n) && !['sum', 'rate', 'increase', 'histogram_quantile', 'and', 'or', 'unless', 'bool'].includes(n) && !/^\d+[smhdwy]$/.test(n));
}

describe('the Grafana dashboard', () => {
  it('has the structure Grafana loads', () => {
    const parsed = dashboard.safeParse(raw);
    expect(parsed.success, JSON.stringify(parsed.error?.issues)).toBe(true);
    const ids = parsed.data!.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const p of parsed.data!.panels) expect(p.gridPos.x + p.gridPos.w).toBeLessThanOrEqual(24);
  });

  it('queries only metrics /metrics exposes, and covers deployments, durations, verdicts, fleet and approvals', () => {
    const exposed = new Set(exposedSampleNames());
    const used = new Set(dashboard.parse(raw).panels.flatMap((p) => p.targets.flatMap((t) => metricNames(t.expr))));
    expect(used.size).toBeGreaterThan(5);
    for (const name of used) expect(exposed, `${name} is not exposed by /metrics`).toContain(name);
    for (const needed of [
      'kmod_deployments_started_total',
      'kmod_stage_duration_seconds_bucket',
      'kmod_deployments_failed_total',
      'kmod_nodes',
      'kmod_approvals_pending',
    ]) {
      expect(used).toContain(needed);
    }
  });

  it('finds metric names in PromQL and would catch an unknown one', () => {
    expect(metricNames('histogram_quantile(0.9, sum by (le, stage) (rate(kmod_x_bucket{stage="a"}[1h])))')).toEqual(['kmod_x_bucket']);
    expect(metricNames('sum(a_total) / sum(b_total)')).toEqual(['a_total', 'b_total']);
  });
});
