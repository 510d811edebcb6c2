/**
 * What the API answers on success, in zod: the same source as the request schemas. scripts/openapi.ts
 * generates the OpenAPI document's responses from `RESPONSES`, and
 * test/integration/openapi-responses.test.ts parses real answers of the local cloud with them, so
 * an undocumented field or a changed type fails a test (docs/adr/0031-response-schemas.md).
 *
 * Strict objects where the handler builds the object field by field (an extra field is a change
 * of the contract); records with a description where the value is an open, strategy-specific map
 * (stage details, node health reports, audit details).
 */
import { z } from 'zod';
import { DEPLOYMENT_STATUSES, STAGE_STATUSES } from '../../domain/deployment.ts';
import { ENVIRONMENTS, STRATEGIES } from '../../domain/environments.ts';
import { manifestSchema } from '../../domain/manifest.ts';
import { NODE_STATUSES, UNREACHABLE_POLICIES } from '../../domain/membership.ts';
import { ROLES } from '../../domain/roles.ts';
import { HOLD_DEADLINE_ACTIONS, PROMOTION_TARGETS } from '../../domain/steering.ts';
import { ROTATION_TRIGGERS } from '../../domain/nodeKeyRotation.ts';
import { AUDIT_CATEGORIES } from '../../lib/audit.ts';
import { rateLimitSettingsSchema } from '../../lib/rateLimits.ts';

const time = z.iso.datetime({ offset: true });
/** Counts, durations, waves: whole and never negative. */
const count = z.number().int().min(0);
const environment = z.enum(ENVIRONMENTS);
const openMap = (description: string) => z.record(z.string(), z.unknown()).describe(description);
const self = z.strictObject({ self: z.string().describe('The deployment: GET it to follow progress') });

const approvalStatus = z.enum(['Pending', 'Approved', 'Rejected', 'Expired']);
const decision = z
  .strictObject({
    approver: z.string(),
    decision: z.enum(['approve', 'reject']),
    reason: z.string().optional(),
    at: time,
    via: z.enum(['api', 'email']),
  })
  .meta({ id: 'ApprovalDecision' });

export const stageResponse = z
  .strictObject({
    name: z.string().describe('Build, Test, SecurityScan, an environment, or Validation'),
    kind: z.enum(['check', 'environment', 'validation']),
    status: z.enum(STAGE_STATUSES),
    environment: environment.optional(),
    strategy: z.enum(STRATEGIES).optional(),
    startedAt: time.optional(),
    finishedAt: time.optional(),
    durationMs: count.optional(),
    message: z.string().optional(),
    nodesTotal: count.optional(),
    nodesDeployed: count.optional(),
    nodesFailed: count.optional(),
    nodesRolledBack: count.optional(),
    details: openMap('Strategy details: batches, canary waves and their analysis, blue-green colours, smoke tests').optional(),
    approval: z
      .strictObject({
        status: approvalStatus,
        approvers: z.array(z.string()),
        quorum: count,
        requestedAt: time,
        deadline: time,
        decisions: z.array(decision),
      })
      .optional()
      .describe('Staging and Production: the approval gate (GET /api/v1/approvals/deployments/{executionId} has the rest)'),
  })
  .meta({ id: 'Stage' });

const cancellation = z.strictObject({ requestedBy: z.string(), requestedAt: time, reason: z.string().optional() }).meta({ id: 'Cancellation' });
const hold = z
  .strictObject({
    requestedBy: z.string(),
    requestedAt: time,
    reason: z.string().optional(),
    deadline: time.optional().describe('When the hold ends by itself'),
    onDeadline: z.enum(HOLD_DEADLINE_ACTIONS),
  })
  .meta({ id: 'Hold' });
const promotion = z
  .strictObject({
    requestedBy: z.string(),
    requestedAt: time,
    to: z.enum(PROMOTION_TARGETS),
    consumedByWave: count.optional().describe('The wave whose bake a nextWave promotion cut short'),
  })
  .meta({ id: 'Promotion' });
const rollback = z
  .strictObject({
    status: z.enum(['Running', 'Succeeded', 'Failed']),
    requestedBy: z.string(),
    requestedAt: time,
    reason: z.string().optional(),
    finishedAt: time.optional(),
    message: z.string().optional(),
    executionName: z.string().optional(),
    cancel: z.literal(true).optional().describe('Started by a cancel: the deployment stays Cancelled'),
    environments: z.array(environment).optional(),
  })
  .meta({ id: 'Rollback' });

