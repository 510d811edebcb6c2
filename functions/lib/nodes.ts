import { DeleteCommand, GetCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import type { Environment } from '../domain/environments.ts';
import { batchGetAll, dynamo, queryAll, scanAll } from './aws.ts';
import { tableName } from './tables.ts';
import { mapLimit } from './concurrency.ts';
import type { HealthReport, MetricsReport, ModuleState } from '../agent/protocol.ts';
import type { NodeCredential } from '../domain/nodeCredentials.ts';
import type { RetiredCredential } from '../domain/nodeKeyRotation.ts';
import type { TrackedConvergence } from '../domain/convergence.ts';
import type { NodeAnomalyState } from '../domain/anomaly.ts';
import { anomalyAfterReport, notifyAnomalies } from './anomaly.ts';
import { transactNodeWrite } from './nodeKeys.ts';
import { isConditionFailure as conditionFailed } from './deployments.ts';

export interface NodeRecord {
  environment: Environment;
  nodeId: string;
  /** Base URL of the node's agent; empty for a dial-out node, which is never called at an address. */
  address: string;
  /**
   * How the orchestrator reaches the agent: HTTP requests to `address` (absent or `http`), or
   * commands over the WebSocket the agent keeps open to the orchestrator (`dial-out`).
   */
  transport?: NodeTransport;
  /** Dial-out nodes: the connection commands go over now (set by $connect, removed by $disconnect). */
  connection?: { connectionId: string; connectedAt: string };
  /** Dial-out nodes: the agent's timestamp of the last accepted connect (replay guard). */
  lastConnectTs?: number;
  colour?: 'blue' | 'green';
  /** Where the node's workload answers requests (what a traffic router sends traffic to); a node without one gets no routed traffic. */
  workloadUrl?: string;
  modules: Record<string, { version: string; previousVersion?: string; updatedAt: string }>;
  registeredAt: string;
  lastHealth?: Pick<HealthReport, 'status' | 'reasons' | 'at'>;
  lastMetrics?: MetricsReport;
  /** Rolling baseline and flags per metric (domain/anomaly.ts), moved by every recorded report. */
  anomaly?: NodeAnomalyState;
  /** Enrolled hosts only (functions/lib/enrolment.ts); nodes without it are managed by the fleet. */
  enrolment?: { tokenId: string; enrolledAt: string; heartbeatSeconds: number };
  /** The node's own HMAC key, its secret wrapped (domain/nodeCredentials.ts); removed on decommission. */
  credential?: NodeCredential;
  /** A rotation under way: the next key, delivered in heartbeat answers until the agent signs with it. */
  pendingCredential?: NodeCredential;
  /** The key a rotation replaced, honoured until its `retiredUntil` (domain/nodeKeyRotation.ts). */
  previousCredential?: RetiredCredential;
  labels?: Record<string, string>;
  /** Server time of the last accepted heartbeat, and the agent's timestamp of it (replay guard). */
  lastSeenAt?: string;
  lastHeartbeatTs?: number;
  /** What the agent last reported it runs (the orchestrator's own ledger stays in `modules`). */
  reportedModules?: Record<string, ModuleState>;
  /** Enrolled hosts: convergences to the desired state in progress, by module (functions/lib/convergence.ts). */
  convergence?: Record<string, TrackedConvergence>;
  decommissionedAt?: string;
  decommissionedBy?: string;
}

export const NODE_TRANSPORTS = ['http', 'dial-out'] as const;
export type NodeTransport = (typeof NODE_TRANSPORTS)[number];

export const isDialOut = (n: Pick<NodeRecord, 'transport'>) => n.transport === 'dial-out';

/** Fields a node record may carry that no answer of the API shows. */
export type PresentableNode = Omit<NodeRecord, 'credential' | 'pendingCredential' | 'previousCredential' | 'lastHeartbeatTs' | 'lastConnectTs'>;

/**
 * What a node runs as best known now: its agent's last heartbeat report, except for modules the
 * orchestrator changed after that heartbeat (a deployment or rollback the agent confirmed), whose
 * ledger entry is newer. Without it a node a deployment just rolled back looks "Converging" until
 * its next heartbeat. Fleet-managed nodes send no heartbeats: the ledger is all there is.
 */
export function runningModules(n: Pick<NodeRecord, 'modules' | 'reportedModules' | 'lastSeenAt'>): Record<string, { version: string }> {
  if (!n.reportedModules) return n.modules ?? {};
  const seen = n.lastSeenAt ? Date.parse(n.lastSeenAt) : 0;
  const out: Record<string, { version: string }> = { ...n.reportedModules };
  for (const [module, entry] of Object.entries(n.modules ?? {})) {
    if (Date.parse(entry.updatedAt) > seen) out[module] = entry;
  }
  return out;
}

/** The environment's nodes; decommissioned ones only when asked (nothing may call or target them). */
export async function listNodes(environment: Environment, opts: { includeDecommissioned?: boolean } = {}): Promise<NodeRecord[]> {
  return queryAll<NodeRecord>({
    TableName: tableName('nodes'),
    KeyConditionExpression: 'environment = :e',
    FilterExpression: opts.includeDecommissioned ? undefined : 'attribute_not_exists(decommissionedAt)',
    ExpressionAttributeValues: { ':e': environment },
  });
}

/**
 * Every environment's active nodes in one pass over the table: for the overview, one Scan call
 * (a page per MB) reads what one Query per environment would, in fewer calls and the same
 * capacity units.
 */
export async function listNodesByEnvironment(): Promise<Map<Environment, NodeRecord[]>> {
  const out = new Map<Environment, NodeRecord[]>();
  const items = await scanAll<NodeRecord>({ TableName: tableName('nodes'), FilterExpression: 'attribute_not_exists(decommissionedAt)' });
  for (const n of items) {
    const list = out.get(n.environment) ?? [];
    list.push(n);
    out.set(n.environment, list);
  }
  return out;
}

export async function getNode(environment: Environment, nodeId: string): Promise<NodeRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('nodes'), Key: { environment, nodeId }, ConsistentRead: true }));
  return r.Item as NodeRecord | undefined;
}

