/**
 * Real hosts joining and leaving: enrolment tokens (Admin), enrolment (the token is the
 * credential), signed heartbeats (the node's own HMAC key is the credential), rotating a node's
 * key (Admin; delivered in heartbeat answers) and decommissioning.
 */
import type { APIGatewayProxyEvent } from 'aws-lambda';
import { z } from 'zod';
import { tokenState, type EnrolmentTokenRecord } from '../../domain/enrolment.ts';
import { ENVIRONMENTS } from '../../domain/environments.ts';
import { AppError, badRequest, notFound } from '../../domain/errors.ts';
import { moduleNameSchema } from '../../domain/manifest.ts';
import { config } from '../../lib/config.ts';
import { createToken, enrolNode, listTokens, revokeToken } from '../../lib/enrolment.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { authenticateNode, decommissionNode, findNode, heartbeatPath, recordHeartbeat } from '../../lib/membership.ts';
import { startNodeKeyRotation } from '../../lib/nodeKeys.ts';
import { agentKeys } from '../../lib/secrets.ts';
import { reconcileNode } from '../../lib/convergence.ts';
import { nodeStatus } from '../../domain/membership.ts';
import { parseBody, parsePath } from '../../lib/parse.ts';
import { isDialOut, NODE_TRANSPORTS } from '../../lib/nodes.ts';
import { pathSchema } from './pathParameters.ts';

const labels = z
  .record(z.string().regex(/^[A-Za-z0-9_./-]{1,63}$/, 'label keys are 1-63 characters of A-Z a-z 0-9 _ . / -'), z.string().max(256))
  .refine((m) => Object.keys(m).length <= 20, 'at most 20 labels');

export const createTokenSchema = z
  .object({
    environment: z.enum(ENVIRONMENTS),
    ttlSeconds: z
      .number()
      .int()
      .min(60)
      .max(30 * 86_400)
      .default(3600),
    maxUses: z.number().int().min(1).max(10_000).default(1),
    labels: labels.default({}),
  })
  .strict();

const heartbeatSeconds = z.number().int().min(1).max(300);
const moduleState = z
  .object({
    version: z.string().min(1).max(64),
    previousVersion: z.string().max(64).optional(),
    loadedAt: z.string().max(64),
    lastDeploymentId: z.string().max(200).optional(),
  })
  .strict();
const modules = z.record(moduleNameSchema, moduleState).refine((m) => Object.keys(m).length <= 100, 'at most 100 modules');

export const enrolSchema = z
  .object({
    token: z.string().min(1).max(256),
    /** `http` (default): the orchestrator calls the agent at `address`. `dial-out`: the agent keeps a WebSocket open instead, and has no address. */
    transport: z.enum(NODE_TRANSPORTS).default('http'),
    address: z.string().min(1).max(2048).optional(),
    heartbeatSeconds: heartbeatSeconds.default(10),
    modules: modules.default({}),
    /** Where the host's workload serves requests: the environment's traffic router sends them there. */
    workloadUrl: z.string().min(1).max(2048).optional(),
  })
  .strict()
  .superRefine((b, ctx) => {
    if (b.transport === 'http' && b.address === undefined)
      ctx.addIssue({ code: 'custom', path: ['address'], message: 'an inbound (http) agent needs the address the orchestrator calls' });
    if (b.transport === 'dial-out' && b.address !== undefined)
      ctx.addIssue({ code: 'custom', path: ['address'], message: 'a dial-out agent is never called at an address: leave it out' });
  });

const metrics = z
  .object({
    nodeId: z.string().max(128),
    at: z.string().max(64),
    cpuPercent: z.number(),
    memoryPercent: z.number(),
    latencyMs: z.number(),
    errorRatePercent: z.number(),
    requestsPerSecond: z.number(),
  })
  .strict();

export const heartbeatSchema = z
  .object({
    heartbeatSeconds,
    /** Inbound agents only: where the orchestrator calls it (a dial-out node has none). */
    address: z.string().min(1).max(2048).optional(),
    /** The workload endpoint; absent: unchanged. */
    workloadUrl: z.string().min(1).max(2048).optional(),
    health: z
      .object({
        nodeId: z.string().max(128),
        protocolVersion: z.string().max(8),
        status: z.enum(['healthy', 'unhealthy']),
        reasons: z.array(z.string().max(1000)).max(50),
        at: z.string().max(64),
        uptimeSeconds: z.number().min(0),
        modules,
        metrics,
      })
      .strict(),
    /** Convergence commands of earlier answers that failed on the agent (recorded and audited once per reason). */
    convergence: z
      .object({
        failed: z
          .array(
            z.object({ module: moduleNameSchema, deploymentId: z.string().min(1).max(200), code: z.string().max(100), message: z.string().max(1000) }).strict(),
          )
          .max(100),
      })
      .strict()
      .optional(),
  })
  .strict();

/** Optional: why the key is rotated (kept in the audit trail). */
export const rotateCredentialsSchema = z
  .object({ reason: z.string().min(1).max(500).optional() })
  .strict()
  .default({});