/** presentDeployment (deployments.ts). */
export const deploymentResponse = z
  .strictObject({
    executionId: z.string(),
    moduleName: z.string(),
    version: z.string(),
    targetEnvironment: environment,
    status: z.enum(DEPLOYMENT_STATUSES),
    requestedBy: z.string(),
    createdAt: time,
    updatedAt: time,
    finishedAt: time.optional(),
    metadata: z.record(z.string(), z.string()),
    unreachableNodes: z.enum(UNREACHABLE_POLICIES).describe('What planning does with enrolled nodes that stopped heartbeating'),
    failure: z.strictObject({ stage: z.string().optional(), code: z.string(), message: z.string() }).optional(),
    rollback: rollback.optional(),
    cancellation: cancellation.optional(),
    hold: hold.optional(),
    promotion: promotion.optional(),
    stages: z.array(stageResponse),
  })
  .meta({ id: 'Deployment' });

const page = <T extends z.ZodType>(item: T, id: string) =>
  z.strictObject({ items: z.array(item), nextCursor: z.string().nullable().describe('Pass as cursor for the next page; null: the last page') }).meta({ id });

const approval = z
  .strictObject({
    executionId: z.string(),
    environment,
    moduleName: z.string(),
    version: z.string(),
    status: approvalStatus,
    requestedBy: z.string(),
    requestedAt: time,
    approvers: z.array(z.string()),
    quorum: count,
    deadline: time,
    decidedAt: time.optional(),
    decisions: z.array(decision),
  })
  .meta({ id: 'Approval' });

const principal = z
  .strictObject({
    userId: z.string(),
    kind: z.enum(['user', 'client']),
    username: z.string(),
    email: z.string().optional(),
    roles: z.array(z.enum(ROLES)),
    scopes: z.array(z.string()).optional(),
    enabled: z.boolean(),
    createdAt: time,
    createdBy: z.string(),
  })
  .meta({ id: 'Principal' });

const subscriptionReport = z
  .strictObject({
    changes: z.array(openMap('A subscribe or unsubscribe this run made (topic, userId, email, action, subscriptionArn)')),
    subscriptions: z.array(
      z.strictObject({
        topic: z.enum(['approvals', 'notifications']),
        userId: z.string(),
        email: z.string(),
        state: z.string(),
        detail: z.string().optional(),
      }),
    ),
    unsubscribable: z.array(z.strictObject({ userId: z.string(), reason: z.string() })),
  })
  .meta({ id: 'SubscriptionReport' });
const subscriptionsOrError = z.union([subscriptionReport, z.strictObject({ error: z.string() })]);

const moduleVersion = z
  .strictObject({
    moduleName: z.string(),
    version: z.string(),
    manifest: manifestSchema,
    signature: z.strictObject({ algorithm: z.string() }),
    registeredAt: time,
    registeredBy: z.string(),
  })
  .meta({ id: 'ModuleVersion' });

const token = z
  .strictObject({
    tokenId: z.string(),
    environment,
    status: z.enum(['Active', 'Expired', 'Revoked', 'UsedUp']),
    createdAt: time,
    createdBy: z.string(),
    expiresAt: time,
    maxUses: count,
    uses: count,
    labels: z.record(z.string(), z.string()),
    revokedAt: time.optional(),
    revokedBy: z.string().optional(),
  })
  .meta({ id: 'EnrolmentToken' });

const traffic = z.strictObject({
  router: z.string().describe('The kind of router the environment uses'),
  weighted: z.boolean(),
  canary: z.strictObject({ percent: z.number(), nodes: z.array(z.string()), setAt: time, setBy: z.string() }).nullable(),
});

const clusterSummary = z
  .strictObject({
    environment,
    strategy: z.enum(STRATEGIES),
    requiresApproval: z.boolean(),
    nodeCount: count,
    healthyNodes: count,
    unhealthyNodes: count,
    convergingNodes: count,
    anomalousNodes: count,
    moduleVersions: z.record(z.string(), z.record(z.string(), count)).describe('module → version → node count'),
    desiredModules: openMap('module → the desired state the environment converges to (version, deployment, revision)'),
    degraded: z.boolean().describe('true while any module is Degraded here'),
    degradedModules: openMap(
      'Modules whose rollback could not finish here (mixed versions): status Degraded, deploymentId, version, since, stuckNodes, repair. New deployments of the module to this environment get 409 EnvironmentDegraded until the repair',
    ),
    traffic,
    activeColour: z.enum(['blue', 'green']).optional().describe('Blue-green environments only'),
    colours: z.strictObject({ blue: count, green: count }).optional(),
    switchedAt: time.nullable().optional(),
  })
  .meta({ id: 'Cluster' });

