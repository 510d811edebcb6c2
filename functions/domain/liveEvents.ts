/**
 * Operators' live events over the WebSocket API (issue 11 item 2, docs/adr/0028-live-events.md):
 * what a client may send, what the server sends, how table changes become events, who may read
 * which event, and which subscription an event matches. Pure: no I/O.
 */
import { z } from 'zod';
import { ROUTES } from '../catalog.ts';
import { DEPLOYMENT_STATUSES, type DeploymentRecord, type StageRecord } from './deployment.ts';
import { ENVIRONMENTS, type Environment } from './environments.ts';
import type { Role } from './roles.ts';

export const EVENT_TYPES = ['deployment.status', 'deployment.stage', 'approval.requested', 'approval.decided', 'node.status', 'cluster.metrics'] as const;
export type EventType = (typeof EVENT_TYPES)[number];

/**
 * Each event type is readable by whoever may call the GET route that reads the same data (the
 * catalog's authorization matrix, so the two cannot drift apart).
 */
export const EVENT_READ_ROUTE: Record<EventType, string> = {
  'deployment.status': '/api/v1/deployments/{executionId}',
  'deployment.stage': '/api/v1/deployments/{executionId}',
  'approval.requested': '/api/v1/approvals/deployments/{executionId}',
  'approval.decided': '/api/v1/approvals/deployments/{executionId}',
  'node.status': '/api/v1/clusters/{environment}',
  'cluster.metrics': '/api/v1/clusters/{environment}/metrics',
};

export function readersOf(type: EventType): readonly Role[] {
  const route = ROUTES.find((r) => r.method === 'GET' && r.path === EVENT_READ_ROUTE[type]);
  if (!route || route.roles === 'public') throw new Error(`no GET ${EVENT_READ_ROUTE[type]} route guards ${type}`);
  return route.roles;
}

export function mayRead(roles: readonly string[], type: EventType): boolean {
  const readers = readersOf(type);
  return roles.some((r) => (readers as readonly string[]).includes(r));
}

/** An event before it is numbered: the fan-out gives it `seq` when it stores it. */
export interface LiveEventBody {
  type: EventType;
  /** When the change happened (the changed record's time where it has one). */
  at: string;
  deploymentId?: string;
  environment?: Environment;
  [key: string]: unknown;
}

/** What a client receives: `seq` increases along the one global stream every event is part of. */
export type LiveEvent = LiveEventBody & { seq: number };

// ---- client messages -------------------------------------------------------------------------

const seqSchema = z.number().int().nonnegative();
export const clientMessageSchema = z
  .object({
    action: z.enum(['subscribe', 'unsubscribe']),
    deploymentId: z.string().min(1).max(200).optional(),
    environment: z.enum(ENVIRONMENTS).optional(),
    all: z.literal(true).optional(),
    after: seqSchema.optional(),
  })
  .strict()
  .refine((m) => [m.deploymentId, m.environment, m.all].filter((v) => v !== undefined).length === 1, {
    message: 'name exactly one of deploymentId, environment or all: true',
  })
  .refine((m) => m.action === 'subscribe' || m.after === undefined, { message: '"after" applies to subscribe only' });

export type ClientMessage = z.infer<typeof clientMessageSchema>;

/** A subscription as stored on the connection: `all`, `deployment#<id>` or `environment#<name>`. */
export type SubscriptionKey = string;

export function subscriptionKey(m: Pick<ClientMessage, 'deploymentId' | 'environment' | 'all'>): SubscriptionKey {
  if (m.all) return 'all';
  if (m.deploymentId !== undefined) return `deployment#${m.deploymentId}`;
  return `environment#${m.environment}`;
}

export type ParsedMessage = { ok: true; message: ClientMessage; subscription: SubscriptionKey } | { ok: false; code: 'BadMessage'; message: string };

/** Parse a client's message; a bad one is answered with an error frame and the connection stays. */
export function parseClientMessage(text: string): ParsedMessage {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, code: 'BadMessage', message: 'the message is not JSON' };
  }
  const r = clientMessageSchema.safeParse(json);
  if (!r.success) {
    const issue = r.error.issues[0];
    return { ok: false, code: 'BadMessage', message: `${issue.path.length ? `${issue.path.join('.')}: ` : ''}${issue.message}` };
  }
  return { ok: true, message: r.data, subscription: subscriptionKey(r.data) };
}