/** Several nodes of one environment by id, 100 keys per BatchGetItem (unknown ids are absent). */
export async function getNodes(environment: Environment, nodeIds: string[]): Promise<Map<string, NodeRecord>> {
  const items = await batchGetAll<NodeRecord>(
    tableName('nodes'),
    nodeIds.map((nodeId) => ({ environment, nodeId })),
  );
  return new Map(items.map((n) => [String(n.nodeId), n]));
}

/** Record the version a node now runs (after a deploy or rollback the agent confirmed). */
export async function recordNodeModule(environment: Environment, nodeId: string, module: string, version: string | null, previousVersion?: string) {
  await dynamo().send(new UpdateCommand(moduleUpdate({ environment, nodeId, module, version, previousVersion })));
}

export interface NodeModuleChange {
  environment: Environment;
  nodeId: string;
  module: string;
  version: string | null;
  previousVersion?: string;
}

function moduleUpdate({ environment, nodeId, module, version, previousVersion }: NodeModuleChange) {
  const common = {
    TableName: tableName('nodes'),
    Key: { environment, nodeId },
    ConditionExpression: 'attribute_exists(nodeId)',
    ExpressionAttributeNames: { '#m': module },
  };
  return version === null
    ? { ...common, UpdateExpression: 'REMOVE modules.#m' }
    : {
        ...common,
        UpdateExpression: 'SET modules.#m = :v',
        ExpressionAttributeValues: { ':v': { version, previousVersion, updatedAt: new Date().toISOString() } },
      };
}

/** DynamoDB transactions take at most 100 items. */
const MAX_TRANSACTION_ITEMS = 100;

/**
 * Several nodes' module records (a batch the agents confirmed) in one transaction per 100 nodes
 * rather than one `UpdateItem` each: the same updates, each still conditional on its node
 * existing. A refused or failed transaction (a node gone, another write to one of them at the
 * same moment) wrote nothing; its nodes are then recorded one by one, so only a node whose own update
 * fails gets an error. One change per node. Returns the outcome of each change, in order.
 */
export async function recordNodeModules(changes: NodeModuleChange[]): Promise<PromiseSettledResult<void>[]> {
  const out: PromiseSettledResult<void>[] = [];
  for (let i = 0; i < changes.length; i += MAX_TRANSACTION_ITEMS) {
    const chunk = changes.slice(i, i + MAX_TRANSACTION_ITEMS);
    try {
      if (chunk.length === 1) await recordNodeModule(chunk[0].environment, chunk[0].nodeId, chunk[0].module, chunk[0].version, chunk[0].previousVersion);
      else await transactNodeWrite(chunk.map((c) => ({ Update: moduleUpdate(c) })));
      out.push(...chunk.map(() => ({ status: 'fulfilled' as const, value: undefined })));
    } catch (e) {
      if (chunk.length === 1) {
        out.push({ status: 'rejected', reason: e });
        continue;
      }
      // Nothing of the chunk was written: each node on its own, so one node's failure is only its own.
      out.push(...(await Promise.allSettled(chunk.map((c) => recordNodeModule(c.environment, c.nodeId, c.module, c.version, c.previousVersion)))));
    }
  }
  return out;
}

