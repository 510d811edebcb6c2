/**
 * The DynamoDB tables, described once: the CDK stack creates them from this list and the local
 * cloud creates the same tables in DynamoDB Local. Every key attribute is a string.
 */
export interface TableIndex {
  name: string;
  partitionKey: string;
  sortKey?: string;
}

export interface TableSpec {
  /** Logical id in CDK and table name in the local cloud. */
  id: string;
  /** Environment variable through which handlers learn the table name. */
  envVar: string;
  partitionKey: string;
  sortKey?: string;
  indexes: TableIndex[];
  /** Stream new and old images (live progress, change data capture). */
  stream: boolean;
}

/** TTL attribute (epoch seconds) on every table: items that set it expire on their own. */
export const TTL_ATTRIBUTE = 'expiresAt';

export const TABLES = {
  deployments: {
    id: 'Deployments',
    envVar: 'DEPLOYMENTS_TABLE',
    partitionKey: 'executionId',
    indexes: [
      // `listKey` is a constant so that one query lists every deployment newest first.
      { name: 'byCreatedAt', partitionKey: 'listKey', sortKey: 'createdAt' },
      { name: 'byModule', partitionKey: 'moduleName', sortKey: 'createdAt' },
    ],
    stream: true,
  },
  idempotency: { id: 'Idempotency', envVar: 'IDEMPOTENCY_TABLE', partitionKey: 'key', indexes: [], stream: false },
  audit: {
    id: 'Audit',
    envVar: 'AUDIT_TABLE',
    partitionKey: 'subject',
    sortKey: 'sk',
    indexes: [
      { name: 'byCategory', partitionKey: 'category', sortKey: 'sk' },
      { name: 'byActor', partitionKey: 'actor', sortKey: 'sk' },
      { name: 'byTrace', partitionKey: 'traceId', sortKey: 'sk' },
    ],
    stream: false,
  },
  // Streamed: node changes become operators' node.status and cluster.metrics events (docs/adr/0028-live-events.md).
  nodes: { id: 'Nodes', envVar: 'NODES_TABLE', partitionKey: 'environment', sortKey: 'nodeId', indexes: [], stream: true },
  modules: { id: 'Modules', envVar: 'MODULES_TABLE', partitionKey: 'moduleName', sortKey: 'version', indexes: [], stream: false },
  /** Approval gates: one item per deployment and gated environment; the task token never leaves it. */
  approvals: {
    id: 'Approvals',
    envVar: 'APPROVALS_TABLE',
    partitionKey: 'executionId',
    sortKey: 'environment',
    indexes: [{ name: 'byStatus', partitionKey: 'status', sortKey: 'requestedAt' }],
    stream: false,
  },
  /** Users and service clients as the product knows them: roles, enabled, who created them. */
  users: { id: 'Principals', envVar: 'USERS_TABLE', partitionKey: 'userId', indexes: [], stream: false },
  /** Fixed-window request counters for rate limits (atomic ADD, expire by TTL). */
  rateLimits: { id: 'RateLimits', envVar: 'RATE_LIMITS_TABLE', partitionKey: 'bucket', indexes: [], stream: false },
  /** Settings changed at run time by Admins (rate limits). */
  settings: { id: 'Settings', envVar: 'SETTINGS_TABLE', partitionKey: 'key', indexes: [], stream: false },
  /** Prometheus counters and histogram buckets, a few shard items (functions/lib/metrics.ts, docs/adr/0027). */
  metrics: { id: 'Metrics', envVar: 'METRICS_TABLE', partitionKey: 'key', indexes: [], stream: false },
  /** Per environment: cluster-wide state such as the live blue-green colour. */
  clusters: { id: 'Clusters', envVar: 'CLUSTERS_TABLE', partitionKey: 'environment', indexes: [], stream: false },
  /** One deployment at a time per module and environment: leased locks. */
  locks: { id: 'Locks', envVar: 'LOCKS_TABLE', partitionKey: 'lockKey', indexes: [], stream: false },
  /** Per deployment and environment: the nodes targeted, their batch, and what each was running. */
  targets: { id: 'DeploymentTargets', envVar: 'TARGETS_TABLE', partitionKey: 'targetKey', sortKey: 'sk', indexes: [], stream: false },
  /** Enrolment tokens: the SHA-256 of each secret, never the secret; expire by TTL. */
  enrolmentTokens: { id: 'EnrolmentTokens', envVar: 'ENROLMENT_TOKENS_TABLE', partitionKey: 'tokenId', indexes: [], stream: false },
  /**
   * Open WebSocket connections by connectionId: `kind` says which client (a dial-out agent, with
   * its nodeId; operators' event subscriptions later). Expire by TTL after API Gateway's 2-hour
   * connection limit, in case a $disconnect never arrives.
   */
  connections: { id: 'Connections', envVar: 'CONNECTIONS_TABLE', partitionKey: 'connectionId', indexes: [], stream: false },
  /**
   * Operators' live events, numbered: `stream` "all" holds every event under `sk` = its seq
   * zero-padded (replay by `after` is one Query); `stream` "#counter" the last seq given out, and
   * `stream` "#source" one item per stream record already numbered (a retried batch adds nothing).
   * Expire by TTL after EVENT_RETENTION_HOURS (docs/adr/0028-live-events.md).
   */
  events: { id: 'Events', envVar: 'EVENTS_TABLE', partitionKey: 'stream', sortKey: 'sk', indexes: [], stream: false },
  /** Commands sent to dial-out agents, by requestId: the node each was for, and its reply once it came; expire by TTL. */
  agentRequests: { id: 'AgentRequests', envVar: 'AGENT_REQUESTS_TABLE', partitionKey: 'requestId', indexes: [], stream: false },
} as const satisfies Record<string, TableSpec>;

export type TableKey = keyof typeof TABLES;

export function tableName(key: TableKey): string {
  const spec: TableSpec = TABLES[key];
  const name = process.env[spec.envVar];
  if (!name) throw new Error(`${spec.envVar} is not set`);
  return name;
}
