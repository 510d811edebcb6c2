import type { Schemas } from '../../../sdk/typescript/client.ts';
export { batchesDone } from '../../../sdk/typescript/progress.ts';
import { batchesDone } from '../../../sdk/typescript/progress.ts';

/**
 * What the kmod CLI prints: a deployment as keyed lines (so a watcher can print only the lines
 * that changed), tables for lists, and the exit code a deployment's status means.
 */

export const FINISHED = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'] as const;

/** 0 succeeded, 1 failed or rolled back, 3 cancelled; undefined while the deployment runs. */
export function exitCodeFor(status: string): number | undefined {
  if (status === 'Succeeded') return 0;
  if (status === 'Failed' || status === 'RolledBack') return 1;
  if (status === 'Cancelled') return 3;
  return undefined;
}

export interface Line {
  key: string;
  text: string;
}

/** Stage details are free-form per strategy (batches, waves, colours): read as JSON. */
type Details = Record<string, any>;

const pct = (p: unknown) => (typeof p === 'number' ? (p < 0.0001 ? p.toExponential(1) : p.toPrecision(2)) : '-');

/** The canary waves recorded in a stage's details (`wave1`, `wave2`, …), in order. */
export function waves(details: Details | undefined): any[] {
  if (!details) return [];
  return Object.keys(details)
    .filter((k) => /^wave\d+$/.test(k))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
    .map((k) => details[k]);
}

export function waveText(w: any): string {
  const metrics = Array.isArray(w.metrics) ? w.metrics : [];
  const ps = metrics.map((m: any) => `${m.metric} p=${pct(m.pValue)}${m.verdict && m.verdict !== 'pass' ? ` (${m.verdict})` : ''}`).join(', ');
  return `wave ${w.wave} (${w.percent}%, ${w.nodes} node${w.nodes === 1 ? '' : 's'}): ${w.passed ? 'passed' : 'FAILED'}${ps ? ` — ${ps}` : ''}${
    !w.passed && w.summary ? ` — ${w.summary}` : ''
  }`;
}

export function deploymentLines(d: Schemas['Deployment']): Line[] {
  const lines: Line[] = [{ key: 'head', text: `${d.executionId}  ${d.moduleName}@${d.version} → ${d.targetEnvironment}  ${d.status}` }];
  for (const s of d.stages) {
    const name = s.environment ?? s.name;
    const parts = [`  ${name.padEnd(12)} ${s.status}`];
    if (s.strategy) parts.push(`[${s.strategy}]`);
    if (typeof s.nodesTotal === 'number') parts.push(`nodes ${s.nodesDeployed ?? 0}/${s.nodesTotal}${s.nodesFailed ? ` (${s.nodesFailed} failed)` : ''}`);
    const b = batchesDone(s);
    if (b) parts.push(`batches ${b[0]}/${b[1]}`);
    lines.push({ key: `stage:${s.name}`, text: parts.join('  ') });
    for (const w of waves(s.details)) lines.push({ key: `stage:${s.name}:wave${w.wave}`, text: `    canary ${waveText(w)}` });
    if (s.approval) {
      const a = s.approval;
      const decided = (a.decisions ?? [])
        .map((x) => `${x.decision === 'approve' ? 'approved' : x.decision === 'reject' ? 'rejected' : x.decision} by ${x.approver}`)
        .join(', ');
      const who = a.status === 'Pending' ? ` — may approve: ${(a.approvers ?? []).join(', ') || 'Admin'}` : '';
      lines.push({
        key: `stage:${s.name}:approval`,
        text: `    ${name} approval ${a.status}${who}${a.quorum && a.quorum > 1 ? ` (quorum ${a.quorum})` : ''}${a.deadline && who ? `, deadline ${a.deadline}` : ''}${decided ? ` — ${decided}` : ''}`,
      });
    }
    if (s.status === 'Failed' && s.message) lines.push({ key: `stage:${s.name}:message`, text: `    ${s.message}` });
  }
  if (d.hold) lines.push({ key: 'hold', text: `  paused: ${JSON.stringify(d.hold)}` });
  if (d.failure)
    lines.push({ key: 'failure', text: `  failure: ${typeof d.failure === 'string' ? d.failure : (d.failure.message ?? JSON.stringify(d.failure))}` });
  if (d.cancellation)
    lines.push({
      key: 'cancellation',
      text: `  cancel requested by ${d.cancellation.requestedBy ?? '?'}${d.cancellation.reason ? `: ${d.cancellation.reason}` : ''}`,
    });
  if (d.rollback) lines.push({ key: 'rollback', text: `  rollback ${d.rollback.status ?? ''}`.trimEnd() });
  return lines;
}

/** A fixed-width table: header and rows of strings. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) =>
    r
      .map((c, i) => (c ?? '').padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  return [fmt(header), ...rows.map(fmt)].join('\n');
}
