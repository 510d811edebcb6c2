/**
 * Every Lambda function, API route and state machine, declared once. The CDK stack builds the
 * AWS resources from these lists; the local cloud serves the very same handlers, routes and ASL.
 */
import type { TableKey } from './lib/tables.ts';
import { READERS, type Role } from './domain/roles.ts';
import { ENVIRONMENT_PROFILES, ENVIRONMENTS } from './domain/environments.ts';
import { EXECUTION_STATUS_CHANGE, type EXECUTION_STATUSES } from './domain/executionStatus.ts';
import { strategies, strategyFor, type Strategy, type StrategyRegistry } from './strategies/registry.ts';

export type Access = 'read' | 'write';

export interface FunctionSpec {
  entry: string;
  description: string;
  timeoutSeconds: number;
  memoryMb: number;
  tables: Partial<Record<TableKey, Access>>;
  artifacts?: Access;
  /** Starts pipeline and rollback executions. */
  startsPipeline?: true;
  /** Signs agent requests (reads the agent key secret and calls agents). */
  callsAgents?: true;
  /** Stops pipeline executions (cancel; docs/adr/0019-steering-running-deployments.md). */
  stopsPipeline?: true;
  /** Verifies JWTs. */
  verifiesTokens?: true;
  /** Publishes to the approver and notification topics. */
  publishes?: true;
  /** Signs or verifies approval links (reads the approval-link key secret). */
  signsApprovalLinks?: true;
  /** Answers approval gates (SendTaskSuccess/Failure on the pipeline). */
  answersTasks?: true;
  /** Creates users and service clients in the identity provider (Cognito admin APIs). */
  managesIdentities?: true;
  /** The API's REQUEST authorizer (exactly one function). */
  authorizesRequests?: true;
  /** Mails approval requests with signed links: gets the approver lists and the public API URL. */
  mailsApprovalLinks?: true;
  /** Decides approvals: gets the approver lists, to check that an approver still is one. */
  checksApprovers?: true;
  /** Checks module signatures against the trusted signing roots (gets the roots PEM). */
  verifiesModuleSignatures?: true;
  /** The Secrets Manager rotation function of the key-set secrets (exactly one function). */
  rotatesKeySets?: true;
  /**
   * Issues and checks enrolled nodes' own keys, wrapped under the agent key set: reads the agent
   * key secret and the agent address allowlist, but calls no agent (so stays out of the agents' network).
   */
  holdsNodeCredentials?: true;
  /**
   * Reconciles nodes from etcd on a one-minute schedule: created only when the etcdEndpoints
   * context is given, and then gets ETCD_ENDPOINTS / ETCD_PREFIX (docs/adr/0009-discovery-sources.md).
   */
  discoversNodes?: true;
  /**
   * Posts to and closes WebSocket connections through the API Gateway management API (gets the
   * WebSocket endpoints and execute-api:ManageConnections). Functions that call agents get it too:
   * dial-out nodes are reached that way.
   */
  managesConnections?: true;
  /** The WebSocket API's $connect REQUEST authorizer (exactly one function). */
  authorizesConnections?: true;
  /**
   * Consumes these tables' DynamoDB change streams (each must have `stream: true`): on AWS an
   * event source mapping per table; locally localcloud/streams.ts polls DynamoDB Local's streams
   * and invokes the function with the same event (docs/adr/0028-live-events.md).
   */
  streamSources?: readonly TableKey[];
  /** Run by an EventBridge schedule every this many minutes (CDK); locally by a script or the local cloud. */
  scheduleMinutes?: number;
  /**
   * Subscribes and unsubscribes people's email to the approver and notification topics with their
   * own filter policies (lib/subscriptions.ts): gets the approver lists and both topics.
   */
  managesSubscriptions?: true;
  /** Runs the subscription sync on every deploy, as a CloudFormation custom resource (exactly one function). */
  syncsSubscriptionsOnDeploy?: true;
  /**
   * Settles deployments whose pipeline or rollback execution died: the target of the rules in
   * EXECUTION_STATUS_RULES; gets the pipeline and rollback state machine ARNs to tell them apart.
   */
  reconcilesExecutions?: true;
  /**
   * Moves traffic through the environments' routers (functions/lib/trafficRouter.ts): gets the
   * router settings (TRAFFIC_ROUTERS, ALB_ROUTERS, ROUTE53_ROUTERS) and the IAM to change exactly
   * the listeners, target groups and hosted zones they name (docs/adr/0020-traffic-routers.md).
   */
  routesTraffic?: true;
  /** Shows which router each environment uses (the cluster view): gets TRAFFIC_ROUTERS only, no IAM. */
  describesTraffic?: true;
  /**
   * Stops a deployment on the environments' alarms (functions/lib/alarms.ts): gets ALARMS and
   * cloudwatch:DescribeAlarms on exactly the CloudWatch alarms it names.
   */
  watchesAlarms?: true;
  /**
   * Writes the audit trail's daily JSON Lines partitions to the export bucket (exactly one function;
   * docs/adr/0033-audit-retention-and-export.md): gets AUDIT_EXPORT_BUCKET and s3:PutObject on its
   * audit/ prefix only.
   */
  exportsAudit?: true;
}

