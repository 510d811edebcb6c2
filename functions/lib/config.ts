/** Settings that handlers read from their environment, with the product's documented defaults. */
import type { StabilisationSettings } from '../domain/stabilisation.ts';
import { type AnomalySettings, checkAnomalySettings, DEFAULT_ANOMALY_SETTINGS } from '../domain/anomaly.ts';
import { type AlarmRule, parseAlarms } from '../domain/alarms.ts';
import type { Environment } from '../domain/environments.ts';
import { DEFAULT_DEADLINE_WARNING_SECONDS } from '../domain/approvalDeadlines.ts';
import { parseSources } from './revocationLists.ts';
import { type AuditCategory, resolveAuditRetention } from '../domain/auditRetention.ts';

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n)) throw new Error(`${name} must be a number, got "${raw}"`);
  return n;
}

function required(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

export const config = {
  pipelineStateMachineArn: () => required('PIPELINE_STATE_MACHINE_ARN'),
  rollbackStateMachineArn: () => required('ROLLBACK_STATE_MACHINE_ARN'),
  artifactBucket: () => required('ARTIFACT_BUCKET'),
  /** The bucket the audit trail is exported to as daily JSON Lines (lib/auditExport.ts). */
  auditExportBucket: () => required('AUDIT_EXPORT_BUCKET'),
  /** PEM bundle of trusted module-signing roots. */
  trustedRootsPem: () => required('TRUSTED_ROOTS_PEM'),
  /** Comma-separated revoked certificate serial numbers (hex). */
  revokedSerials: () =>
    (process.env.REVOKED_CERT_SERIALS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  /**
   * Comma-separated CRL sources the Security scan must consult (http(s) or file URLs), besides the
   * distribution points named in the signer's certificates.
   */
  revocationListUrls: () => parseSources(process.env.REVOCATION_LIST_URLS),
  /** Nodes per Lambda invocation when deploying; keeps Step Functions history proportional to batches. */
  nodesPerBatch: () => num('NODES_PER_BATCH', 50),
  /** Concurrent agent calls inside one batch. */
  agentConcurrency: () => num('AGENT_CONCURRENCY', 16),
  agentTimeoutMs: () => num('AGENT_TIMEOUT_MS', 10_000),
  heartbeatMaxAgeSeconds: () => num('HEALTH_HEARTBEAT_MAX_AGE_SECONDS', 120),
  healthMaxCpuPercent: () => num('HEALTH_MAX_CPU_PERCENT', 90),
  healthMaxMemoryPercent: () => num('HEALTH_MAX_MEMORY_PERCENT', 90),
  healthMaxErrorRatePercent: () => num('HEALTH_MAX_ERROR_RATE_PERCENT', 5),
  idempotencyTtlSeconds: () => num('IDEMPOTENCY_TTL_SECONDS', 86_400),
  /**
   * Days the Audit table keeps an event of this category (TTL): AUDIT_RETENTION_DAYS_<CATEGORY>,
   * else AUDIT_RETENTION_DAYS, else the category's default (domain/auditRetention.ts). Bad settings throw.
   */
  auditRetentionDays: (category: AuditCategory) => resolveAuditRetention(process.env)[category],
  /** GET /api/v1/audit/verify checks at most this many events per request: a larger range is refused (422). */
  auditVerifyMaxEvents: () => num('AUDIT_VERIFY_MAX_EVENTS', 20_000),
  /** Refused calls are audited as one event per caller (or address), kind and window of this length. */
  denialAuditWindowSeconds: () => num('DENIAL_AUDIT_WINDOW_SECONDS', 300),
  /** Nodes per batch in a Rolling deployment (a health check follows each batch). */
  rollingBatchSize: () => num('ROLLING_BATCH_SIZE', 2),
  /** Rolling batches are widened so that no environment needs more than this many (history limit). */
  maxSequentialBatches: () => num('MAX_SEQUENTIAL_BATCHES', 500),
  smokeTestTimeoutSeconds: () => num('SMOKE_TEST_TIMEOUT_SECONDS', 300),
  /**
   * Blue-Green: how long after a switch the old colour is guaranteed to stand for an instant
   * switch-back (Argo's scaleDownDelaySeconds; docs/adr/0020-traffic-routers.md). Recorded on the stage.
   */
  blueGreenSwitchBackSeconds: () => {
    const s = num('BLUE_GREEN_SWITCH_BACK_SECONDS', 3600);
    if (!(s >= 0)) throw new Error(`BLUE_GREEN_SWITCH_BACK_SECONDS (${s}) must be ≥ 0`);
    return s;
  },
  /** Cumulative canary waves, in percent of the environment's nodes. */
  canaryWaves: () => (process.env.CANARY_WAVES ?? '10,30,50,100').split(',').map((s) => Number(s.trim())),
  canaryBakeSeconds: () => num('CANARY_BAKE_SECONDS', 900),
  /**
   * With a weighted traffic router, the fewest requests a canary wave is judged on: a wave that
   * has baked but served fewer bakes on until it has, or until CANARY_MAX_BAKE_SECONDS (0: off).
   */
  canaryMinWaveRequests: () => num('CANARY_MIN_WAVE_REQUESTS', 0),
  /** The longest a wave bakes while it waits for CANARY_MIN_WAVE_REQUESTS (default: twice the bake). */
  canaryMaxBakeSeconds: () => num('CANARY_MAX_BAKE_SECONDS', 2 * num('CANARY_BAKE_SECONDS', 900)),
  /**
   * Longest wait between two looks of the canary's bake gate at the deployment (a pause, resume or
   * promote takes effect within this long; docs/adr/0019-steering-running-deployments.md).
   */
  canaryPollSeconds: () => num('CANARY_POLL_SECONDS', 30),
  /** How long a cancel request waits for the reconciler to settle the stopped deployment before it answers. */
  cancelSettleWaitMs: () => num('CANCEL_SETTLE_WAIT_MS', 5000),
  /** What a paused canary does when its hold's deadline passes, unless the pause says: resume or rollback. */
  canaryHoldDeadlineAction: () => (process.env.CANARY_HOLD_DEADLINE_ACTION === 'rollback' ? 'rollback' : 'resume') as 'resume' | 'rollback',
  canaryThresholds: () => ({
    errorRatePercent: num('CANARY_MAX_ERROR_RATE_INCREASE_PERCENT', 50),
    latencyPercent: num('CANARY_MAX_LATENCY_INCREASE_PERCENT', 100),
    cpuPercent: num('CANARY_MAX_CPU_INCREASE_PERCENT', 30),
    memoryPercent: num('CANARY_MAX_MEMORY_INCREASE_PERCENT', 30),
  }),
  /** Smallest absolute changes that can fail a canary: noise below these never does. */
  canaryMinimumDeltas: () => ({
    errorRatePercent: num('CANARY_MIN_ERROR_RATE_DELTA', 0.5),
    latencyMs: num('CANARY_MIN_LATENCY_DELTA_MS', 5),
    cpuPercent: num('CANARY_MIN_CPU_DELTA', 5),
    memoryPercent: num('CANARY_MIN_MEMORY_DELTA', 5),
  }),
  /**
   * Adaptive stabilisation before each canary judgement (docs/adr/0023-adaptive-stabilisation.md):
   * poll until the last STABILISE_POLLS batch averages agree within the tolerances, after at least
   * the minimum and at most the maximum wait. Whole seconds (they become Step Functions Waits).
   */
  stabilisation: (): StabilisationSettings => {
    const minSeconds = num('STABILISE_MIN_SECONDS', 120);
    const maxSeconds = num('STABILISE_MAX_SECONDS', 1800);
    if (!(minSeconds >= 0 && maxSeconds >= minSeconds))
      throw new Error(`STABILISE_MAX_SECONDS (${maxSeconds}) must be at least STABILISE_MIN_SECONDS (${minSeconds}) ≥ 0`);
    return {
      minSeconds,
      maxSeconds,
      pollSeconds: Math.max(1, Math.round(num('STABILISE_POLL_SECONDS', 30))),
      polls: Math.max(2, Math.round(num('STABILISE_POLLS', 3))),
      tolerancePercent: {
        cpuPercent: num('STABILISE_CPU_TOLERANCE_PERCENT', 10),
        memoryPercent: num('STABILISE_MEMORY_TOLERANCE_PERCENT', 10),
        latencyMs: num('STABILISE_LATENCY_TOLERANCE_PERCENT', 15),
      },
    };
  },
  /** Alarms per environment (ALARMS, JSON; functions/domain/alarms.ts): firing during a canary bake stops and rolls back. */
  alarms: (environment: Environment): AlarmRule[] => parseAlarms(process.env.ALARMS, environment),
  /**
   * Confidence of the canary's statistical judge (docs/adr/0022-statistical-canary-judge.md): a
   * wave whose canary differs from its baseline by noise alone passes with at least this chance.
   */
  canaryConfidence: () => {
    const c = num('CANARY_CONFIDENCE', 0.99);
    if (!(c >= 0.5 && c < 1)) throw new Error(`CANARY_CONFIDENCE must be in [0.5, 1), got ${c}`);
    return c;
  },
  /**
   * Lease of a deployment lock for one step: the running execution renews it at every long step
   * (longest: a 15-minute task), adding the bake or the gate wait that follows (domain/locks.ts).
   */
  lockLeaseSeconds: () => num('LOCK_LEASE_SECONDS', 1200),
  /** How long an approval gate waits before it rejects the deployment, per environment. */
  approvalTimeoutSeconds: (environment: string) => num(`APPROVAL_TIMEOUT_SECONDS_${environment.toUpperCase()}`, num('APPROVAL_TIMEOUT_SECONDS', 86_400)),
  /**
   * How long before its deadline a Pending approval counts as near it (WatchApprovalDeadlines, the
   * ApprovalsNearDeadline metric and its alarm; docs/runbooks/alarms.md).
   */
  approvalDeadlineWarningSeconds: () => {
    const s = num('APPROVAL_DEADLINE_WARNING_SECONDS', DEFAULT_DEADLINE_WARNING_SECONDS);
    if (!(s > 0)) throw new Error(`APPROVAL_DEADLINE_WARNING_SECONDS must be a positive number of seconds, got ${s}`);
    return s;
  },
  /** Distinct approvals an environment needs (e.g. 2 for Production). */
  approvalQuorum: (environment: string) => num(`APPROVAL_QUORUM_${environment.toUpperCase()}`, 1),
  /** Approver user ids per environment, JSON: {"Staging":["id",…],"Production":[…]}. Admins may always decide. */
  approvers: (environment: string): string[] => {
    const raw = process.env.APPROVERS ?? '{}';
    const parsed = JSON.parse(raw) as Record<string, string[]>;
    return parsed[environment] ?? [];
  },
  /**
   * How long a caller's directory entry (roles, enabled) is remembered by the authorizer: a role
   * removed or a principal disabled takes effect within this many seconds, whatever the token says.
   */
  directoryCacheSeconds: () => num('DIRECTORY_CACHE_SECONDS', 5),
  /** Longest accepted bearer-token lifetime, exp − iat (Cognito's longest access token is 24 h). */
  tokenMaxLifetimeSeconds: () => num('TOKEN_MAX_LIFETIME_SECONDS', 86_400),
  /** How far in the future a token's iat may be (issuer clock ahead of ours). */
  tokenClockSkewSeconds: () => num('TOKEN_CLOCK_SKEW_SECONDS', 60),
  /** Base URL of the public API, for links in emails. */
  publicApiUrl: () => required('PUBLIC_API_URL'),
  approverTopicArn: () => required('APPROVER_TOPIC_ARN'),
  notificationTopicArn: () => required('NOTIFICATION_TOPIC_ARN'),
  /** An enrolled node is Unreachable after this many of its heartbeat intervals without one. */
  missedHeartbeats: () => num('NODE_MISSED_HEARTBEATS', 3),
  /** The WebSocket URL dial-out agents connect to (answered at enrolment); unset: dial-out is not offered. */
  agentWsUrl: (): string | undefined => process.env.AGENT_WS_URL || undefined,
  /** The API Gateway management API endpoint of that WebSocket API (https://…/<stage>; locally http://…/ws). */
  wsManagementEndpoint: () => required('WS_MANAGEMENT_ENDPOINT'),
  /** Live events are kept this long for replay by `after` (docs/adr/0028-live-events.md); older ones expire by TTL. */
  eventRetentionHours: () => num('EVENT_RETENTION_HOURS', 24),
  /** Most events one replay (`subscribe` with `after`) sends; a client further behind reloads the state over REST. */
  eventReplayLimit: () => num('EVENT_REPLAY_LIMIT', 1000),
  /** Posts to operators' connections in flight at once during a fan-out. */
  eventFanOutConcurrency: () => num('EVENT_FANOUT_CONCURRENCY', 32),
  /** First wait between polls for a dial-out agent's reply; it grows to 4× this. */
  agentReplyPollMs: () => num('AGENT_REPLY_POLL_MS', 50),
  /**
   * How long a node's previous key is still honoured after a rotation promoted its successor. It
   * must exceed the longest time an agent-calling task may sign with a node record it read before
   * the promotion: the longest such function timeout (900 s, test/unit/domain/nodeKeyRotation.test.ts).
   */
  nodeKeyOverlapSeconds: () => num('NODE_KEY_OVERLAP_SECONDS', 900),
  /** The scheduled pass starts a rotation of every node key older than this. */
  nodeKeyMaxAgeSeconds: () => num('NODE_KEY_MAX_AGE_SECONDS', 30 * 86_400),
  /** Hosts or CIDRs that agent addresses must fall in (SSRF guard). */
  agentAllowedHosts: () =>
    (process.env.AGENT_ALLOWED_HOSTS ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
};

/** The node health limits shared by the batch health checks and the final Validation stage. */
export function healthThresholds() {
  return {
    maxCpuPercent: config.healthMaxCpuPercent(),
    maxMemoryPercent: config.healthMaxMemoryPercent(),
    maxErrorRatePercent: config.healthMaxErrorRatePercent(),
    maxHeartbeatAgeSeconds: config.heartbeatMaxAgeSeconds(),
  };
}

/** Anomaly detection on nodes (domain/anomaly.ts, docs/adr/0025-node-anomaly-detection.md). */
export function anomalySettings(): AnomalySettings {
  const d = DEFAULT_ANOMALY_SETTINGS;
  const s: AnomalySettings = {
    alpha: num('ANOMALY_ALPHA', d.alpha),
    sigmas: num('ANOMALY_SIGMAS', d.sigmas),
    clearSigmas: num('ANOMALY_CLEAR_SIGMAS', d.clearSigmas),
    minSamples: num('ANOMALY_MIN_SAMPLES', d.minSamples),
    minDeviation: d.minDeviation,
  };
  const problems = checkAnomalySettings(s);
  if (problems.length) throw new Error(problems.join('; '));
  return s;
}