/** Does an event belong to any of these subscriptions? */
export function matches(subscriptions: Iterable<SubscriptionKey>, e: Pick<LiveEventBody, 'deploymentId' | 'environment'>): boolean {
  for (const s of subscriptions) {
    if (s === 'all') return true;
    if (e.deploymentId !== undefined && s === `deployment#${e.deploymentId}`) return true;
    if (e.environment !== undefined && s === `environment#${e.environment}`) return true;
  }
  return false;
}

/** Whether a client with these roles and subscriptions receives the event. */
export function delivers(roles: readonly string[], subscriptions: Iterable<SubscriptionKey>, e: LiveEventBody): boolean {
  return mayRead(roles, e.type) && matches(subscriptions, e);
}

// ---- table changes → events ------------------------------------------------------------------

const STATUS = z.enum(DEPLOYMENT_STATUSES);

type Stages = Record<
  string,
  StageRecord & { approval?: { status?: string; decisions?: unknown[]; approvers?: unknown; quorum?: unknown; deadline?: unknown } }
>;

/** The stage fields that make up its progress: a change to any of them is a `deployment.stage` event. */
const STAGE_PROGRESS = ['status', 'nodesTotal', 'nodesDeployed', 'nodesFailed', 'nodesRolledBack', 'message'] as const;

function stageProgress(s: StageRecord & { details?: Record<string, unknown> }) {
  const details = s.details ?? {};
  // Canary waves and batches as the strategies record them (details.waves / details.batches), when they do.
  const waves = Array.isArray(details.waves) ? details.waves.length : undefined;
  return {
    stage: s.name,
    status: s.status,
    ...(s.environment ? { environment: s.environment } : {}),
    ...(s.strategy ? { strategy: s.strategy } : {}),
    nodesTotal: s.nodesTotal,
    nodesDeployed: s.nodesDeployed,
    nodesFailed: s.nodesFailed,
    nodesRolledBack: s.nodesRolledBack,
    ...(waves !== undefined ? { waves } : {}),
    ...(s.message ? { message: s.message } : {}),
  };
}

function changed(a: object | undefined, b: object | undefined, keys: readonly string[]): boolean {
  return keys.some((k) => JSON.stringify((a as Record<string, unknown> | undefined)?.[k]) !== JSON.stringify((b as Record<string, unknown> | undefined)?.[k]));
}

/**
 * The events one change of a deployment record makes (old and new images of the Deployments
 * table's stream): its status, each stage whose progress moved, and approval gates opened or
 * decided. Stages come before the status, so a stage's `Succeeded` precedes the deployment's.
 */
export function eventsFromDeploymentChange(oldImage: Partial<DeploymentRecord> | undefined, newImage: Partial<DeploymentRecord> | undefined): LiveEventBody[] {
  if (!newImage?.executionId) return [];
  const deploymentId = newImage.executionId;
  const at = newImage.updatedAt ?? newImage.createdAt ?? new Date().toISOString();
  const environment = newImage.targetEnvironment;
  const base = { at, deploymentId, ...(environment ? { environment } : {}) };
  const out: LiveEventBody[] = [];
  const oldStages = (oldImage?.stages ?? {}) as Stages;
  const newStages = (newImage.stages ?? {}) as Stages;
  const order = newImage.stageOrder?.length ? newImage.stageOrder : Object.keys(newStages);
  for (const name of order) {
    const s = newStages[name];
    if (!s) continue;
    const before = oldStages[name];
    if (oldImage && changed(before, s, STAGE_PROGRESS)) out.push({ type: 'deployment.stage', ...base, ...stageProgress(s) });
    const a = s.approval;
    const b = before?.approval;
    if (a?.status === 'Pending' && b?.status !== 'Pending') {
      out.push({
        type: 'approval.requested',
        ...base,
        ...(s.environment ? { environment: s.environment } : {}),
        stage: name,
        approvers: a.approvers,
        quorum: a.quorum,
        deadline: a.deadline,
      });
    } else if (a && b?.status === 'Pending' && (a.status !== b.status || (a.decisions?.length ?? 0) !== (b.decisions?.length ?? 0))) {
      // Each decision (a quorum above one decides in steps: status still Pending) and the outcome.
      out.push({
        type: 'approval.decided',
        ...base,
        ...(s.environment ? { environment: s.environment } : {}),
        stage: name,
        status: a.status,
        decisions: a.decisions,
      });
    }
  }
  const status = STATUS.safeParse(newImage.status);
  if (status.success && oldImage?.status !== newImage.status) {
    out.push({
      type: 'deployment.status',
      ...base,
      status: status.data,
      ...(oldImage?.status ? { previousStatus: oldImage.status } : {}),
      moduleName: newImage.moduleName,
      version: newImage.version,
      ...(newImage.failure ? { failure: newImage.failure } : {}),
    });
  }
  return out;
}

