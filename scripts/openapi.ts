/**
 * The OpenAPI document, generated from the route catalog (paths, roles, summaries) and the very
 * zod schemas the handlers validate with, so it cannot drift from the code:
 *
 *   npm run openapi        # writes docs/openapi.json (and docs/asyncapi.json: the WebSocket messages),
 *                          # and the typed client's types, sdk/typescript/schema.ts (openapi-typescript)
 *
 * test/unit/scripts/openapi.test.ts fails when the committed document is not what this generates.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import openapiTS, { astToString } from 'openapi-typescript';
import { z } from 'zod';
import { ROUTES, WEBSOCKET } from '../functions/catalog.ts';
import { clientMessageSchema, errorFrameSchema, EVENT_TYPES, liveEventSchema, serverPingSchema, subscribedSchema } from '../functions/domain/liveEvents.ts';
import { agentCommandSchema, agentConnectPath, agentReplySchema, NODE_ID_HEADER, pingSchema, pongSchema } from '../functions/agent/wsProtocol.ts';
import { cancelSchema, createSchema, listSchema, pauseSchema, promoteSchema, resumeSchema, rollbackSchema } from '../functions/handlers/api/deployments.ts';
import { decisionSchema } from '../functions/handlers/api/approvals.ts';
import { registerSchema } from '../functions/handlers/api/modules.ts';
import { querySchema, verifyQuerySchema } from '../functions/handlers/api/audit.ts';
import { createClientSchema, createUserSchema, rolesSchema } from '../functions/handlers/api/admin.ts';
import { rateLimitSettingsSchema } from '../functions/lib/rateLimits.ts';
import { createTokenSchema, enrolSchema, heartbeatSchema, rotateCredentialsSchema } from '../functions/handlers/api/fleet.ts';
import { rejudgeSchema } from '../functions/lib/rejudge.ts';
import { RESPONSES, type SuccessResponse } from '../functions/handlers/api/responses.ts';
import { PATH_PARAMETERS } from '../functions/handlers/api/pathParameters.ts';

type Json = Record<string, unknown>;

/** A path parameter as the handlers validate it; the few the catalog's own pages read (`{token}`, `{asset}`) are plain strings. */
const pathParameterSchema = (name: string): Json =>
  name in PATH_PARAMETERS ? schema(PATH_PARAMETERS[name as keyof typeof PATH_PARAMETERS]) : { type: 'string' };

const schema = (s: z.ZodType): Json => {
  const { $schema: _drop, ...rest } = z.toJSONSchema(s, { unrepresentable: 'any', io: 'input' }) as Json;
  void _drop;
  return rest;
};

const BODIES: Record<string, z.ZodType> = {
  'POST /api/v1/deployments': createSchema,
  'POST /api/v1/deployments/{executionId}/rollback': rollbackSchema,
  'POST /api/v1/deployments/{executionId}/cancel': cancelSchema,
  'POST /api/v1/deployments/{executionId}/pause': pauseSchema,
  'POST /api/v1/deployments/{executionId}/resume': resumeSchema,
  'POST /api/v1/deployments/{executionId}/promote': promoteSchema,
  'POST /api/v1/deployments/{executionId}/canary/rejudge': rejudgeSchema,
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
  'POST /api/v1/nodes/{nodeId}/rotate-credentials': rotateCredentialsSchema,
};

/** Public routes that authenticate on their own (the enrolment token; the node's HMAC signature). */
const SELF_AUTHENTICATED: Record<string, string[]> = {
  'POST /api/v1/enrol': ['400', '401', '410', '415', '429'],
  'POST /api/v1/nodes/{nodeId}/heartbeat': ['400', '401', '404', '415', '429'],
};