const audit = { audit: 'write' } as const;

export const FUNCTIONS = {
  Authorizer: {
    entry: 'functions/handlers/api/authorizer.ts',
    description: 'JWT REQUEST authorizer',
    timeoutSeconds: 10,
    memoryMb: 256,
    tables: { users: 'read', ...audit },
    verifiesTokens: true,
    authorizesRequests: true,
  },
  ApiAdmin: {
    entry: 'functions/handlers/api/admin.ts',
    description: 'Admin: users, service clients, live settings',
    timeoutSeconds: 29,
    memoryMb: 256,
    tables: { settings: 'write', users: 'write', ...audit },
    managesIdentities: true,
    managesSubscriptions: true,
  },
  ApiHealth: {
    entry: 'functions/handlers/api/health.ts',
    description: 'GET /health, GET /metrics, the API document and its reference page',
    timeoutSeconds: 10,
    memoryMb: 256,
    tables: { deployments: 'read', nodes: 'read', approvals: 'read', clusters: 'read', metrics: 'read' },
  },
  ApiDeployments: {
    entry: 'functions/handlers/api/deployments.ts',
    description: 'Deployments API',
    timeoutSeconds: 29,
    memoryMb: 512,
    // clusters: a module Degraded in an environment refuses new deployments there (condition checks).
    tables: { deployments: 'write', idempotency: 'write', modules: 'read', locks: 'write', targets: 'read', clusters: 'read', ...audit },
    startsPipeline: true,
    // A cancel stops the pipeline; the reconciler settles it and starts the rollback (docs/adr/0019-steering-running-deployments.md).
    stopsPipeline: true,
  },
  ApiFleet: {
    entry: 'functions/handlers/api/fleet.ts',
    description: 'Fleet membership: enrolment tokens, enrolment, heartbeats (answering convergence commands), decommissioning',
    timeoutSeconds: 29,
    memoryMb: 256,
    // clusters, locks, modules and artifacts: a heartbeat's answer converges the node to the desired state.
    // clusters write: a node's convergence clears its environment's Degraded mark.
    tables: { enrolmentTokens: 'write', nodes: 'write', clusters: 'write', locks: 'read', modules: 'read', ...audit },
    artifacts: 'read',
    holdsNodeCredentials: true,
    // Enrolment answers the WebSocket URL to dial-out agents; decommissioning closes a node's connection.
    managesConnections: true,
    // A host enrolled with a workload URL joins its environment's router; a decommissioned one leaves it.
    routesTraffic: true,
  },
  ApiClusters: {
    entry: 'functions/handlers/api/clusters.ts',
    description: 'Clusters API',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { nodes: 'write', clusters: 'read', locks: 'read' },
    callsAgents: true,
    describesTraffic: true,
  },
  ApiModules: {
    entry: 'functions/handlers/api/modules.ts',
    description: 'Module registry API',
    timeoutSeconds: 29,
    memoryMb: 1024,
    tables: { modules: 'write', ...audit },
    artifacts: 'write',
  },
  Build: {
    entry: 'functions/handlers/tasks/build.ts',
    description: 'Pipeline: Build',
    timeoutSeconds: 300,
    memoryMb: 1024,
    tables: { deployments: 'write', modules: 'read', locks: 'write', ...audit },
    artifacts: 'read',
  },
  Test: {
    entry: 'functions/handlers/tasks/test.ts',
    description: 'Pipeline: Test',
    timeoutSeconds: 60,
    memoryMb: 512,
    tables: { deployments: 'write', modules: 'read', locks: 'write', ...audit },
  },
  SecurityScan: {
    entry: 'functions/handlers/tasks/securityScan.ts',
    description: 'Pipeline: Security scan',
    timeoutSeconds: 60,
    memoryMb: 512,
    tables: { deployments: 'write', modules: 'read', locks: 'write', ...audit },
    verifiesModuleSignatures: true,
  },
  PlanEnvironment: {
    entry: 'functions/handlers/tasks/planEnvironment.ts',
    description: 'Strategy: plan batches',
    timeoutSeconds: 300,
    memoryMb: 1024,
    tables: { deployments: 'write', nodes: 'read', targets: 'write', clusters: 'read', locks: 'write', modules: 'read', ...audit },
    callsAgents: true,
    routesTraffic: true,
  },
  DeployBatch: {
    entry: 'functions/handlers/tasks/deployBatch.ts',
    description: 'Strategy: deploy one batch',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', modules: 'read', nodes: 'write', targets: 'write', locks: 'write', ...audit },
    artifacts: 'read',
    callsAgents: true,
  },
  VerifyBatch: {
    entry: 'functions/handlers/tasks/verifyBatch.ts',
    description: 'Strategy: health-check one batch',
    timeoutSeconds: 900,
    memoryMb: 512,
    // deployments write and audit: an alarm firing in the health window is recorded on the stage.
    tables: { deployments: 'write', nodes: 'read', targets: 'write', locks: 'write', ...audit },
    callsAgents: true,
    watchesAlarms: true,
  },
  StabiliseBatches: {
    entry: 'functions/handlers/tasks/stabiliseBatches.ts',
    description: 'Strategy: wait until deployed batches are stable before their health checks',
    timeoutSeconds: 300,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'read', targets: 'read', locks: 'write', ...audit },
    callsAgents: true,
  },
  CompleteEnvironment: {
    entry: 'functions/handlers/tasks/completeEnvironment.ts',
    description: 'Strategy: close the environment stage and record its desired state',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', clusters: 'write', targets: 'read', nodes: 'read', ...audit },
    routesTraffic: true,
  },
  RollbackEnvironment: {
    entry: 'functions/handlers/tasks/rollbackEnvironment.ts',
    description: 'Strategy: automatic rollback',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'write', targets: 'write', clusters: 'write', locks: 'write', ...audit },
    callsAgents: true,
    routesTraffic: true,
  },
  SmokeTest: {
    entry: 'functions/handlers/tasks/smokeTest.ts',
    description: 'Blue-Green: smoke-test the idle colour',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'read', targets: 'read', locks: 'write', ...audit },
    callsAgents: true,
    routesTraffic: true,
  },
  SwitchTraffic: {
    entry: 'functions/handlers/tasks/switchTraffic.ts',
    description: 'Blue-Green: switch traffic',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', targets: 'write', clusters: 'write', nodes: 'read', ...audit },
    routesTraffic: true,
  },
  AnalyzeCanary: {
    entry: 'functions/handlers/tasks/analyzeCanary.ts',
    description: 'Canary: judge a wave against the baseline',
    timeoutSeconds: 300,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'read', targets: 'write', locks: 'write', ...audit },
    callsAgents: true,
  },
  CanaryGate: {
    entry: 'functions/handlers/tasks/canaryGate.ts',
    description: 'Canary: the bake gate between waves (bake, pause, promote, alarms)',
    timeoutSeconds: 60,
    memoryMb: 256,
    // nodes, targets and agents: the environment's alarms (ALARMS) are evaluated over the canary nodes' metrics during the bake;
    // clusters: the canary's traffic weights are set and recorded per wave.
    tables: { deployments: 'write', locks: 'write', nodes: 'read', targets: 'write', clusters: 'write', ...audit },
    callsAgents: true,
    routesTraffic: true,
    watchesAlarms: true,
  },
  FinishRollback: {
    entry: 'functions/handlers/tasks/finishRollback.ts',
    description: 'Rollback on demand: settle the outcome',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', locks: 'write', ...audit },
  },
  Validation: {
    entry: 'functions/handlers/tasks/validation.ts',
    description: 'Pipeline: Validation',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'write', locks: 'write', targets: 'read', ...audit },
    callsAgents: true,
  },
  RequestApproval: {
    entry: 'functions/handlers/tasks/requestApproval.ts',
    description: 'Approval gate: record and notify',
    timeoutSeconds: 120,
    memoryMb: 512,
    tables: { deployments: 'write', approvals: 'write', nodes: 'read', locks: 'write', ...audit },
    publishes: true,
    signsApprovalLinks: true,
    mailsApprovalLinks: true,
  },
  CloseGate: {
    entry: 'functions/handlers/tasks/closeGate.ts',
    description: 'Approval gate: rejected or expired',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', approvals: 'write', ...audit },
    publishes: true,
  },
  RotateKeySet: {
    entry: 'functions/handlers/tasks/rotateKeySet.ts',
    description: 'Secrets Manager rotation of the key-set secrets (the agent key set also renews node keys)',
    timeoutSeconds: 300,
    memoryMb: 256,
    // A rotation of the agent key set re-wraps every node key under the new signer and starts node-key rotations.
    tables: { nodes: 'write', ...audit },
    rotatesKeySets: true,
    holdsNodeCredentials: true,
  },
  RotateNodeKeys: {
    entry: 'functions/handlers/tasks/rotateNodeKeys.ts',
    description: 'Node keys (scheduled): re-wrap, retire expired previous keys, start due rotations',
    timeoutSeconds: 300,
    memoryMb: 256,
    tables: { nodes: 'write', ...audit },
    holdsNodeCredentials: true,
    scheduleMinutes: 60,
  },
  ListChangedEnvironments: {
    entry: 'functions/handlers/tasks/listChangedEnvironments.ts',
    description: 'Pipeline: environments to roll back after a failure',
    timeoutSeconds: 120,
    memoryMb: 256,
    tables: { deployments: 'read', targets: 'read' },
  },
  Finalize: {
    entry: 'functions/handlers/tasks/finalize.ts',
    description: 'Pipeline: settle the outcome',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', locks: 'write', ...audit },
    publishes: true,
  },
  ApiAudit: {
    entry: 'functions/handlers/api/audit.ts',
    description: 'Audit trail query and chain verification (Admin)',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { audit: 'read' },
  },
  ApiApprovals: {
    entry: 'functions/handlers/api/approvals.ts',
    description: 'Approvals API and email confirmation pages',
    timeoutSeconds: 29,
    memoryMb: 512,
    // users: an approver's standing (enabled, roles) is read from the directory at each decision.
    tables: { deployments: 'write', approvals: 'write', users: 'read', ...audit },
    publishes: true,
    signsApprovalLinks: true,
    answersTasks: true,
    checksApprovers: true,
  },
  SyncSubscriptions: {
    entry: 'functions/handlers/tasks/syncSubscriptions.ts',
    description: 'Deploy: subscribe approvers and users to their email with their own filter policies',
    timeoutSeconds: 300,
    memoryMb: 256,
    tables: { users: 'read', ...audit },
    managesSubscriptions: true,
    syncsSubscriptionsOnDeploy: true,
  },
  ReconcileExecution: {
    entry: 'functions/handlers/events/reconcileExecution.ts',
    description: 'Settle a deployment whose pipeline or rollback execution failed, timed out or was stopped',
    timeoutSeconds: 60,
    memoryMb: 256,
    // targets and startsPipeline: a cancelled deployment's rollback of what it changed starts here.
    tables: { deployments: 'write', locks: 'write', approvals: 'write', targets: 'read', ...audit },
    publishes: true,
    reconcilesExecutions: true,
    startsPipeline: true,
  },
  WatchApprovalDeadlines: {
    entry: 'functions/handlers/tasks/watchApprovalDeadlines.ts',
    description: 'Approvals (scheduled): publish pending, near-deadline and overdue approval counts as CloudWatch metrics (EMF)',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { approvals: 'read' },
    scheduleMinutes: 5,
  },
  PublishNodeHealth: {
    entry: 'functions/handlers/tasks/publishNodeHealth.ts',
    description: 'Fleet (scheduled): publish nodes per environment and health status as a CloudWatch metric (EMF)',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { nodes: 'read' },
    scheduleMinutes: 1,
  },
  ExportAudit: {
    entry: 'functions/handlers/tasks/exportAudit.ts',
    description: "Audit (scheduled): export yesterday's and today's audit events to S3 as daily JSON Lines partitions",
    timeoutSeconds: 300,
    memoryMb: 1024,
    tables: { audit: 'read' },
    exportsAudit: true,
    scheduleMinutes: 60,
  },
  DiscoverNodes: {
    entry: 'functions/handlers/tasks/discoverNodes.ts',
    description: 'Discovery: reconcile nodes registered in etcd (scheduled)',
    timeoutSeconds: 50,
    memoryMb: 256,
    tables: { nodes: 'write', ...audit },
    // It reads joining agents' health and must reach etcd: both live in the agents' network.
    callsAgents: true,
    discoversNodes: true,
    scheduleMinutes: 1,
  },
  WsAuthorizer: {
    entry: 'functions/handlers/ws/authorizer.ts',
    description: 'WebSocket $connect REQUEST authorizer: dial-out agents by their signed connect, operators by their token (?token=<jwt>)',
    timeoutSeconds: 10,
    memoryMb: 256,
    tables: { nodes: 'read', users: 'read', ...audit },
    holdsNodeCredentials: true,
    verifiesTokens: true,
    authorizesConnections: true,
  },
  WsConnections: {
    entry: 'functions/handlers/ws/connections.ts',
    description: "WebSocket routes: $connect, $disconnect, $default (dial-out agents' replies and keepalives), operators' subscribe/unsubscribe",
    timeoutSeconds: 29,
    memoryMb: 256,
    // events: a subscription with `after` replays the stored events.
    tables: { nodes: 'write', connections: 'write', agentRequests: 'write', events: 'read', ...audit },
    managesConnections: true,
  },
  WsEvents: {
    entry: 'functions/handlers/events/wsEvents.ts',
    description: "Operators' live events: table change streams numbered and fanned out to WebSocket subscribers; keepalive pings",
    timeoutSeconds: 60,
    memoryMb: 512,
    // nodes: an environment's totals (cluster.metrics); connections and audit: a connection found gone is forgotten.
    tables: { events: 'write', connections: 'write', nodes: 'read', ...audit },
    managesConnections: true,
    streamSources: ['deployments', 'nodes'],
    // API Gateway closes a connection idle for 10 minutes: operators' connections are pinged every 5.
    scheduleMinutes: 5,
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionId = keyof typeof FUNCTIONS;

/** Functions the stack creates only when their context is given (etcd discovery: etcdEndpoints). */
export type ConditionalFunctionId = { [K in FunctionId]: (typeof FUNCTIONS)[K] extends { discoversNodes: true } ? K : never }[FunctionId];
/** The deployed functions by id: every one, except conditional ones that were not asked for. */
export type FunctionsById<F> = Record<Exclude<FunctionId, ConditionalFunctionId>, F> & Partial<Record<ConditionalFunctionId, F>>;

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  fn: FunctionId;
  /** Whether API Gateway's JWT authorizer guards the route (false: /health, /metrics, email links). */
  auth: boolean;
  /**
   * Who may call it: the authorization matrix, in one place (enforced by lib/middleware/authorize.ts
   * for every route; docs/security/authorization.md lists it). Approvers are further limited to their
   * environments' approver lists, and nobody approves their own deployment (domain/approvals.ts).
   */
  roles: readonly Role[] | 'public';
  /**
   * Which limits a call counts against (lib/middleware/rateLimit.ts): absent, the per-address limit;
   * 'deployments' / 'metrics', that per-user limit too; 'none', no limit (liveness probes).
   */
  rateLimit?: 'none' | 'deployments' | 'metrics';
  /** One line for the OpenAPI document. */
  summary: string;
}

