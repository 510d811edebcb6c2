import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';
import type { WaveChart } from '../model.ts';

/** Baseline versus canary for one metric across the waves (uPlot); the numbers are in a table for screen readers. */
export function WaveChartView({ chart }: { chart: WaveChart }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const plot = new uPlot(
      {
        width: 320,
        height: 160,
        title: `${chart.metric}${chart.unit ? ` (${chart.unit})` : ''}`,
        scales: { x: { time: false } },
        legend: { live: false },
        axes: [{ label: 'wave', values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? String(t) : '')) }, {}],
        series: [
          { label: 'wave' },
          { label: 'baseline', stroke: '#6b7280', width: 2, points: { show: true } },
          { label: 'canary', stroke: '#2563eb', width: 2, points: { show: true } },
        ],
      },
      [chart.waves, chart.baseline, chart.canary] as uPlot.AlignedData,
      el.current,
    );
    return () => plot.destroy();
  }, [chart]);
  return (
    <figure class="chart" data-testid={`chart-${chart.metric}`}>
      <div ref={el} aria-hidden="true" />
      <figcaption>
        <table class="sr-only">
          <caption>{chart.metric}: baseline versus canary by wave</caption>
          <thead>
            <tr>
              <th scope="col">Wave</th>
              <th scope="col">Baseline</th>
              <th scope="col">Canary</th>
            </tr>
          </thead>
          <tbody>
            {chart.waves.map((w, i) => (
              <tr key={w}>
                <th scope="row">{w}</th>
                <td>{chart.baseline[i] ?? '—'}</td>
                <td>{chart.canary[i] ?? '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
        {chart.verdict && <span class={`verdict ${chart.verdict}`}>verdict: {chart.verdict}</span>}
      </figcaption>
    </figure>
  );
}
