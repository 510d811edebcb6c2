/**
 * Every Lambda function, API route and state machine, declared once. The CDK stack builds the
 * AWS resources from these lists; the local cloud serves the very same handlers, routes and ASL.
 */
import type { TableKey } from './lib/tables.ts';
import { READERS, type Role } from './domain/roles.ts';

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
  },
  ApiAdmin: {
    entry: 'functions/handlers/api/admin.ts',
    description: 'Admin: users, service clients, live settings',
    timeoutSeconds: 29,
    memoryMb: 256,
    tables: { settings: 'write', users: 'write', ...audit },
    managesIdentities: true,
  },
  ApiHealth: {
    entry: 'functions/handlers/api/health.ts',
    description: 'GET /health and GET /metrics',
    timeoutSeconds: 10,
    memoryMb: 256,
    tables: { deployments: 'read', nodes: 'read', approvals: 'read' },
  },
  ApiDeployments: {
    entry: 'functions/handlers/api/deployments.ts',
    description: 'Deployments API',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { deployments: 'write', idempotency: 'write', modules: 'read', locks: 'write', targets: 'read', ...audit },
    startsPipeline: true,
  },
  ApiClusters: {
    entry: 'functions/handlers/api/clusters.ts',
    description: 'Clusters API',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { nodes: 'write', clusters: 'read' },
    callsAgents: true,
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
  },
  PlanEnvironment: {
    entry: 'functions/handlers/tasks/planEnvironment.ts',
    description: 'Strategy: plan batches',
    timeoutSeconds: 300,
    memoryMb: 1024,
    tables: { deployments: 'write', nodes: 'read', targets: 'write', clusters: 'read', locks: 'write', ...audit },
    callsAgents: true,
  },
  DeployBatch: {
    entry: 'functions/handlers/tasks/deployBatch.ts',
    description: 'Strategy: deploy one batch',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', modules: 'read', nodes: 'write', targets: 'write', locks: 'write' },
    artifacts: 'read',
    callsAgents: true,
  },
  VerifyBatch: {
    entry: 'functions/handlers/tasks/verifyBatch.ts',
    description: 'Strategy: health-check one batch',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'read', nodes: 'read', targets: 'write' },
    callsAgents: true,
  },
  CompleteEnvironment: {
    entry: 'functions/handlers/tasks/completeEnvironment.ts',
    description: 'Strategy: close the environment stage',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', ...audit },
  },
  RollbackEnvironment: {
    entry: 'functions/handlers/tasks/rollbackEnvironment.ts',
    description: 'Strategy: automatic rollback',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'write', targets: 'write', clusters: 'write', ...audit },
    callsAgents: true,
  },
  SmokeTest: {
    entry: 'functions/handlers/tasks/smokeTest.ts',
    description: 'Blue-Green: smoke-test the idle colour',
    timeoutSeconds: 900,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'read', targets: 'read', ...audit },
    callsAgents: true,
  },
  SwitchTraffic: {
    entry: 'functions/handlers/tasks/switchTraffic.ts',
    description: 'Blue-Green: switch traffic',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { deployments: 'write', targets: 'write', clusters: 'write', ...audit },
  },
  AnalyzeCanary: {
    entry: 'functions/handlers/tasks/analyzeCanary.ts',
    description: 'Canary: judge a wave against the baseline',
    timeoutSeconds: 300,
    memoryMb: 512,
    tables: { deployments: 'write', nodes: 'read', targets: 'write', locks: 'write', ...audit },
    callsAgents: true,
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
    description: 'Secrets Manager rotation of the key-set secrets',
    timeoutSeconds: 60,
    memoryMb: 256,
    tables: { ...audit },
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
    description: 'Audit trail query (Admin)',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { audit: 'read' },
  },
  ApiApprovals: {
    entry: 'functions/handlers/api/approvals.ts',
    description: 'Approvals API and email confirmation pages',
    timeoutSeconds: 29,
    memoryMb: 512,
    tables: { deployments: 'write', approvals: 'write', ...audit },
    publishes: true,
    signsApprovalLinks: true,
    answersTasks: true,
  },
} as const satisfies Record<string, FunctionSpec>;

export type FunctionId = keyof typeof FUNCTIONS;