const DEPLOYERS: readonly Role[] = ['Deployer', 'Admin'];
const APPROVERS: readonly Role[] = ['Approver', 'Admin'];
const ADMINS: readonly Role[] = ['Admin'];

export const ROUTES = [
  { method: 'GET', path: '/health', fn: 'ApiHealth', auth: false, roles: 'public', rateLimit: 'none', summary: 'Liveness (no dependencies touched)' },
  // Prometheus scrape target: aggregate counts only, no identifiers.
  {
    method: 'GET',
    path: '/metrics',
    fn: 'ApiHealth',
    auth: false,
    roles: 'public',
    summary: 'Prometheus metrics: recent deployments by status, nodes per environment, pending approvals',
  },
  {
    method: 'GET',
    path: '/openapi.json',
    fn: 'ApiHealth',
    auth: false,
    roles: 'public',
    summary: 'This API document (OpenAPI 3.1), generated from the route catalog and the zod request and response schemas',
  },
  {
    method: 'GET',
    path: '/docs',
    fn: 'ApiHealth',
    auth: false,
    roles: 'public',
    summary: 'The interactive reference of this API (Swagger UI, served from this origin)',
  },
  { method: 'GET', path: '/docs/{asset}', fn: 'ApiHealth', auth: false, roles: 'public', summary: "The reference page's script and stylesheet" },
  {
    method: 'POST',
    path: '/api/v1/deployments',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    rateLimit: 'deployments',
    summary: 'Request a deployment of a module version up to an environment (honours Idempotency-Key)',
  },
  {
    method: 'GET',
    path: '/api/v1/deployments',
    fn: 'ApiDeployments',
    auth: true,
    roles: READERS,
    summary: 'List deployments, newest first, with filters and a cursor',
  },
  {
    method: 'GET',
    path: '/api/v1/deployments/{executionId}',
    fn: 'ApiDeployments',
    auth: true,
    roles: READERS,
    summary: 'A deployment: status, each stage with strategy, timings, node counts, messages',
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/rollback',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: 'Roll a finished deployment back on demand',
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/cancel',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: 'Cancel a running deployment: its execution stops, every node it changed goes back, its locks are released; ends Cancelled',
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/pause',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: 'Hold a running canary before its next wave (optional deadline, then resume or roll back)',
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/resume',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: 'Lift the hold of a paused canary',
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/promote',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: "Skip the running canary's remaining bake: to the next wave, or (to=full) to 100 % without further bakes",
  },
  {
    method: 'POST',
    path: '/api/v1/deployments/{executionId}/canary/rejudge',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
    summary: "Judge a canary's recorded samples again under other thresholds or confidence (a dry run: no node or deployment changes; audited)",
  },
  {
    method: 'GET',
    path: '/api/v1/clusters',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    summary: 'Every environment: strategy, node counts, module versions, desired state, blue-green colour',
  },
  {
    method: 'GET',
    path: '/api/v1/clusters/{environment}',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    summary: 'One environment with its nodes, its desired state and each enrolled node’s convergence (refresh=true polls every agent now)',
  },
  {
    method: 'GET',
    path: '/api/v1/clusters/{environment}/metrics',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    rateLimit: 'metrics',
    summary: 'Cluster averages, total requests/s and per-node figures',
  },
  {
    method: 'POST',
    path: '/api/v1/enrolment-tokens',
    fn: 'ApiFleet',
    auth: true,
    roles: ADMINS,
    summary: 'Create an enrolment token for an environment (the token is shown once; only its hash is kept)',
  },
  {
    method: 'GET',
    path: '/api/v1/enrolment-tokens',
    fn: 'ApiFleet',
    auth: true,
    roles: ADMINS,
    summary: 'Enrolment tokens with their state and uses (never the secret)',
  },
  { method: 'DELETE', path: '/api/v1/enrolment-tokens/{tokenId}', fn: 'ApiFleet', auth: true, roles: ADMINS, summary: 'Revoke an enrolment token' },
  // The enrolment token is the credential; answers 401 (invalid) or 410 (expired, revoked, used up).
  {
    method: 'POST',
    path: '/api/v1/enrol',
    fn: 'ApiFleet',
    auth: false,
    roles: 'public',
    summary: 'A host joins with an enrolment token and its address; answers its node id and its own HMAC key',
  },
  // Signed with the node's own key (agent protocol HMAC scheme); 401 once decommissioned.
  {
    method: 'POST',
    path: '/api/v1/nodes/{nodeId}/heartbeat',
    fn: 'ApiFleet',
    auth: false,
    roles: 'public',
    summary: "An enrolled node's signed heartbeat: its modules, health and address; answers the commands that converge it to the desired state",
  },
  {
    method: 'POST',
    path: '/api/v1/nodes/{nodeId}/rotate-credentials',
    fn: 'ApiFleet',
    auth: true,
    roles: ADMINS,
    summary: "Rotate an enrolled node's own key: 202 issues a new key, delivered in its next heartbeat answer; 200 answers a rotation already pending",
  },
  {
    method: 'DELETE',
    path: '/api/v1/nodes/{nodeId}',
    fn: 'ApiFleet',
    auth: true,
    roles: ADMINS,
    summary: 'Decommission a node: its credentials stop working at once and it is never targeted again',
  },
  { method: 'GET', path: '/api/v1/approvals/pending', fn: 'ApiApprovals', auth: true, roles: READERS, summary: 'Approval gates waiting for a decision' },
  {
    method: 'GET',
    path: '/api/v1/approvals/deployments/{executionId}',
    fn: 'ApiApprovals',
    auth: true,
    roles: READERS,
    summary: 'The approvals of a deployment',
  },
  {
    method: 'POST',
    path: '/api/v1/approvals/deployments/{executionId}/approve',
    fn: 'ApiApprovals',
    auth: true,
    roles: APPROVERS,
    summary: 'Approve the pending gate (Admin, or an approver of that environment; never the requester)',
  },
  {
    method: 'POST',
    path: '/api/v1/approvals/deployments/{executionId}/reject',
    fn: 'ApiApprovals',
    auth: true,
    roles: APPROVERS,
    summary: 'Reject the pending gate',
  },
  // Email links: the signed link is the credential; GET only shows a page, POST decides.
  {
    method: 'GET',
    path: '/approvals/links/{token}',
    fn: 'ApiApprovals',
    auth: false,
    roles: 'public',
    summary: 'Email link: a confirmation page; changes nothing',
  },
  {
    method: 'POST',
    path: '/approvals/links/{token}',
    fn: 'ApiApprovals',
    auth: false,
    roles: 'public',
    summary: 'Email link confirmation (form post): decides once',
  },
  { method: 'GET', path: '/api/v1/admin/users', fn: 'ApiAdmin', auth: true, roles: ADMINS, summary: 'Users and service clients' },
  { method: 'POST', path: '/api/v1/admin/users', fn: 'ApiAdmin', auth: true, roles: ADMINS, summary: 'Create a user with roles' },
  { method: 'PUT', path: '/api/v1/admin/users/{userId}/roles', fn: 'ApiAdmin', auth: true, roles: ADMINS, summary: 'Assign roles' },
  {
    method: 'POST',
    path: '/api/v1/admin/users/{userId}/disable',
    fn: 'ApiAdmin',
    auth: true,
    roles: ADMINS,
    summary: 'Disable a user or client (refused within DIRECTORY_CACHE_SECONDS, default 5 s)',
  },
  { method: 'POST', path: '/api/v1/admin/users/{userId}/enable', fn: 'ApiAdmin', auth: true, roles: ADMINS, summary: 'Enable a user or client again' },
  {
    method: 'POST',
    path: '/api/v1/admin/clients',
    fn: 'ApiAdmin',
    auth: true,
    roles: ADMINS,
    summary: 'Create a service client (client credentials; the secret is shown once)',
  },
  {
    method: 'GET',
    path: '/api/v1/admin/subscriptions',
    fn: 'ApiAdmin',
    auth: true,
    roles: ADMINS,
    summary: "Approvers' and users' email subscriptions and their state (confirmed, pending confirmation), and approvers who get no mail",
  },
  {
    method: 'POST',
    path: '/api/v1/admin/subscriptions/sync',
    fn: 'ApiAdmin',
    auth: true,
    roles: ADMINS,
    summary: 'Subscribe and unsubscribe email to match the approver lists and the directory now (also runs on every deploy)',
  },
  { method: 'GET', path: '/api/v1/admin/rate-limits', fn: 'ApiAdmin', auth: true, roles: ADMINS, summary: 'Current rate limits' },
  {
    method: 'PUT',
    path: '/api/v1/admin/rate-limits',
    fn: 'ApiAdmin',
    auth: true,
    roles: ADMINS,
    summary: 'Change rate limits live (applies within seconds, audited)',
  },
  {
    method: 'GET',
    path: '/api/v1/audit',
    fn: 'ApiAudit',
    auth: true,
    roles: ADMINS,
    summary: 'Audit trail by deployment, subject, category, actor or trace id, in a time range',
  },
  {
    method: 'GET',
    path: '/api/v1/audit/verify',
    fn: 'ApiAudit',
    auth: true,
    roles: ADMINS,
    summary: 'Recompute the audit hash chains of a time range and report the first broken link (tamper evidence)',
  },
  {
    method: 'POST',
    path: '/api/v1/modules',
    fn: 'ApiModules',
    auth: true,
    roles: DEPLOYERS,
    summary: 'Register a signed module version (manifest, signature, certificate chain, artifact)',
  },
  { method: 'GET', path: '/api/v1/modules', fn: 'ApiModules', auth: true, roles: READERS, summary: 'Registered modules and their versions' },
  { method: 'GET', path: '/api/v1/modules/{moduleName}/versions', fn: 'ApiModules', auth: true, roles: READERS, summary: 'Versions of a module, newest first' },
  { method: 'GET', path: '/api/v1/modules/{moduleName}/versions/{version}', fn: 'ApiModules', auth: true, roles: READERS, summary: 'One module version' },
] as const satisfies readonly RouteSpec[];