const nodeIdPath = pathSchema('nodeId');
const tokenIdPath = pathSchema('tokenId');

function presentToken(t: EnrolmentTokenRecord) {
  return {
    tokenId: t.tokenId,
    environment: t.environment,
    status: tokenState(t),
    createdAt: t.createdAt,
    createdBy: t.createdBy,
    expiresAt: new Date(t.expiresAt * 1000).toISOString(),
    maxUses: t.maxUses,
    uses: t.uses,
    labels: t.labels ?? {},
    ...(t.revokedAt ? { revokedAt: t.revokedAt, revokedBy: t.revokedBy } : {}),
  };
}

/** The body exactly as sent: the heartbeat signature covers these bytes. */
const rawBody = (event: APIGatewayProxyEvent) =>
  event.isBase64Encoded && event.body ? Buffer.from(event.body, 'base64').toString('utf8') : (event.body ?? '');

export const handler = apiHandler({
  'POST /api/v1/enrolment-tokens': async (event, caller) => {
    const { record, token } = await createToken(parseBody(event, createTokenSchema), caller.userId);
    const t = presentToken(record);
    return json(201, { tokenId: t.tokenId, token, environment: t.environment, expiresAt: t.expiresAt, maxUses: t.maxUses, labels: t.labels });
  },
  'GET /api/v1/enrolment-tokens': async () => json(200, { items: (await listTokens()).map(presentToken) }),
  'DELETE /api/v1/enrolment-tokens/{tokenId}': async (event, caller) => {
    const { tokenId } = parsePath(event, tokenIdPath);
    return json(200, presentToken(await revokeToken(tokenId, caller.userId)));
  },
  'POST /api/v1/enrol': async (event) => {
    const body = parseBody(event, enrolSchema);
    const wsUrl = config.agentWsUrl();
    if (body.transport === 'dial-out' && !wsUrl) throw new AppError('DialOutUnavailable', 'this orchestrator has no WebSocket API for dial-out agents', 400);
    const { node, key } = await enrolNode(body, event.requestContext?.identity?.sourceIp);
    return json(201, {
      nodeId: node.nodeId,
      environment: node.environment,
      transport: body.transport,
      ...(isDialOut(node) ? { wsUrl } : { address: node.address }),
      labels: node.labels,
      heartbeatSeconds: body.heartbeatSeconds,
      heartbeatPath: heartbeatPath(node.nodeId),
      credentials: { keyId: key.id, secret: key.secret },
    });
  },
  'POST /api/v1/nodes/{nodeId}/heartbeat': async (event) => {
    const { nodeId } = parsePath(event, nodeIdPath);
    const { node, keys, role } = await authenticateNode(nodeId, rawBody(event), event.headers ?? {});
    const body = parseBody(event, heartbeatSchema);
    if (body.health.nodeId !== nodeId) throw badRequest(`health.nodeId ${body.health.nodeId} is not ${nodeId}`);
    if (isDialOut(node) && body.address !== undefined) throw badRequest(`node ${nodeId} is dial-out: it is never called at an address`);
    if (!isDialOut(node) && body.address === undefined) throw badRequest('address is required: the orchestrator calls this node there');
    const timestamp = Number(event.headers?.['x-agent-timestamp']);
    const { lastSeenAt, ...keyAnswer } = await recordHeartbeat(
      node,
      keys,
      { timestamp, heartbeatSeconds: body.heartbeatSeconds, address: body.address ?? node.address, workloadUrl: body.workloadUrl, report: body.health },
      role,
    );
    // What the node must run to reach its environment's desired state (the agent verifies and runs it).
    const converge = await reconcileNode(node, body.health.modules, body.convergence?.failed ?? []);
    // keyAnswer: a key to adopt (the pending one) and the key ids still honoured (docs/adr/0012-node-key-rotation.md).
    return json(
      200,
      { nodeId, status: 'Online', lastSeenAt, heartbeatSeconds: body.heartbeatSeconds, ...keyAnswer, converge },
      { 'cache-control': 'no-store' },
    );
  },
  'POST /api/v1/nodes/{nodeId}/rotate-credentials': async (event, caller) => {
    const { nodeId } = parsePath(event, nodeIdPath);
    const { reason } = parseBody(event, rotateCredentialsSchema);
    const node = await findNode(nodeId);
    if (!node) throw notFound(`node ${nodeId}`);
    const rotation = await startNodeKeyRotation(node, { actor: caller.userId, trigger: 'admin', fleetKeys: await agentKeys(), reason });
    return json(rotation.started ? 202 : 200, rotation);
  },
  'DELETE /api/v1/nodes/{nodeId}': async (event, caller) => {
    const { nodeId } = parsePath(event, nodeIdPath);
    const n = await decommissionNode(nodeId, caller.userId);
    return json(200, {
      nodeId,
      environment: n.environment,
      status: nodeStatus(n, Date.now(), config.missedHeartbeats()),
      decommissionedAt: n.decommissionedAt,
      decommissionedBy: n.decommissionedBy,
    });
  },
});
