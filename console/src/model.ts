/**
 * The console's plain logic (no DOM, no fetch): what the pages show, derived from the API's typed
 * answers (sdk/typescript/schema.ts). Unit-tested in test/unit/console-model.test.ts.
 */
import type { Schemas } from '../../sdk/typescript/client.ts';
export { batchesDone } from '../../sdk/typescript/progress.ts';

export type Deployment = Schemas['Deployment'];
export type Stage = Schemas['Stage'];
export type Cluster = Schemas['Cluster'];
export type Approval = Schemas['Approval'];
export type Role = 'Admin' | 'Deployer' | 'Viewer' | 'Approver';
export const ROLES: readonly Role[] = ['Admin', 'Deployer', 'Approver', 'Viewer'];

/** Who is signed in, read from the access token's claims (the API checks the token; this only shapes the UI). */
export interface Session {
  token: string;
  sub: string;
  username: string;
  roles: Role[];
  /** Epoch seconds. */
  expiresAt: number;
}

function base64UrlDecode(s: string): string {
  const b64 = s
    .replace(/-/g, '+')
    .replace(/_/g, '/')
    .padEnd(Math.ceil(s.length / 4) * 4, '=');
  const bin = atob(b64);
  return new TextDecoder().decode(Uint8Array.from(bin, (c) => c.charCodeAt(0)));
}

/** The session a Cognito-shaped access token describes; undefined when it is not a JWT. */
export function sessionFromToken(token: string): Session | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(base64UrlDecode(parts[1])) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  const groups = Array.isArray(claims['cognito:groups']) ? (claims['cognito:groups'] as unknown[]) : [];
  return {
    token,
    sub: String(claims.sub ?? ''),
    username: String(claims.username ?? claims['cognito:username'] ?? claims.sub ?? ''),
    roles: groups.filter((g): g is Role => (ROLES as readonly unknown[]).includes(g)),
    expiresAt: typeof claims.exp === 'number' ? claims.exp : 0,
  };
}

export function expired(s: Session, nowMs = Date.now()): boolean {
  return s.expiresAt > 0 && s.expiresAt * 1000 <= nowMs;
}

/**
 * Who may call what: the routes' roles of functions/catalog.ts (test/unit/console-model.test.ts
 * checks they agree, so the buttons cannot drift from the API's authorization matrix).
 */
export const MAY = {
  deploy: ['Deployer', 'Admin'],
  steer: ['Deployer', 'Admin'],
  decide: ['Approver', 'Admin'],
  audit: ['Admin'],
  admin: ['Admin'],
} as const satisfies Record<string, readonly Role[]>;

export function may(s: Pick<Session, 'roles'> | undefined, what: keyof typeof MAY): boolean {
  return !!s && s.roles.some((r) => (MAY[what] as readonly Role[]).includes(r));
}

export const FINISHED: readonly Deployment['status'][] = ['Succeeded', 'Failed', 'RolledBack', 'Cancelled'];
export const finished = (d: Pick<Deployment, 'status'>) => FINISHED.includes(d.status);

export type SteeringAction = 'cancel' | 'pause' | 'resume' | 'promote' | 'rollback';

export interface SteeringButton {
  action: SteeringAction;
  label: string;
  /** Why it does not apply now (the button is shown disabled with this as its description). */
  disabledReason?: string;
}

/** The running canary stage, if any (pause, resume and promote apply to it only). */
export function runningCanary(d: Pick<Deployment, 'stages'>): Stage | undefined {
  return d.stages.find((s) => s.kind === 'environment' && s.strategy === 'Canary' && s.status === 'Running');
}

/**
 * The steering buttons a deployment shows to this session: none for roles that may not steer;
 * otherwise each action, disabled with the reason when the deployment is not in a state where it
 * applies (the same rules as functions/domain/steering.ts; the API's 409 stays the authority).
 */
export function steeringButtons(d: Deployment, s: Pick<Session, 'roles'> | undefined): SteeringButton[] {
  if (!may(s, 'steer')) return [];
  const done = finished(d);
  const canary = runningCanary(d);
  const canaryWhy = done
    ? `already ${d.status}`
    : d.cancellation
      ? 'being cancelled'
      : canary
        ? undefined
        : 'only a running canary can be paused, resumed or promoted';
  return [
    { action: 'cancel', label: 'Cancel', disabledReason: done ? `already ${d.status}` : undefined },
    { action: 'pause', label: 'Pause', disabledReason: canaryWhy ?? (d.hold ? 'already paused' : undefined) },
    { action: 'resume', label: 'Resume', disabledReason: d.hold ? canaryWhy : 'not paused' },
    { action: 'promote', label: 'Promote', disabledReason: canaryWhy ?? (d.hold ? 'paused: resume first' : undefined) },
    {
      action: 'rollback',
      label: 'Roll back',
      disabledReason: !done
        ? 'still running (a failing deployment rolls back by itself)'
        : d.rollback?.status === 'Running'
          ? 'a rollback is running'
          : d.status === 'RolledBack'
            ? 'already rolled back'
            : undefined,
    },
  ];
}