/**
 * The WebSocket API: one API for every kind of WebSocket client — dial-out agents
 * (docs/adr/0010-websocket-layer.md) and operators watching live events (docs/adr/0028-live-events.md).
 * Messages with an `action` field go to the route of that name (`subscribe`, `unsubscribe`);
 * everything else (agents' replies and pings) to `$default`.
 */
export interface WebSocketRouteSpec {
  routeKey: string;
  fn: FunctionId;
  /** Only `$connect` can have one on API Gateway: the connection is authorised once, when it opens. */
  authorized?: true;
  /** The function's answer is sent back to the client (API Gateway's route response). */
  returnResponse?: true;
  summary: string;
}

export const WEBSOCKET = {
  /** The stage name on AWS, and the path of the local gateway's WebSocket endpoint. */
  stage: 'ws',
  routeSelectionExpression: '$request.body.action',
  routes: [
    { routeKey: '$connect', fn: 'WsConnections', authorized: true, summary: 'A client connects (the authorizer has checked who it is); recorded' },
    { routeKey: '$disconnect', fn: 'WsConnections', summary: 'A connection closed; forgotten' },
    {
      routeKey: '$default',
      fn: 'WsConnections',
      returnResponse: true,
      summary: "Messages without an action: dial-out agents' replies to commands, and their keepalive pings",
    },
    {
      routeKey: 'subscribe',
      fn: 'WsConnections',
      returnResponse: true,
      summary: 'An operator subscribes to live events of a deployment, an environment or all; `after` replays missed ones',
    },
    { routeKey: 'unsubscribe', fn: 'WsConnections', returnResponse: true, summary: 'An operator drops a subscription' },
  ],
} as const satisfies { stage: string; routeSelectionExpression: string; routes: readonly WebSocketRouteSpec[] };