/** The parts of a node record a `node.status` event carries (the cluster view's columns). */
export interface NodeImage {
  environment?: Environment;
  nodeId?: string;
  colour?: string;
  modules?: Record<string, { version: string }>;
  lastHealth?: { status?: string; reasons?: unknown; at?: string };
  decommissionedAt?: string;
  connection?: { connectionId: string };
  lastSeenAt?: string;
}

function nodeView(n: NodeImage) {
  return {
    nodeId: n.nodeId,
    health: n.lastHealth?.status ?? 'unknown',
    modules: Object.fromEntries(Object.entries(n.modules ?? {}).map(([m, v]) => [m, v.version])),
    ...(n.colour ? { colour: n.colour } : {}),
    ...(n.decommissionedAt ? { decommissioned: true } : {}),
    ...(n.connection !== undefined ? { connected: true } : {}),
  };
}

/**
 * A node's change is an event when what the cluster view shows of it changed (health, versions,
 * colour, joined, left or decommissioned) — not for heartbeats and metrics alone, which change the
 * record every few seconds.
 */
export function eventFromNodeChange(oldImage: NodeImage | undefined, newImage: NodeImage | undefined, now = new Date()): LiveEventBody | undefined {
  const n = newImage ?? oldImage;
  if (!n?.environment || !n.nodeId) return undefined;
  if (!newImage) return { type: 'node.status', at: now.toISOString(), environment: n.environment, nodeId: n.nodeId, removed: true };
  const before = oldImage ? JSON.stringify(nodeView(oldImage)) : undefined;
  const view = nodeView(newImage);
  if (before === JSON.stringify(view)) return undefined;
  return { type: 'node.status', at: newImage.lastHealth?.at ?? now.toISOString(), environment: n.environment, ...view };
}

/** An environment's totals after its nodes changed: `cluster.metrics`. */
export function clusterMetrics(environment: Environment, nodes: NodeImage[], now = new Date()): LiveEventBody {
  const live = nodes.filter((n) => !n.decommissionedAt);
  const health: Record<string, number> = {};
  const versions: Record<string, Record<string, number>> = {};
  for (const n of live) {
    const h = n.lastHealth?.status ?? 'unknown';
    health[h] = (health[h] ?? 0) + 1;
    for (const [m, v] of Object.entries(n.modules ?? {})) {
      versions[m] ??= {};
      versions[m][v.version] = (versions[m][v.version] ?? 0) + 1;
    }
  }
  return { type: 'cluster.metrics', at: now.toISOString(), environment, nodes: live.length, health, versions };
}

// ---- seq ---------------------------------------------------------------------------------------

/** Sort keys are strings: seq zero-padded so that string order is number order. */
export const seqKey = (seq: number) => seq.toString().padStart(16, '0');

/** Order and de-duplicate what a client received (a replay and live delivery may overlap). */
export function inSeqOrder<E extends { seq: number }>(events: E[]): E[] {
  const seen = new Map<number, E>();
  for (const e of events) if (!seen.has(e.seq)) seen.set(e.seq, e);
  return [...seen.values()].sort((a, b) => a.seq - b.seq);
}

// ---- server frames (documented in docs/asyncapi.json) -------------------------------------------

export const liveEventSchema = z
  .object({
    type: z.enum(EVENT_TYPES),
    seq: z.number().int().positive().describe('position on the one global event stream; increasing; replay with "after"'),
    at: z.string().describe('ISO 8601 time of the change'),
    deploymentId: z.string().optional(),
    environment: z.enum(ENVIRONMENTS).optional(),
    status: z.string().optional().describe('deployment.status: the new status; deployment.stage: the stage status; approval.decided: the gate status'),
    previousStatus: z.string().optional(),
    stage: z.string().optional(),
    nodesTotal: z.number().optional(),
    nodesDeployed: z.number().optional(),
    nodesFailed: z.number().optional(),
    nodeId: z.string().optional(),
  })
  .passthrough();

export const subscribedSchema = z.object({
  type: z.enum(['subscribed', 'unsubscribed']),
  subscription: z.string().describe('"all", "deployment#<id>" or "environment#<name>"'),
  seq: z.number().int().nonnegative().describe('the latest seq (no after), or the last replayed'),
  replayed: z.number().int().optional(),
  truncated: z.literal(true).optional(),
});

export const errorFrameSchema = z.object({ type: z.literal('error'), code: z.string(), message: z.string() });
export const serverPingSchema = z.object({ type: z.literal('ping'), at: z.string(), seq: z.number().int().nonnegative() });