export interface WaveMetric {
  metric: string;
  unit?: string;
  means?: { baseline?: number; canary?: number };
  pValue?: number;
  verdict?: string;
  changePercent?: number;
  limitPercent?: number;
}

export interface Wave {
  wave: number;
  percent: number;
  nodes: number;
  passed: boolean;
  summary?: string;
  metrics: WaveMetric[];
  at?: string;
}

/** The canary waves a stage's details record (`wave1`, `wave2`, …), in order. */
export function wavesOf(details: Stage['details']): Wave[] {
  if (!details) return [];
  return Object.keys(details)
    .filter((k) => /^wave\d+$/.test(k))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
    .map((k) => details[k] as Wave)
    .filter((w) => w && typeof w.wave === 'number')
    .map((w) => ({ ...w, metrics: Array.isArray(w.metrics) ? w.metrics : [] }));
}

/** One chart per metric: x = wave number, baseline mean and canary mean (uPlot's columnar data). */
export interface WaveChart {
  metric: string;
  unit: string;
  waves: number[];
  baseline: (number | null)[];
  canary: (number | null)[];
  /** The last wave's verdict for the metric. */
  verdict?: string;
}

export function waveCharts(waves: Wave[]): WaveChart[] {
  const byMetric = new Map<string, WaveChart>();
  for (const w of waves) {
    for (const m of w.metrics) {
      let c = byMetric.get(m.metric);
      if (!c) {
        c = { metric: m.metric, unit: m.unit ?? '', waves: [], baseline: [], canary: [] };
        byMetric.set(m.metric, c);
      }
      c.waves.push(w.wave);
      c.baseline.push(typeof m.means?.baseline === 'number' ? m.means.baseline : null);
      c.canary.push(typeof m.means?.canary === 'number' ? m.means.canary : null);
      c.verdict = m.verdict;
    }
  }
  return [...byMetric.values()];
}

export interface EnvironmentView {
  environment: Cluster['environment'];
  strategy: Cluster['strategy'];
  requiresApproval: boolean;
  nodes: number;
  healthy: number;
  unhealthy: number;
  converging: number;
  anomalous: number;
  /** Nodes without a health report yet (health is checked when a deployment reaches them). */
  unreported: number;
  /**
   * bad: unhealthy nodes or a degraded module; warn: converging or anomalous nodes; unknown: no
   * node has reported its health yet; ok: otherwise.
   */
  health: 'ok' | 'warn' | 'bad' | 'unknown';
  /** Each module's versions, most nodes first. */
  modules: { module: string; versions: { version: string; nodes: number }[]; desired?: string }[];
  colour?: { active: 'blue' | 'green'; blue: number; green: number };
  canaryPercent?: number;
  degradedModules: string[];
}

export function environmentView(c: Cluster): EnvironmentView {
  const modules = Object.entries(c.moduleVersions)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([module, versions]) => ({
      module,
      versions: Object.entries(versions)
        .map(([version, nodes]) => ({ version, nodes }))
        .sort((a, b) => b.nodes - a.nodes || b.version.localeCompare(a.version)),
      desired: (c.desiredModules[module] as { version?: string } | undefined)?.version,
    }));
  const degradedModules = Object.keys(c.degradedModules ?? {});
  const unreported = Math.max(0, c.nodeCount - c.healthyNodes - c.unhealthyNodes - c.convergingNodes);
  const health =
    c.unhealthyNodes > 0 || c.degraded
      ? 'bad'
      : c.convergingNodes > 0 || c.anomalousNodes > 0
        ? 'warn'
        : c.nodeCount > 0 && c.healthyNodes === 0
          ? 'unknown'
          : 'ok';
  return {
    environment: c.environment,
    strategy: c.strategy,
    requiresApproval: c.requiresApproval,
    nodes: c.nodeCount,
    healthy: c.healthyNodes,
    unhealthy: c.unhealthyNodes,
    converging: c.convergingNodes,
    anomalous: c.anomalousNodes,
    unreported,
    health,
    modules,
    colour: c.activeColour && c.colours ? { active: c.activeColour, ...c.colours } : undefined,
    canaryPercent: c.traffic.canary?.percent,
    degradedModules,
  };
}