export interface StateMachineSpec {
  file: string;
  /** Functions and state machines its ASL references as ${<Id>FunctionArn} / ${<Id>StateMachineArn}. */
  functions: FunctionId[];
  stateMachines: StateMachineId[];
}

/** The strategies' state machines (ids from the strategy modules), then the two the catalog owns. */
export type StateMachineId = Strategy | 'Pipeline' | 'Rollback';

/** The state machines of a registry's strategies, in registration order; none starts another. */
export function strategyStateMachines<N extends string>(registry: StrategyRegistry<N>): Record<N, StateMachineSpec> {
  const specs = {} as Record<N, StateMachineSpec>;
  for (const s of registry.list()) specs[s.stateMachine.id as N] = { file: s.stateMachine.file, functions: [...s.stateMachine.functions], stateMachines: [] };
  return specs;
}

/**
 * The strategy state machines the pipeline starts: those of the environment profiles, in
 * promotion order (a registered strategy no environment uses is not referenced by the pipeline).
 */
const PIPELINE_CHILDREN = [...new Set(ENVIRONMENTS.map((e) => strategyFor(ENVIRONMENT_PROFILES[e].strategy).stateMachine.id as Strategy))];

/** Each state machine and what it references; creation order comes from stateMachineOrder(). */
export const STATE_MACHINES: Record<StateMachineId, StateMachineSpec> = {
  ...strategyStateMachines(strategies),
  Pipeline: {
    file: 'statemachines/pipeline.asl.json',
    functions: ['Build', 'Test', 'SecurityScan', 'Validation', 'Finalize', 'ListChangedEnvironments', 'RollbackEnvironment', 'RequestApproval', 'CloseGate'],
    stateMachines: PIPELINE_CHILDREN,
  },
  Rollback: { file: 'statemachines/rollback.asl.json', functions: ['RollbackEnvironment', 'FinishRollback'], stateMachines: [] },
};

