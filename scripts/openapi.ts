/**
 * The OpenAPI document, generated from the route catalog (paths, roles, summaries) and the very
 * zod schemas the handlers validate with, so it cannot drift from the code:
 *
 *   npm run openapi        # writes docs/openapi.json
 *
 * test/unit/scripts/openapi.test.ts fails when the committed document is not what this generates.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { ROUTES } from '../functions/catalog.ts';
import { DEPLOYMENT_STATUSES, STAGE_STATUSES } from '../functions/domain/deployment.ts';
import { ENVIRONMENTS, STRATEGIES } from '../functions/domain/environments.ts';
import { createSchema, listSchema, rollbackSchema } from '../functions/handlers/api/deployments.ts';
import { decisionSchema } from '../functions/handlers/api/approvals.ts';
import { registerSchema } from '../functions/handlers/api/modules.ts';
import { querySchema } from '../functions/handlers/api/audit.ts';
import { createClientSchema, createUserSchema, rolesSchema } from '../functions/handlers/api/admin.ts';
import { rateLimitSettingsSchema } from '../functions/lib/rateLimits.ts';
import { createTokenSchema, enrolSchema, heartbeatSchema } from '../functions/handlers/api/fleet.ts';
import { UNREACHABLE_POLICIES } from '../functions/domain/membership.ts';

type Json = Record<string, unknown>;

const schema = (s: z.ZodType): Json => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' }) as Json;
  void _drop;
  return rest;
};

const BODIES: Record<string, z.ZodType> = {
  'POST /api/v1/deployments': createSchema,
  'POST /api/v1/deployments/{executionId}/rollback': rollbackSchema,
  'POST /api/v1/approvals/deployments/{executionId}/approve': decisionSchema,
  'POST /api/v1/approvals/deployments/{executionId}/reject': decisionSchema,
  'POST /api/v1/modules': registerSchema,
  'POST /api/v1/admin/users': createUserSchema,
  'PUT /api/v1/admin/users/{userId}/roles': rolesSchema,
  'POST /api/v1/admin/clients': createClientSchema,
  'PUT /api/v1/admin/rate-limits': rateLimitSettingsSchema,
  'POST /api/v1/enrolment-tokens': createTokenSchema,
  'POST /api/v1/enrol': enrolSchema,
  'POST /api/v1/nodes/{nodeId}/heartbeat': heartbeatSchema,
};

/** Public routes that authenticate on their own (the enrolment token; the node's HMAC signature). */
const SELF_AUTHENTICATED: Record<string, string[]> = {
  'POST /api/v1/enrol': ['400', '401', '410', '415', '429'],
  'POST /api/v1/nodes/{nodeId}/heartbeat': ['400', '401', '404', '415', '429'],
};

const QUERIES: Record<string, z.ZodObject> = {
  'GET /api/v1/deployments': listSchema,
  'GET /api/v1/audit': (querySchema as unknown as { _zod: { def: { in?: z.ZodObject } } })._zod.def.in ?? (querySchema as unknown as z.ZodObject),
  'GET /api/v1/clusters/{environment}': z.object({ refresh: z.enum(['true', 'false']).optional() }),
};

const stage = {
  type: 'object',
  properties: {
    name: { type: 'string' },
    kind: { enum: ['check', 'environment', 'validation'] },
    status: { enum: STAGE_STATUSES },
    environment: { enum: ENVIRONMENTS },
    strategy: { enum: STRATEGIES },
    startedAt: { type: 'string', format: 'date-time' },
    finishedAt: { type: 'string', format: 'date-time' },
    durationMs: { type: 'integer' },
    message: { type: 'string' },
    nodesTotal: { type: 'integer' },
    nodesDeployed: { type: 'integer' },
    nodesFailed: { type: 'integer' },
    nodesRolledBack: { type: 'integer' },
    approval: { type: 'object', description: 'Staging and Production: the gate (status, approvers, quorum, requestedAt, deadline, decisions)' },
    details: { type: 'object', description: 'Strategy details: batches, canary waves and their analysis, blue-green colours, smoke tests' },
  },
};

const components = {
  securitySchemes: {
    bearer: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT', description: 'Cognito access token (groups Admin, Deployer, Viewer, Approver)' },
  },
  schemas: {
    Error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string', description: 'Stable machine-readable code' }, message: { type: 'string' }, details: {} },
    },
    Stage: stage,
    Deployment: {
      type: 'object',
      properties: {
        executionId: { type: 'string' },
        moduleName: { type: 'string' },
        version: { type: 'string' },
        targetEnvironment: { enum: ENVIRONMENTS },
        status: { enum: DEPLOYMENT_STATUSES },
        requestedBy: { type: 'string' },
        createdAt: { type: 'string', format: 'date-time' },
        updatedAt: { type: 'string', format: 'date-time' },
        finishedAt: { type: 'string', format: 'date-time' },
        metadata: { type: 'object', additionalProperties: { type: 'string' } },
        unreachableNodes: { enum: UNREACHABLE_POLICIES, description: 'What planning does with enrolled nodes that stopped heartbeating' },
        failure: { type: 'object', properties: { stage: { type: 'string' }, code: { type: 'string' }, message: { type: 'string' } } },
        rollback: { type: 'object' },
        stages: { type: 'array', items: { $ref: '#/components/schemas/Stage' } },
      },
    },
  },
};