/** The response schemas, each once under its id, with the ids they use as $refs. */
function responseComponents(): Record<string, Json> {
  const all = z.toJSONSchema(z.globalRegistry, { ...RESPONSE_JSON, uri: (id) => `#/components/schemas/${id}` }).schemas as Record<string, Json>;
  const wanted = new Set<string>();
  const visit = (id: string) => {
    if (wanted.has(id)) return;
    if (!all[id]) throw new Error(`response schema ${id} is not registered`);
    wanted.add(id);
    for (const m of JSON.stringify(all[id]).matchAll(/"#\/components\/schemas\/(\w+)"/g)) visit(m[1]);
  };
  for (const rs of Object.values(RESPONSES)) for (const r of rs) if ('schema' in r) visit(responseId(r.schema));
  return Object.fromEntries(
    [...wanted].sort().map((id) => {
      const { $schema: _s, $id: _i, ...rest } = all[id];
      void _s;
      void _i;
      return [id, rest];
    }),
  );
}

const RESPONSE_JSON = {
  io: 'output',
  unrepresentable: 'any',
  // date-time is said by `format`; zod's long equivalent pattern only makes the document unreadable.
  override: (ctx: { jsonSchema: Record<string, unknown> }) => {
    if (ctx.jsonSchema.format === 'date-time') delete ctx.jsonSchema.pattern;
  },
} as const;

const responseId = (s: z.ZodType): string => {
  const id = z.globalRegistry.get(s)?.id;
  if (!id) throw new Error('every response schema needs .meta({ id }) (functions/handlers/api/responses.ts)');
  return id;
};

function successContent(r: SuccessResponse): Json {
  return {
    description: r.description,
    content:
      'schema' in r
        ? { 'application/json': { schema: { $ref: `#/components/schemas/${responseId(r.schema)}` } } }
        : Object.fromEntries([r.contentType].flat().map((t) => [t, { schema: { type: 'string', description: r.text } }])),
  };
}

const QUERIES: Record<string, z.ZodObject> = {
  'GET /api/v1/deployments': listSchema,
  'GET /api/v1/audit': (querySchema as unknown as { _zod: { def: { in?: z.ZodObject } } })._zod.def.in ?? (querySchema as unknown as z.ZodObject),
  'GET /api/v1/audit/verify':
    (verifyQuerySchema as unknown as { _zod: { def: { in?: z.ZodObject } } })._zod.def.in ?? (verifyQuerySchema as unknown as z.ZodObject),
  'GET /api/v1/clusters/{environment}': z.object({ refresh: z.enum(['true', 'false']).optional() }),
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
    ...responseComponents(),
  },
};

const ERRORS: Record<string, string> = {
  '400': 'Invalid input (ValidationError, BodyTooLarge, UnknownModuleVersion, ArtifactDigestMismatch); nothing was changed',
  '401':
    'Missing or invalid bearer token (WWW-Authenticate: Bearer): bad signature, issuer or client; expired, not yet valid, without exp or iat, issued in the future or living longer than TOKEN_MAX_LIFETIME_SECONDS; claims of the wrong type; a subject the directory does not know or has disabled. On enrolment and heartbeats: an invalid enrolment token, or a node signature that is bad, replayed or revoked',
  '403':
    "The caller's roles, as the directory holds them now, do not allow this (Forbidden, SelfApprovalForbidden); the approver may no longer decide (NotAnApprover, ApproverDisabled, ApproverRoleRevoked, ApproverUnknown)",
  '404': 'No such resource or route',
  '409':
    'Conflict (DeploymentInProgress, EnvironmentDegraded: a rollback could not finish in an environment on the way, so it runs mixed versions of the module until that deployment is rolled back on demand or its stuck nodes converge, IdempotencyKeyReused, RollbackInProgress, DeploymentRunning, NothingToRollBack, ModuleVersionExists, AlreadyDecided, AlreadyExists; node keys: RotationInProgress, NodeDecommissioned, NotEnrolled)',
  '410':
    'The approval expired (ApprovalExpired); the enrolment token expired, was revoked or is used up (EnrolmentTokenExpired, EnrolmentTokenRevoked, EnrolmentTokenUsedUp)',
  '415': 'UnsupportedMediaType: a body must be application/json (any case), with no parameter but an optional charset=utf-8',
  '413': 'The body is over the edge limit (RequestTooLarge): 64 KiB, or 10 MiB for POST /api/v1/modules',
  '429':
    'Rate limited (Retry-After): the address is over the edge limit, which counts every request, refused ones too ("too many requests from this address"), or over an in-app limit',
};