/**
 * EventBridge rules on Step Functions "Execution Status Change" events: the stack creates each one
 * (infra/constructs/workflows.ts), and the local cloud delivers its executions' events through the
 * same patterns (localcloud/eventBus.ts).
 */
type ExecutionStatus = (typeof EXECUTION_STATUSES)[number];

export interface ExecutionStatusRuleSpec {
  description: string;
  fn: FunctionId;
  stateMachines: StateMachineId[];
  statuses: readonly ExecutionStatus[];
}

export const EXECUTION_STATUS_RULES: Record<string, ExecutionStatusRuleSpec> = {
  // Every deployment ends settled: a pipeline or rollback that died outside its own failure path
  // (stopped from outside, timed out, failed in a state without a Catch) is settled by the reconciler.
  ReconcileExecutions: {
    description: 'kmod: settle deployments whose pipeline or rollback execution failed, timed out or was stopped',
    fn: 'ReconcileExecution',
    stateMachines: ['Pipeline', 'Rollback'],
    statuses: ['FAILED', 'TIMED_OUT', 'ABORTED'],
  },
};

/** A rule's EventBridge pattern, in EventBridge's own JSON form; `arnOf` names each state machine's ARN. */
export function executionStatusPattern(rule: ExecutionStatusRuleSpec, arnOf: (id: StateMachineId) => string) {
  return {
    source: ['aws.states'],
    'detail-type': [EXECUTION_STATUS_CHANGE],
    detail: { status: [...rule.statuses], stateMachineArn: rule.stateMachines.map(arnOf) },
  };
}