const ERRORS: Record<string, string> = {
  '400': 'Invalid input (ValidationError, BodyTooLarge, UnknownModuleVersion, ArtifactDigestMismatch); nothing was changed',
  '401':
    'Missing or invalid bearer token (WWW-Authenticate: Bearer); on enrolment and heartbeats: an invalid enrolment token, or a node signature that is bad, replayed or revoked',
  '403': 'The role may not do this (Forbidden, SelfApprovalForbidden, NotAnApprover)',
  '404': 'No such resource or route',
  '409': 'Conflict (DeploymentInProgress, IdempotencyKeyReused, RollbackInProgress, DeploymentRunning, NothingToRollBack, ModuleVersionExists, AlreadyDecided)',
  '410':
    'The approval expired (ApprovalExpired); the enrolment token expired, was revoked or is used up (EnrolmentTokenExpired, EnrolmentTokenRevoked, EnrolmentTokenUsedUp)',
  '415': 'The body must be application/json',
  '413': 'The body is over the edge limit (RequestTooLarge): 64 KiB, or 10 MiB for POST /api/v1/modules',
  '429':
    'Rate limited (Retry-After): the address is over the edge limit, which counts every request, refused ones too ("too many requests from this address"), or over an in-app limit',
};

/** What the edge (the web ACL, functions/webAcl.ts) may answer on any route, before the route's own code runs; always JSON. */
const EDGE_ERRORS = (method: string) => (method === 'POST' || method === 'PUT' ? ['413', '429'] : ['429']);

export function buildOpenApi(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of ROUTES) {
    const key = `${r.method} ${r.path}`;
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
    const q = QUERIES[key];
    if (q) {
      for (const [name, s] of Object.entries(q.shape as Record<string, z.ZodType>)) {
        params.push({ name, in: 'query', required: false, schema: schema(s) as never });
      }
    }
    if (key === 'POST /api/v1/deployments') params.push({ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' } });
    const body = BODIES[key];
    const html = r.path.startsWith('/approvals/links');
    const created =
      r.method === 'POST' && ['/api/v1/modules', '/api/v1/admin/users', '/api/v1/admin/clients', '/api/v1/enrolment-tokens', '/api/v1/enrol'].includes(r.path);
    const ok = r.method === 'POST' && (r.path === '/api/v1/deployments' || r.path.endsWith('/rollback')) ? '202' : created ? '201' : '200';
    const okContent = html
      ? { 'text/html': { schema: { type: 'string' } } }
      : r.path === '/metrics'
        ? { 'text/plain': { schema: { type: 'string' } } }
        : r.path.startsWith('/api/v1/deployments/{executionId}') && r.method === 'GET'
          ? { 'application/json': { schema: { $ref: '#/components/schemas/Deployment' } } }
          : { 'application/json': { schema: { type: 'object' } } };
    const routeErrors =
      SELF_AUTHENTICATED[key] ?? (r.roles === 'public' ? (html ? ['400', '404', '409', '410'] : []) : ['400', '401', '403', '404', '409', '429']);
    const errorCodes = [...new Set([...routeErrors, ...EDGE_ERRORS(r.method)])].sort();
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      description: r.roles === 'public' ? 'Public.' : `Roles: ${r.roles.join(', ')}.`,
      ...(r.auth ? { security: [{ bearer: [] }] } : { security: [] }),
      ...(params.length ? { parameters: params } : {}),
      ...(body
        ? { requestBody: { required: !key.includes('/rollback') && !key.includes('/approvals/'), content: { 'application/json': { schema: schema(body) } } } }
        : html && r.method === 'POST'
          ? {
              requestBody: {
                content: {
                  'application/x-www-form-urlencoded': {
                    schema: { type: 'object', properties: { confirm: { enum: ['approve', 'reject'] }, reason: { type: 'string' } } },
                  },
                },
              },
            }
          : {}),
      responses: {
        [ok]: { description: 'OK', content: okContent },
        ...Object.fromEntries(
          errorCodes.map((c) => [
            c,
            {
              description: ERRORS[c],
              content:
                html && !EDGE_ERRORS(r.method).includes(c)
                  ? { 'text/html': { schema: { type: 'string' } } }
                  : { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
            },
          ]),
        ),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'kmod-orchestrator API', version: '1.0.0', description: 'Deploy signed kernel modules across Development, QA, Staging and Production.' },
    servers: [{ url: 'http://127.0.0.1:3000', description: 'local cloud' }],
    paths,
    components,
  };
}

export const OPENAPI_FILE = 'docs/openapi.json';
export const AUTHZ_FILE = 'docs/security/authorization.md';

/** The authorization matrix as a table: one row per route, one column per role. */
export function buildAuthorizationDoc(): string {
  const roles = ['Admin', 'Deployer', 'Approver', 'Viewer'] as const;
  const rows = ROUTES.map((r) => {
    const cells = roles.map((role) => (r.roles === 'public' ? 'public' : r.roles.includes(role) ? 'yes' : '—'));
    return `| \`${r.method} ${r.path}\` | ${cells.join(' | ')} |`;
  });
  return [
    '# Authorization matrix',
    '',
    'Generated from `ROUTES` in `functions/catalog.ts` (`npm run openapi`), the one place the rules live;',
    '`lib/middleware/authorize.ts` enforces them for every route and `test/integration/api-edge.test.ts` checks every',
    'route with every role. Beyond the matrix: approvers decide only for environments whose approver',
    'list names them (Admins always may), nobody decides their own deployment, and service clients get',
    'the role of their OAuth scope (`kmod/deploy` → Deployer, `kmod/read` → Viewer).',
    '',
    `| route | ${roles.join(' | ')} |`,
    `|---|${roles.map(() => '---').join('|')}|`,
    ...rows,
    '',
  ].join('\n');
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_FILE, `${JSON.stringify(buildOpenApi(), null, 2)}\n`);
  mkdirSync('docs/security', { recursive: true });
  writeFileSync(AUTHZ_FILE, buildAuthorizationDoc());
  console.log(`wrote ${OPENAPI_FILE} and ${AUTHZ_FILE}`);
}