/** Whether this session may decide the gate, and why not (the API enforces the same rules). */
export function decisionRight(
  a: Pick<Approval, 'status' | 'approvers' | 'requestedBy' | 'decisions'>,
  s: Pick<Session, 'roles' | 'sub'> | undefined,
): {
  may: boolean;
  why?: string;
} {
  if (!s) return { may: false, why: 'not signed in' };
  if (a.status !== 'Pending') return { may: false, why: `already ${a.status}` };
  if (!may(s, 'decide')) return { may: false, why: 'only Approvers and Admins decide' };
  if (a.requestedBy === s.sub) return { may: false, why: 'nobody approves their own deployment' };
  if (a.decisions.some((d) => d.approver === s.sub)) return { may: false, why: 'you have decided already' };
  if (!s.roles.includes('Admin') && !a.approvers.includes(s.sub)) return { may: false, why: 'you are not an approver of this environment' };
  return { may: true };
}

/** Who may decide, in words: the listed approvers, and Admins. */
export function whoMayDecide(a: Pick<Approval, 'approvers' | 'quorum'>): string {
  const list = a.approvers.length ? a.approvers.join(', ') : 'no listed approver';
  return `${list} or an Admin${a.quorum > 1 ? ` (${a.quorum} approvals needed)` : ''}`;
}

export interface AuditForm {
  deploymentId?: string;
  subject?: string;
  category?: string;
  actor?: string;
  traceId?: string;
  /** datetime-local values (the browser's local time) or ISO strings. */
  from?: string;
  to?: string;
  order?: 'newest' | 'oldest';
}

const AUDIT_CATEGORIES = ['deployment', 'stage', 'node', 'module', 'approval', 'security', 'config'] as const;
export type AuditCategory = (typeof AUDIT_CATEGORIES)[number];
export { AUDIT_CATEGORIES };

/** The GET /api/v1/audit query of the search form: blanks dropped, local times as ISO instants. */
export function auditQuery(f: AuditForm): {
  deploymentId?: string;
  subject?: string;
  category?: AuditCategory;
  actor?: string;
  traceId?: string;
  from?: string;
  to?: string;
  order?: 'newest' | 'oldest';
} {
  const t = (v?: string) => (v?.trim() ? v.trim() : undefined);
  const instant = (v?: string) => {
    const s = t(v);
    if (!s) return undefined;
    const d = new Date(s);
    if (Number.isNaN(d.getTime())) throw new Error(`"${s}" is not a date and time`);
    return d.toISOString();
  };
  const category = t(f.category);
  if (category && !(AUDIT_CATEGORIES as readonly string[]).includes(category)) throw new Error(`unknown category ${category}`);
  const q = {
    deploymentId: t(f.deploymentId),
    subject: t(f.subject),
    category: category as AuditCategory | undefined,
    actor: t(f.actor),
    traceId: t(f.traceId),
    from: instant(f.from),
    to: instant(f.to),
    order: f.order,
  };
  return Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined));
}

/** A live event of docs/asyncapi.json, as far as the console reads it. */
export interface LiveEvent {
  type: string;
  seq?: number;
  at?: string;
  deploymentId?: string;
  environment?: string;
  status?: string;
}

/**
 * The events a client has seen: each seq once (a replay and live delivery overlap on purpose,
 * docs/adr/0028), and the last seq to resume from after a reconnect.
 */
export class EventLog {
  lastSeq: number | undefined;
  private readonly seen = new Set<number>();

  /** True when the event is new (not a seq already taken). Control messages without a seq count as new. */
  accept(e: LiveEvent): boolean {
    if (typeof e.seq !== 'number') return true;
    if (e.type === 'subscribed' || e.type === 'ping') {
      this.lastSeq = Math.max(this.lastSeq ?? 0, e.seq);
      return false;
    }
    if (this.seen.has(e.seq)) return false;
    this.seen.add(e.seq);
    if (this.seen.size > 5000) this.seen.delete(this.seen.values().next().value as number);
    this.lastSeq = Math.max(this.lastSeq ?? 0, e.seq);
    return true;
  }
}

/** Whether a page showing these things must reload for this event. */
export function concerns(e: LiveEvent, page: { deploymentId?: string; deployments?: boolean; clusters?: boolean; approvals?: boolean }): boolean {
  if (page.deploymentId && e.deploymentId === page.deploymentId) return true;
  if (page.deployments && e.type.startsWith('deployment.')) return true;
  if (page.approvals && e.type.startsWith('approval.')) return true;
  if (page.clusters && (e.type === 'node.status' || e.type === 'cluster.metrics' || e.type === 'deployment.status')) return true;
  return false;
}

export function durationText(ms: number | undefined): string {
  if (ms === undefined) return '';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s} s`;
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}