export const functionArnKey = (id: FunctionId) => `${id}FunctionArn`;
export const stateMachineArnKey = (id: StateMachineId) => `${id}StateMachineArn`;

/**
 * The tables a function may use: its own, plus what every HTTP-serving function needs (rate-limit
 * counters, live settings, and the audit trail for denied calls), and what calling agents needs.
 */
export function functionTables(id: FunctionId): Partial<Record<TableKey, Access>> {
  const spec = FUNCTIONS[id] as FunctionSpec;
  const own: Partial<Record<TableKey, Access>> = { ...spec.tables };
  // Calls to dial-out agents are recorded in agentRequests (the reply is polled there) and find the
  // node's connection on its node record.
  if (spec.callsAgents) {
    own.agentRequests = 'write';
    own.nodes ??= 'read';
  }
  if (ROUTES.some((r) => r.fn === id)) {
    own.rateLimits = 'write';
    own.settings = own.settings === 'write' ? 'write' : 'read';
    own.audit = 'write';
  }
  // Deployment and approval changes add to the metric counters (Metrics table, `metrics#n` items)
  // in the same transaction (docs/adr/0027-prometheus-metrics.md).
  if (own.deployments === 'write' || own.approvals === 'write') own.metrics = 'write';
  return own;
}

/**
 * The state machines in creation order: each after the ones it starts (its ARN is substituted into
 * theirs), otherwise in declaration order.
 */
export function stateMachineOrder<Id extends string>(machines: Record<Id, { stateMachines: readonly Id[] }>): Id[] {
  const order: Id[] = [];
  const visiting = new Set<Id>();
  const visit = (id: Id, from: Id[]): void => {
    if (order.includes(id)) return;
    if (visiting.has(id)) throw new Error(`state machines start each other in a cycle: ${[...from, id].join(' -> ')}`);
    if (!(id in machines)) throw new Error(`state machine ${from.at(-1)} starts ${id}, which the catalog does not declare`);
    visiting.add(id);
    for (const child of machines[id].stateMachines) visit(child, [...from, id]);
    visiting.delete(id);
    order.push(id);
  };
  for (const id of Object.keys(machines) as Id[]) visit(id, []);
  return order;
}