type HealthSubject = Pick<NodeRecord, 'environment' | 'nodeId' | 'anomaly'>;

/** The conditional update that records a report and the anomaly state it moved the node to. */
function healthUpdate(node: HealthSubject, current: HealthSubject, health: HealthReport, state: NodeAnomalyState) {
  return {
    TableName: tableName('nodes'),
    Key: { environment: node.environment, nodeId: node.nodeId },
    UpdateExpression: 'SET lastHealth = :h, lastMetrics = :m, anomaly = :a',
    ConditionExpression: `attribute_exists(nodeId) AND ${current.anomaly ? 'anomaly.updatedAt = :prev' : 'attribute_not_exists(anomaly)'}`,
    ExpressionAttributeValues: {
      ':h': { status: health.status, reasons: health.reasons, at: health.at },
      ':m': health.metrics,
      ':a': state,
      ...(current.anomaly ? { ':prev': current.anomaly.updatedAt } : {}),
    },
  };
}

/**
 * Record a node's health report, and move its anomaly baseline (lib/anomaly.ts) in the same
 * update. The update is conditional on the baseline the caller read (`node.anomaly`), so two
 * reports recorded at once cannot both judge against the same baseline: the loser re-reads the
 * node and tries again. A report that raises or clears a flag writes its audit events in the same
 * transaction and then notifies the environment's subscribers. Returns the node's anomaly state.
 */
export async function recordNodeHealth(node: HealthSubject, health: HealthReport): Promise<NodeAnomalyState> {
  let current: HealthSubject = node;
  for (let attempt = 0; ; attempt++) {
    const { state, transitions, audits } = anomalyAfterReport(current, health.metrics);
    const update = healthUpdate(node, current, health, state);
    try {
      if (audits.length) await transactNodeWrite([{ Update: update }, ...audits.map((a) => ({ Put: a }))]);
      else await dynamo().send(new UpdateCommand(update));
    } catch (e) {
      if (!conditionFailed(e) || attempt >= 4) throw e;
      // Someone recorded a report meanwhile (or the node is gone: then the re-read says so).
      const fresh = await getNode(node.environment, node.nodeId);
      if (!fresh) throw e;
      current = fresh;
      continue;
    }
    await notifyAnomalies(node.environment, node.nodeId, transitions);
    return state;
  }
}

/**
 * Several nodes' health reports (one per node), as `recordNodeHealth` records each, in fewer
 * calls: the reports that raise or clear no anomaly flag (nothing to audit or notify) go in one
 * transaction per 100 nodes, each update conditional on the baseline read as before; a report
 * that raises or clears a flag is recorded on its own with its audit events in its transaction.
 * A refused transaction (a baseline moved meanwhile, a node gone) wrote nothing: its reports are
 * then recorded one by one by `recordNodeHealth`, which re-reads and judges again. Returns each
 * node's anomaly state (or why it could not be recorded), in order.
 */
export async function recordNodeHealthBatch(reports: { node: HealthSubject; health: HealthReport }[]): Promise<PromiseSettledResult<NodeAnomalyState>[]> {
  const out: PromiseSettledResult<NodeAnomalyState>[] = new Array(reports.length);
  const alone = async (i: number) => {
    try {
      out[i] = { status: 'fulfilled', value: await recordNodeHealth(reports[i].node, reports[i].health) };
    } catch (e) {
      out[i] = { status: 'rejected', reason: e };
    }
  };
  const quiet: { i: number; state: NodeAnomalyState; update: ReturnType<typeof healthUpdate> }[] = [];
  const flagged: number[] = [];
  reports.forEach(({ node, health }, i) => {
    const { state, audits } = anomalyAfterReport(node, health.metrics);
    if (audits.length) flagged.push(i);
    else quiet.push({ i, state, update: healthUpdate(node, node, health, state) });
  });
  const chunks: (typeof quiet)[] = [];
  for (let k = 0; k < quiet.length; k += MAX_TRANSACTION_ITEMS) chunks.push(quiet.slice(k, k + MAX_TRANSACTION_ITEMS));
  const writeChunk = async (chunk: typeof quiet) => {
    if (chunk.length === 1) return alone(chunk[0].i);
    try {
      await transactNodeWrite(chunk.map((q) => ({ Update: q.update })));
      for (const q of chunk) out[q.i] = { status: 'fulfilled', value: q.state };
    } catch {
      // Nothing of the chunk was written: each report on its own (re-read and judged again where its baseline moved).
      for (let j = 0; j < chunk.length; j += HEALTH_WRITES_IN_FLIGHT) await Promise.all(chunk.slice(j, j + HEALTH_WRITES_IN_FLIGHT).map((q) => alone(q.i)));
    }
  };
  // The chunks hold different nodes, so they cannot conflict: a few at once (10,000 nodes are 100 transactions).
  for (const r of await mapLimit(chunks, HEALTH_TRANSACTIONS_IN_FLIGHT, writeChunk)) if (r.status === 'rejected') throw r.reason;
  for (let j = 0; j < flagged.length; j += HEALTH_WRITES_IN_FLIGHT) await Promise.all(flagged.slice(j, j + HEALTH_WRITES_IN_FLIGHT).map(alone));
  return out;
}