export interface RouteSpec {
  method: 'GET' | 'POST' | 'PUT' | 'DELETE';
  path: string;
  fn: FunctionId;
  /** Whether API Gateway's JWT authorizer guards the route (false: /health, /metrics, email links). */
  auth: boolean;
  /**
   * Who may call it: the authorization matrix, in one place (enforced by lib/http.ts for every
   * route; docs/security/authorization.md lists it). Approvers are further limited to their
   * environments' approver lists, and nobody approves their own deployment (domain/approvals.ts).
   */
  roles: readonly Role[] | 'public';
  /** One line for the OpenAPI document. */
  summary: string;
}

const DEPLOYERS: readonly Role[] = ['Deployer', 'Admin'];
const APPROVERS: readonly Role[] = ['Approver', 'Admin'];
const ADMINS: readonly Role[] = ['Admin'];

export const ROUTES: RouteSpec[] = [
  { method: 'GET', path: '/health', fn: 'ApiHealth', auth: false, roles: 'public', summary: 'Liveness (no dependencies touched)' },
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
    method: 'POST',
    path: '/api/v1/deployments',
    fn: 'ApiDeployments',
    auth: true,
    roles: DEPLOYERS,
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
    method: 'GET',
    path: '/api/v1/clusters',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    summary: 'Every environment: strategy, node counts, module versions, blue-green colour',
  },
  {
    method: 'GET',
    path: '/api/v1/clusters/{environment}',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    summary: 'One environment with its nodes (refresh=true polls every agent now)',
  },
  {
    method: 'GET',
    path: '/api/v1/clusters/{environment}/metrics',
    fn: 'ApiClusters',
    auth: true,
    roles: READERS,
    summary: 'Cluster averages, total requests/s and per-node figures',
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
    summary: 'Disable a user or client (refused at once)',
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
];

export interface StateMachineSpec {
  file: string;
  /** Functions and state machines its ASL references as ${<Id>FunctionArn} / ${<Id>StateMachineArn}. */
  functions: FunctionId[];
  stateMachines: StateMachineId[];
}

export type StateMachineId = 'Pipeline' | 'Direct' | 'Rolling' | 'BlueGreen' | 'Canary' | 'Rollback';

const ENVIRONMENT_STEPS: FunctionId[] = ['PlanEnvironment', 'DeployBatch', 'VerifyBatch', 'CompleteEnvironment', 'RollbackEnvironment'];

/** In dependency order: a state machine comes after those it starts. */
export const STATE_MACHINES: Record<StateMachineId, StateMachineSpec> = {
  Direct: { file: 'statemachines/direct.asl.json', functions: ENVIRONMENT_STEPS, stateMachines: [] },
  Rolling: { file: 'statemachines/rolling.asl.json', functions: ENVIRONMENT_STEPS, stateMachines: [] },
  BlueGreen: { file: 'statemachines/bluegreen.asl.json', functions: [...ENVIRONMENT_STEPS, 'SmokeTest', 'SwitchTraffic'], stateMachines: [] },
  Canary: { file: 'statemachines/canary.asl.json', functions: [...ENVIRONMENT_STEPS, 'AnalyzeCanary'], stateMachines: [] },
  Pipeline: {
    file: 'statemachines/pipeline.asl.json',
    functions: ['Build', 'Test', 'SecurityScan', 'Validation', 'Finalize', 'ListChangedEnvironments', 'RollbackEnvironment', 'RequestApproval', 'CloseGate'],
    stateMachines: ['Direct', 'Rolling', 'BlueGreen', 'Canary'],
  },
  Rollback: { file: 'statemachines/rollback.asl.json', functions: ['RollbackEnvironment', 'FinishRollback'], stateMachines: [] },
};

export const functionArnKey = (id: FunctionId) => `${id}FunctionArn`;
export const stateMachineArnKey = (id: StateMachineId) => `${id}StateMachineArn`;

/**
 * The tables a function may use: its own, plus what every HTTP-serving function needs (rate-limit
 * counters, live settings, and the audit trail for denied calls).
 */
export function functionTables(id: FunctionId): Partial<Record<TableKey, Access>> {
  const own: Partial<Record<TableKey, Access>> = { ...(FUNCTIONS[id] as FunctionSpec).tables };
  if (ROUTES.some((r) => r.fn === id)) {
    own.rateLimits = 'write';
    own.settings = own.settings === 'write' ? 'write' : 'read';
    own.audit = 'write';
  }
  return own;
}