/** What the edge (the web ACL, functions/webAcl.ts) may answer on any route, before the route's own code runs; always JSON. */
const EDGE_ERRORS = (method: string) => (method === 'POST' || method === 'PUT' ? ['413', '429'] : ['429']);

/** The email link's own 403: its approver may no longer decide (JSON, unlike the link's pages). */
const LINK_REFUSED =
  "The link's approver may no longer decide: disabled (ApproverDisabled), without the Approver or Admin role (ApproverRoleRevoked), off the environment's approver list (NotAnApprover), or not in the directory (ApproverUnknown). Nothing was changed; the refusal is audited";

export function buildOpenApi(): Json {
  const paths: Record<string, Record<string, Json>> = {};
  for (const r of ROUTES) {
    const key = `${r.method} ${r.path}`;
    const params = [...r.path.matchAll(/\{(\w+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: pathParameterSchema(m[1]) }));
    const q = QUERIES[key];
    if (q) {
      for (const [name, s] of Object.entries(q.shape as Record<string, z.ZodType>)) {
        params.push({ name, in: 'query', required: false, schema: schema(s) as never });
      }
    }
    if (key === 'POST /api/v1/deployments') params.push({ name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string' } });
    const body = BODIES[key];
    const html = r.path.startsWith('/approvals/links');
    const successes = RESPONSES[key];
    if (!successes?.length) throw new Error(`${key}: no success response in RESPONSES (functions/handlers/api/responses.ts)`);
    const routeErrors =
      SELF_AUTHENTICATED[key] ??
      (r.roles === 'public' ? (html ? ['400', '403', '404', '409', '410'] : []) : ['400', '401', '403', '404', '409', ...(body ? ['415'] : []), '429']);
    const errorCodes = [...new Set([...routeErrors, ...EDGE_ERRORS(r.method)])].sort();
    const jsonError = { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } };
    (paths[r.path] ??= {})[r.method.toLowerCase()] = {
      summary: r.summary,
      description: r.roles === 'public' ? 'Public.' : `Roles: ${r.roles.join(', ')}.`,
      ...(r.auth ? { security: [{ bearer: [] }] } : { security: [] }),
      ...(params.length ? { parameters: params } : {}),
      ...(body
        ? {
            requestBody: {
              required: !key.includes('/rollback') && !key.includes('/approvals/') && !key.includes('/rotate-credentials'),
              content: { 'application/json': { schema: schema(body) } },
            },
          }
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
        ...Object.fromEntries(successes.map((r) => [String(r.status), successContent(r)])),
        ...Object.fromEntries(
          errorCodes.map((c) => [
            c,
            html && c === '403'
              ? { description: LINK_REFUSED, content: jsonError }
              : { description: ERRORS[c], content: html && !EDGE_ERRORS(r.method).includes(c) ? { 'text/html': { schema: { type: 'string' } } } : jsonError },
          ]),
        ),
      },
    };
  }
  return {
    openapi: '3.1.0',
    info: { title: 'kmod-orchestrator API', version: '1.0.0', description: 'Deploy signed kernel modules across Development, QA, Staging and Production.' },
    // '.': the server this document was fetched from (GET /openapi.json), stage path included, so
    // the reference page at GET /docs tries requests against the API that serves it.
    servers: [
      { url: '.', description: 'The API that served this document' },
      { url: 'http://127.0.0.1:3000', description: 'local cloud (default port)' },
    ],
    paths,
    components,
  };
}

export const OPENAPI_FILE = 'docs/openapi.json';
export const ASYNCAPI_FILE = 'docs/asyncapi.json';

/**
 * The WebSocket API's dial-out agent channel as an AsyncAPI 3.0 document, from the catalog's
 * WEBSOCKET entry and the zod schemas both sides validate messages with (functions/agent/wsProtocol.ts).
 * Operations are the orchestrator's: it sends requests and pongs, and receives responses and pings.
 */
export function buildAsyncApi(): Json {
  const message = (name: string, summary: string, payload: z.ZodType) => ({ name, summary, contentType: 'application/json', payload: schema(payload) });
  const connectHeaders = {
    type: 'object',
    required: [NODE_ID_HEADER, 'x-agent-key-id', 'x-agent-timestamp', 'x-agent-signature'],
    properties: {
      [NODE_ID_HEADER]: { type: 'string', description: 'the connecting node' },
      'x-agent-key-id': { type: 'string', description: "the node's own key id" },
      'x-agent-timestamp': { type: 'string', description: 'ms since the epoch; newer than the last accepted connect' },
      'x-agent-signature': {
        type: 'string',
        description: `base64url HMAC-SHA256 over "GET\\n${agentConnectPath('<nodeId>')}\\n<timestamp>\\n<sha256 hex of the empty body>"`,
      },
      'x-agent-protocol': { type: 'string', const: '1' },
    },
  };
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'kmod-orchestrator WebSocket API: dial-out agents and operators’ live events',
      version: '1',
      description:
        "One WebSocket API for every WebSocket client (docs/adr/0010-websocket-layer.md). Dial-out agents connect with a signed upgrade and get the agent protocol's signed requests over it. Messages without an `action` field reach the $default route. Operators connect with `?token=<jwt>` (docs/adr/0028-live-events.md) and subscribe to live events.",
    },
    servers: {
      aws: { host: '{apiId}.execute-api.{region}.amazonaws.com', pathname: `/${WEBSOCKET.stage}`, protocol: 'wss', description: 'stack output WebSocketUrl' },
      local: { host: '127.0.0.1:3000', pathname: `/${WEBSOCKET.stage}`, protocol: 'ws', description: 'the local cloud (wsUrl in .local/cloud.json)' },
    },
    channels: {
      agent: {
        address: `/${WEBSOCKET.stage}`,
        description: `Route selection ${WEBSOCKET.routeSelectionExpression}; routes: ${WEBSOCKET.routes.map((r) => r.routeKey).join(', ')}`,
        messages: {
          request: { $ref: '#/components/messages/request' },
          response: { $ref: '#/components/messages/response' },
          ping: { $ref: '#/components/messages/ping' },
          pong: { $ref: '#/components/messages/pong' },
        },
        bindings: { ws: { method: 'GET', headers: connectHeaders } },
      },
      operator: {
        address: `/${WEBSOCKET.stage}`,
        description:
          'Operators’ live events (docs/adr/0028-live-events.md). Connect with ?token=<jwt> (the REST API’s bearer token; refused with 401 when missing, invalid, expired or of a disabled principal). Subscribe to a deployment, an environment or all; "after" replays stored events (retention EVENT_RETENTION_HOURS). seq increases along one global stream; a client drops a seq it already has. Events are filtered by the roles that may call the matching GET route.',
        messages: {
          subscribe: { $ref: '#/components/messages/subscribe' },
          event: { $ref: '#/components/messages/event' },
          subscribed: { $ref: '#/components/messages/subscribed' },
          error: { $ref: '#/components/messages/error' },
          serverPing: { $ref: '#/components/messages/serverPing' },
        },
        bindings: {
          ws: {
            method: 'GET',
            query: { type: 'object', required: ['token'], properties: { token: { type: 'string', description: 'a JWT the REST API accepts' } } },
          },
        },
      },
    },
    operations: {
      sendRequest: { action: 'send', channel: { $ref: '#/channels/agent' }, messages: [{ $ref: '#/channels/agent/messages/request' }] },
      receiveResponse: { action: 'receive', channel: { $ref: '#/channels/agent' }, messages: [{ $ref: '#/channels/agent/messages/response' }] },
      receivePing: { action: 'receive', channel: { $ref: '#/channels/agent' }, messages: [{ $ref: '#/channels/agent/messages/ping' }] },
      sendPong: { action: 'send', channel: { $ref: '#/channels/agent' }, messages: [{ $ref: '#/channels/agent/messages/pong' }] },
      receiveSubscribe: { action: 'receive', channel: { $ref: '#/channels/operator' }, messages: [{ $ref: '#/channels/operator/messages/subscribe' }] },
      sendEvent: { action: 'send', channel: { $ref: '#/channels/operator' }, messages: [{ $ref: '#/channels/operator/messages/event' }] },
      sendSubscribed: {
        action: 'send',
        channel: { $ref: '#/channels/operator' },
        messages: [{ $ref: '#/channels/operator/messages/subscribed' }, { $ref: '#/channels/operator/messages/error' }],
      },
      sendServerPing: { action: 'send', channel: { $ref: '#/channels/operator' }, messages: [{ $ref: '#/channels/operator/messages/serverPing' }] },
    },
    components: {
      messages: {
        request: message(
          'request',
          'A signed agent request (the same as over HTTP): headers are the x-agent-* headers, body the exact signed text',
          agentCommandSchema,
        ),
        response: message('response', "The agent's answer: the HTTP status it would have given and its JSON body", agentReplySchema),
        ping: message('ping', 'Keepalive from the agent', pingSchema),
        pong: message('pong', 'Answer to a ping (the $default route response)', pongSchema),
        subscribe: message('subscribe', 'subscribe / unsubscribe (routes of those names); exactly one of deploymentId, environment, all', clientMessageSchema),
        event: message('event', `A live event: ${EVENT_TYPES.join(', ')}`, liveEventSchema),
        subscribed: message('subscribed', 'The route response to subscribe / unsubscribe (after the replayed events)', subscribedSchema),
        error: message('error', 'A bad message: the connection stays open', errorFrameSchema),
        serverPing: message('serverPing', 'Keepalive the server sends every 5 minutes (WsEvents schedule)', serverPingSchema),
      },
    },
  };
}
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
    "route with every role. A caller's roles are the ones the directory (the Users table) holds now, read",
    'by the authorizer and cached for `DIRECTORY_CACHE_SECONDS` (5 s), never the groups in the token; a',
    'subject the directory does not know, or has disabled, is refused (401). Beyond the matrix: approvers',
    'decide only for environments whose approver list names them now (Admins always may), by API or by',
    'email link alike; a link whose approver was disabled, lost the role or left the list is refused',
    '(403); nobody decides their own deployment; and a registered service client gets the role of the',
    'OAuth scopes it was granted (`kmod/deploy` → Deployer, `kmod/read` → Viewer).',
    '',
    `| route | ${roles.join(' | ')} |`,
    `|---|${roles.map(() => '---').join('|')}|`,
    ...rows,
    '',
  ].join('\n');
}

export const SDK_SCHEMA_FILE = 'sdk/typescript/schema.ts';

/** The TypeScript types of every path, parameter and response, for openapi-fetch (sdk/typescript/client.ts). */
export async function buildSdkTypes(): Promise<string> {
  const ast = await openapiTS(buildOpenApi() as unknown as Parameters<typeof openapiTS>[0]);
  return `/**\n * Generated by \`npm run openapi\` from docs/openapi.json (openapi-typescript). Do not edit.\n */\n\n${astToString(ast)}`;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  writeFileSync(OPENAPI_FILE, `${JSON.stringify(buildOpenApi(), null, 2)}\n`);
  mkdirSync('sdk/typescript', { recursive: true });
  writeFileSync(SDK_SCHEMA_FILE, await buildSdkTypes());
  mkdirSync('docs/security', { recursive: true });
  writeFileSync(AUTHZ_FILE, buildAuthorizationDoc());
  writeFileSync(ASYNCAPI_FILE, `${JSON.stringify(buildAsyncApi(), null, 2)}\n`);
  console.log(`wrote ${OPENAPI_FILE}, ${ASYNCAPI_FILE}, ${AUTHZ_FILE} and ${SDK_SCHEMA_FILE}`);
}