/** Reports recorded one by one at once (flagged ones, or a refused transaction's). */
const HEALTH_WRITES_IN_FLIGHT = 8;
/** Transactions of 100 reports in flight at once. */
const HEALTH_TRANSACTIONS_IN_FLIGHT = 4;

/**
 * A node a discovery source (docs/adr/0009-discovery-sources.md) added: `source` names it, and
 * only that source may change or remove the item again.
 */
export interface DiscoveredNodeRecord extends NodeRecord {
  source: string;
  labels?: Record<string, string>;
}

const isConditionFailure = (e: unknown) => (e as { name?: string }).name === 'ConditionalCheckFailedException';

/**
 * Add or update a node on behalf of `source`. Refused (`owner`) when the node exists and another
 * source (or none: a fleet registration, an enrolment) owns it. What the node runs and its last
 * health are kept across updates.
 */
export async function upsertDiscoveredNode(
  node: Pick<DiscoveredNodeRecord, 'environment' | 'nodeId' | 'address' | 'colour' | 'labels' | 'source'>,
  /** What a new node runs (asked only when it is new: an agent call per pass would be wasteful). */
  initialModules: () => Promise<NodeRecord['modules']>,
): Promise<{ outcome: 'added' | 'updated' | 'unchanged'; previous?: DiscoveredNodeRecord } | { outcome: 'owned-elsewhere'; owner: string }> {
  const existing = (await getNode(node.environment, node.nodeId)) as DiscoveredNodeRecord | undefined;
  if (existing && existing.source !== node.source) return { outcome: 'owned-elsewhere', owner: existing.source ?? 'registration' };
  if (
    existing &&
    existing.address === node.address &&
    existing.colour === node.colour &&
    JSON.stringify(existing.labels ?? {}) === JSON.stringify(node.labels ?? {})
  ) {
    return { outcome: 'unchanged', previous: existing };
  }
  const modules = existing ? {} : await initialModules();
  const values: Record<string, unknown> = { ':a': node.address, ':s': node.source, ':l': node.labels ?? {}, ':now': new Date().toISOString(), ':m': modules };
  const sets = ['address = :a', '#source = :s', 'labels = :l', 'registeredAt = if_not_exists(registeredAt, :now)', 'modules = if_not_exists(modules, :m)'];
  if (node.colour) {
    sets.push('colour = :c');
    values[':c'] = node.colour;
  }
  try {
    await dynamo().send(
      new UpdateCommand({
        TableName: tableName('nodes'),
        Key: { environment: node.environment, nodeId: node.nodeId },
        UpdateExpression: `SET ${sets.join(', ')}${node.colour ? '' : ' REMOVE colour'}`,
        // Between the read and this write an enrolment may have claimed the id: it keeps it.
        ConditionExpression: existing ? '#source = :s' : 'attribute_not_exists(nodeId)',
        ExpressionAttributeNames: { '#source': 'source' },
        ExpressionAttributeValues: values,
      }),
    );
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
    const now = (await getNode(node.environment, node.nodeId)) as DiscoveredNodeRecord | undefined;
    return { outcome: 'owned-elsewhere', owner: now?.source ?? 'registration' };
  }
  return existing ? { outcome: 'updated', previous: existing } : { outcome: 'added' };
}

/** Remove a node only if `source` added it; undefined when it is gone already or owned elsewhere. */
export async function removeDiscoveredNode(environment: Environment, nodeId: string, source: string): Promise<DiscoveredNodeRecord | undefined> {
  try {
    const r = await dynamo().send(
      new DeleteCommand({
        TableName: tableName('nodes'),
        Key: { environment, nodeId },
        ConditionExpression: '#source = :s',
        ExpressionAttributeNames: { '#source': 'source' },
        ExpressionAttributeValues: { ':s': source },
        ReturnValues: 'ALL_OLD',
      }),
    );
    return r.Attributes as DiscoveredNodeRecord | undefined;
  } catch (e) {
    if (isConditionFailure(e)) return undefined;
    throw e;
  }
}