const node = z
  .strictObject({
    nodeId: z.string(),
    address: z.string().nullable().describe('null: a dial-out node, reached over its WebSocket'),
    transport: z.enum(['http', 'dial-out']),
    connected: z.boolean().optional(),
    connectedAt: time.nullable().optional(),
    colour: z.enum(['blue', 'green']).optional(),
    workloadUrl: z.string().nullable(),
    status: z.enum(NODE_STATUSES),
    lastSeenAt: time.nullable(),
    membership: z.enum(['enrolled', 'fleet']),
    labels: z.record(z.string(), z.string()).optional(),
    decommissionedAt: time.optional(),
    modules: openMap('module → {version, previousVersion, updatedAt}'),
    reportedModules: openMap('What the agent last reported, when it differs').optional(),
    convergence: openMap('An enrolled node: its state against the desired state (Converged, Converging, …)').optional(),
    health: openMap('The last health report: status (healthy, unhealthy), reasons, at').nullable(),
    metrics: openMap('The last metrics: cpuPercent, memoryPercent, latencyMs, errorRatePercent, requestsPerSecond').nullable(),
    anomalies: z.array(openMap('A metric beyond the node’s rolling baseline: metric, value, score, baselineMean, baselineDeviation, since')),
  })
  .meta({ id: 'Node' });

const rotation = z
  .strictObject({
    nodeId: z.string(),
    environment,
    started: z.boolean().describe('false: a rotation was already pending; this is it (200), no new key'),
    state: z.literal('Pending'),
    keyId: z.string().describe('The current key'),
    pendingKeyId: z.string().describe('The new key, delivered in the next heartbeat answer; current once the agent signs with it'),
    startedAt: time,
    trigger: z.enum(ROTATION_TRIGGERS),
  })
  .meta({ id: 'NodeKeyRotation' });

const heartbeatAnswer = z
  .strictObject({
    nodeId: z.string(),
    status: z.literal('Online'),
    lastSeenAt: time,
    heartbeatSeconds: count,
    credentials: z
      .strictObject({ keyId: z.string(), secret: z.string() })
      .optional()
      .describe('A new key for the node (a rotation is pending): store it, then sign the next heartbeats with it (docs/adr/0012-node-key-rotation.md)'),
    acceptedKeyIds: z.array(z.string()).optional().describe('The node keys still honoured; the agent may drop any other key it holds'),
    converge: z
      .array(
        z.strictObject({
          action: z.enum(['deploy', 'rollback']),
          module: z.string(),
          from: z.string().nullable().describe('What the node reported'),
          to: z.string().nullable().describe('The desired version; null: unload the module'),
          request: openMap(
            'deploy: {deploymentId, version, artifactUrl, sha256, manifest, signature, certificateChain}; rollback: {deploymentId, toVersion: null}',
          ),
        }),
      )
      .describe(
        'What the node must run to reach its environment desired state (empty when converged, or while a deployment holds the module lock), with the deterministic deploymentId converge:<deployment>:r<revision>',
      ),
  })
  .meta({ id: 'HeartbeatAnswer' });

const auditEvent = z
  .looseObject({
    subject: z.string().describe('What the event is about, e.g. deployment#<executionId>, module#demo-kernel'),
    sk: z.string().describe('The ISO time, then a unique suffix: the sort key'),
    at: time.optional(),
    category: z.enum(AUDIT_CATEGORIES),
    action: z.string(),
    actor: z.string().describe('A user id, or system:<component>'),
    details: openMap('What changed').optional(),
    traceId: z.string().optional(),
    expiresAt: z.number().int().optional().describe('When retention removes it (epoch seconds, the TTL)'),
    chain: z.string().optional().describe('Its hash chain: <subject>|<category> (docs/adr/0032)'),
    seq: z.number().int().min(1).optional().describe('Its place in the chain, from 1'),
    prevHash: z.string().optional().describe('The previous event’s hash (64 zeros for seq 1)'),
    prevSk: z.string().optional().describe('The previous event’s sort key'),
    prevExpiresAt: z.number().int().optional().describe('The previous event’s TTL: gone after it, retention; gone before it, deletion'),
    hash: z.string().optional().describe('SHA-256 of the RFC 8785 canonical JSON of every attribute but hash and those named in mutable'),
    mutable: z.array(z.string()).optional().describe('Attributes that change after the event is written (a denial window’s count and latest), not hashed'),
  })
  .meta({ id: 'AuditEvent', description: 'An audit event as stored (the table keys and its chain fields included)' });

const brokenLink = z
  .strictObject({
    chain: z.string(),
    seq: z.number().int(),
    sk: z.string().describe('The sort key of the event at fault (for missing-event, the one that is gone)'),
    reason: z.enum(['hash-mismatch', 'missing-event', 'link-mismatch', 'truncated']),
    detail: z.string(),
  })
  .meta({ id: 'AuditBrokenLink' });

const auditVerification = z
  .strictObject({
    verified: z.boolean(),
    from: time.nullable(),
    to: time.nullable(),
    checkedAt: time,
    chains: z.number().int().describe('Chains with an event in the range'),
    events: z.number().int().describe('Chained events checked'),
    unchained: z.number().int().describe('Events written before chains existed: counted, not judged'),
    expiredPredecessors: z.number().int().describe('Links to a predecessor gone by retention (its TTL had passed): accepted'),
    openStarts: z.number().int().describe('Chains whose predecessor before the range was not looked up (offline only)'),
    mutableFields: z.array(z.string()).describe('Attributes left out of hashes because events name them mutable'),
    firstBroken: brokenLink.optional(),
    broken: z.array(brokenLink).describe('Every broken link found, earliest first, at most 20'),
  })
  .meta({ id: 'AuditVerification' });

const metricsPerNode = z.union([
  z.looseObject({ nodeId: z.string(), reporting: z.literal(true), anomalies: z.array(z.record(z.string(), z.unknown())) }).describe('The node’s figures'),
  z.strictObject({ nodeId: z.string(), reporting: z.literal(false), error: z.string() }),
]);

const principalChanged = principal
  .extend({ subscriptions: subscriptionsOrError.optional().describe('Users only: their email subscriptions brought in line') })
  .meta({ id: 'PrincipalChanged' });
const rateLimits = rateLimitSettingsSchema.meta({ id: 'RateLimits' });

/** A success answer: the status, and a zod schema (JSON) or a content type (text, HTML). */
export type SuccessResponse = { status: number; description: string } & ({ schema: z.ZodType } | { contentType: string | string[]; text: string });

const ok = (schema: z.ZodType, description = 'OK', status = 200): SuccessResponse => ({ status, description, schema });

/** Every route's success answers, keyed `METHOD path` as in the catalog (ROUTES). */
export const RESPONSES: Record<string, SuccessResponse[]> = {
  'GET /health': [ok(z.strictObject({ status: z.literal('ok'), service: z.literal('kmod-orchestrator'), time }).meta({ id: 'Health' }))],
  'GET /metrics': [{ status: 200, description: 'Prometheus text exposition', contentType: 'text/plain', text: 'Prometheus text format 0.0.4' }],
  'GET /openapi.json': [
    ok(
      z
        .looseObject({
          openapi: z.literal('3.1.0'),
          info: z.looseObject({ title: z.string(), version: z.string() }),
          paths: openMap('Every route: parameters, request body, responses'),
          components: z.looseObject({ schemas: openMap('The request and response schemas') }),
        })
        .meta({ id: 'OpenApiDocument', description: 'This document' }),
    ),
  ],
  'GET /docs': [
    { status: 200, description: 'The reference page (its own Content-Security-Policy: script-src self)', contentType: 'text/html', text: 'HTML page' },
  ],
  'GET /docs/{asset}': [
    {
      status: 200,
      description: 'swagger-ui-bundle.js, swagger-ui.css (swagger-ui-dist) or start.js',
      contentType: ['text/javascript', 'text/css'],
      text: 'The asset',
    },
  ],
  'POST /api/v1/deployments': [
    ok(
      z
        .strictObject({
          executionId: z.string(),
          status: z.literal('Pending'),
          targetEnvironment: environment,
          strategy: z.enum(STRATEGIES),
          links: self,
        })
        .meta({ id: 'DeploymentAccepted' }),
      'Accepted (Location: the deployment). A replay of an Idempotency-Key answers the same, with Idempotent-Replayed: true',
      202,
    ),
  ],
  'GET /api/v1/deployments': [ok(page(deploymentResponse, 'DeploymentPage'))],
  'GET /api/v1/deployments/{executionId}': [ok(deploymentResponse)],
  'POST /api/v1/deployments/{executionId}/rollback': [
    ok(
      z
        .strictObject({
          executionId: z.string(),
          rollback: z.strictObject({ status: z.literal('Running'), environments: z.array(environment), requestedBy: z.string(), requestedAt: time }),
          links: self,
        })
        .meta({ id: 'RollbackAccepted' }),
      'Accepted: the rollback runs',
      202,
    ),
  ],
  'POST /api/v1/deployments/{executionId}/cancel': [
    ok(
      z
        .strictObject({
          executionId: z.string(),
          status: z.enum(DEPLOYMENT_STATUSES).describe('Cancelled once the reconciler has settled it (normally within a second)'),
          cancellation,
          rollback: rollback.optional(),
          links: self,
        })
        .meta({ id: 'CancelAccepted' }),
      'Accepted: the execution is stopped',
      202,
    ),
  ],
  'POST /api/v1/deployments/{executionId}/pause': [ok(z.strictObject({ executionId: z.string(), hold, links: self }).meta({ id: 'Paused' }))],
  'POST /api/v1/deployments/{executionId}/resume': [
    ok(
      z
        .strictObject({ executionId: z.string(), resumed: z.strictObject({ by: z.string(), pausedBy: z.string().optional() }), links: self })
        .meta({ id: 'Resumed' }),
    ),
  ],
  'POST /api/v1/deployments/{executionId}/promote': [ok(z.strictObject({ executionId: z.string(), promotion, links: self }).meta({ id: 'Promoted' }))],
  'POST /api/v1/deployments/{executionId}/canary/rejudge': [
    ok(
      z
        .strictObject({
          executionId: z.string(),
          environment,
          dryRun: z.literal(true),
          settings: z.strictObject({
            confidence: z.number(),
            thresholds: z.record(z.string(), z.number()),
            minimumDeltas: z.record(z.string(), z.number()),
          }),
          waves: z.array(
            z.looseObject({
              wave: count,
              percent: z.number(),
              judgedAt: time,
              nodes: count,
              recorded: z.strictObject({ passed: z.boolean().nullable(), summary: z.string().nullable() }).nullable(),
              passed: z.boolean(),
            }),
          ),
        })
        .meta({ id: 'Rejudgement', description: 'Each wave judged again (the judgement: passed, summary, per-metric analysis); nothing changed' }),
    ),
  ],
  'GET /api/v1/clusters': [ok(z.strictObject({ items: z.array(clusterSummary) }).meta({ id: 'ClusterList' }))],
  'GET /api/v1/clusters/{environment}': [
    ok(
      clusterSummary.extend({ nodes: z.array(node).describe('Every node, decommissioned ones last (listed, counted nowhere)') }).meta({ id: 'ClusterDetail' }),
    ),
  ],
  'GET /api/v1/clusters/{environment}/metrics': [
    ok(
      z
        .strictObject({
          environment,
          at: time,
          source: z.enum(['live', 'last-reported']),
          nodeCount: count,
          reportingNodes: count,
          averages: z.strictObject({
            cpuPercent: z.number(),
            memoryPercent: z.number(),
            latencyMs: z.number(),
            errorRatePercent: z.number(),
          }),
          totalRequestsPerSecond: z.number(),
          nodes: z.array(metricsPerNode),
        })
        .meta({ id: 'ClusterMetrics' }),
    ),
  ],
  'POST /api/v1/enrolment-tokens': [
    ok(
      z
        .strictObject({
          tokenId: z.string(),
          token: z.string().describe('The secret: shown once, only its hash is kept'),
          environment,
          expiresAt: time,
          maxUses: count,
          labels: z.record(z.string(), z.string()),
        })
        .meta({ id: 'EnrolmentTokenCreated' }),
      'Created',
      201,
    ),
  ],
  'GET /api/v1/enrolment-tokens': [ok(z.strictObject({ items: z.array(token) }).meta({ id: 'EnrolmentTokenList' }))],
  'DELETE /api/v1/enrolment-tokens/{tokenId}': [ok(token, 'Revoked')],
  'POST /api/v1/enrol': [
    ok(
      z
        .strictObject({
          nodeId: z.string(),
          environment,
          transport: z.enum(['http', 'dial-out']),
          wsUrl: z.string().optional().describe('dial-out: where the agent connects'),
          address: z.string().optional().describe('http: where the orchestrator calls the agent'),
          labels: z.record(z.string(), z.string()).optional(),
          heartbeatSeconds: count,
          heartbeatPath: z.string(),
          credentials: z.strictObject({ keyId: z.string(), secret: z.string().describe("The node's own HMAC key, shown once") }),
        })
        .meta({ id: 'Enrolled' }),
      'Created',
      201,
    ),
  ],
  'POST /api/v1/nodes/{nodeId}/heartbeat': [ok(heartbeatAnswer)],
  'POST /api/v1/nodes/{nodeId}/rotate-credentials': [
    ok(rotation, 'A new key: delivered in the next heartbeat answer', 202),
    ok(rotation, 'A rotation of this node was already pending: that rotation, no new key'),
  ],
  'DELETE /api/v1/nodes/{nodeId}': [
    ok(
      z
        .strictObject({
          nodeId: z.string(),
          environment,
          status: z.enum(NODE_STATUSES),
          decommissionedAt: time,
          decommissionedBy: z.string(),
        })
        .meta({ id: 'Decommissioned' }),
    ),
  ],
  'GET /api/v1/approvals/pending': [ok(z.strictObject({ items: z.array(approval) }).meta({ id: 'ApprovalList' }))],
  'GET /api/v1/approvals/deployments/{executionId}': [
    ok(z.strictObject({ executionId: z.string(), items: z.array(approval) }).meta({ id: 'DeploymentApprovals' })),
  ],
  'POST /api/v1/approvals/deployments/{executionId}/approve': [ok(approval, 'The approval after the decision')],
  'POST /api/v1/approvals/deployments/{executionId}/reject': [ok(approval, 'The approval after the decision')],
  'GET /approvals/links/{token}': [{ status: 200, description: 'A confirmation page', contentType: 'text/html', text: 'HTML page' }],
  'POST /approvals/links/{token}': [{ status: 200, description: 'The decision, as a page', contentType: 'text/html', text: 'HTML page' }],
  'GET /api/v1/admin/users': [ok(z.strictObject({ items: z.array(principal) }).meta({ id: 'PrincipalList' }))],
  'POST /api/v1/admin/users': [
    ok(principal.extend({ subscriptions: subscriptionsOrError }).meta({ id: 'UserCreated' }), 'Created, with the email subscriptions brought in line', 201),
  ],
  'PUT /api/v1/admin/users/{userId}/roles': [ok(principal.extend({ subscriptions: subscriptionsOrError }).meta({ id: 'UserChanged' }))],
  'POST /api/v1/admin/users/{userId}/disable': [ok(principalChanged)],
  'POST /api/v1/admin/users/{userId}/enable': [ok(principalChanged)],
  'POST /api/v1/admin/clients': [
    ok(principal.extend({ clientId: z.string(), clientSecret: z.string().describe('Shown once') }).meta({ id: 'ClientCreated' }), 'Created', 201),
  ],
  'GET /api/v1/admin/subscriptions': [ok(subscriptionReport, 'What a sync would change now (dry run), and each subscription’s state')],
  'POST /api/v1/admin/subscriptions/sync': [ok(subscriptionReport)],
  'GET /api/v1/admin/rate-limits': [ok(rateLimits)],
  'PUT /api/v1/admin/rate-limits': [ok(rateLimits, 'The new settings')],
  'GET /api/v1/audit': [ok(page(auditEvent, 'AuditPage'))],
  'GET /api/v1/audit/verify': [ok(auditVerification, 'The chains checked; verified false names the first broken link')],
  'POST /api/v1/modules': [ok(moduleVersion, 'Registered (Location: the version)', 201)],
  'GET /api/v1/modules': [
    ok(z.strictObject({ items: z.array(z.strictObject({ moduleName: z.string(), versions: z.array(z.string()) })) }).meta({ id: 'ModuleList' })),
  ],
  'GET /api/v1/modules/{moduleName}/versions': [
    ok(z.strictObject({ moduleName: z.string(), items: z.array(moduleVersion) }).meta({ id: 'ModuleVersionList' })),
  ],
  'GET /api/v1/modules/{moduleName}/versions/{version}': [ok(moduleVersion)],
};

/** The JSON schema of a route's success answer with that status (for tests: `.parse` a real body). */
export function responseSchema(route: string, status = 200): z.ZodType {
  const r = RESPONSES[route]?.find((x) => x.status === status);
  if (!r || !('schema' in r)) throw new Error(`no JSON response schema for ${route} ${status}`);
  return r.schema;
}
