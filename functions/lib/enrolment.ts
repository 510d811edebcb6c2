/**
 * Enrolment: Admins create tokens for an environment; a host presents one (it is the credential)
 * and becomes a node with its own HMAC key. Uses are counted by a conditional write in the same
 * transaction that creates the node, so `maxUses` holds under concurrency.
 */
import { randomBytes } from 'node:crypto';
import { TransactionCanceledException } from '@aws-sdk/client-dynamodb';
import { GetCommand } from '@aws-sdk/lib-dynamodb';
import type { AgentKey, ModuleState } from '../agent/protocol.ts';
import {
  enrolmentRefusal,
  hashSecret,
  newEnrolmentToken,
  parseEnrolmentToken,
  secretMatches,
  tokenState,
  type EnrolmentTokenRecord,
} from '../domain/enrolment.ts';
import { ENVIRONMENT_PROFILES, type Environment } from '../domain/environments.ts';
import { AppError, notFound } from '../domain/errors.ts';
import { newNodeKey, wrapSecret } from '../domain/nodeCredentials.ts';
import { checkAgentAddress } from '../domain/ssrf.ts';
import { strategyFor } from '../strategies/registry.ts';
import { auditItem } from './audit.ts';
import { dynamo, scanAll } from './aws.ts';
import { config } from './config.ts';
import { isConditionFailure } from './deployments.ts';
import { listNodes, listNodesByEnvironment, type NodeRecord, type NodeTransport } from './nodes.ts';
import { agentKeys } from './secrets.ts';
import { tableName } from './tables.ts';
import { routeNodeChange } from './trafficRouter.ts';
import { transactWrite } from './auditChain.ts';

export const tokenSubject = (tokenId: string) => `enrolment-token#${tokenId}`;
export const nodeSubject = (nodeId: string) => `node#${nodeId}`;

export interface NewToken {
  environment: Environment;
  ttlSeconds: number;
  maxUses: number;
  labels: Record<string, string>;
}

export async function createToken(t: NewToken, actor: string): Promise<{ record: EnrolmentTokenRecord; token: string }> {
  const { tokenId, secret, token } = newEnrolmentToken();
  const now = new Date();
  const record: EnrolmentTokenRecord = {
    tokenId,
    environment: t.environment,
    secretHash: hashSecret(secret),
    createdAt: now.toISOString(),
    createdBy: actor,
    expiresAt: Math.floor(now.getTime() / 1000) + t.ttlSeconds,
    maxUses: t.maxUses,
    uses: 0,
    labels: t.labels,
  };
  const audit = {
    subject: tokenSubject(tokenId),
    category: 'security' as const,
    action: 'enrolment-token.created',
    actor,
    details: { environment: t.environment, maxUses: t.maxUses, ttlSeconds: t.ttlSeconds, labels: t.labels },
  };
  await transactWrite([
    { Put: { TableName: tableName('enrolmentTokens'), Item: record, ConditionExpression: 'attribute_not_exists(tokenId)' } },
    { Put: auditItem(audit) },
  ]);
  return { record, token };
}

/** Every token, newest first (a handful: they are short-lived and expire by TTL). */
export async function listTokens(): Promise<EnrolmentTokenRecord[]> {
  const items = await scanAll<EnrolmentTokenRecord>({ TableName: tableName('enrolmentTokens'), ConsistentRead: true });
  return items.sort((a, b) => b.createdAt.localeCompare(a.createdAt));
}

async function getToken(tokenId: string): Promise<EnrolmentTokenRecord | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('enrolmentTokens'), Key: { tokenId }, ConsistentRead: true }));
  return r.Item as EnrolmentTokenRecord | undefined;
}

/** Revoke (idempotent: revoking a revoked token changes nothing and answers the same). */
export async function revokeToken(tokenId: string, actor: string): Promise<EnrolmentTokenRecord> {
  const now = new Date().toISOString();
  try {
    await transactWrite([
      {
        Update: {
          TableName: tableName('enrolmentTokens'),
          Key: { tokenId },
          UpdateExpression: 'SET revokedAt = :now, revokedBy = :actor',
          ConditionExpression: 'attribute_exists(tokenId) AND attribute_not_exists(revokedAt)',
          ExpressionAttributeValues: { ':now': now, ':actor': actor },
        },
      },
      { Put: auditItem({ subject: tokenSubject(tokenId), category: 'security', action: 'enrolment-token.revoked', actor }) },
    ]);
  } catch (e) {
    if (!isConditionFailure(e)) throw e;
  }
  const t = await getToken(tokenId);
  if (!t) throw notFound(`enrolment token ${tokenId}`);
  return t;
}

/** The stored token a presented one stands for, if it may enrol now; otherwise the 401/410 refusal. */
async function usableToken(presented: string): Promise<EnrolmentTokenRecord> {
  const parsed = parseEnrolmentToken(presented);
  const t = parsed && (await getToken(parsed.tokenId));
  if (!parsed || !t || !secretMatches(parsed.secret, t.secretHash)) throw refusal('Invalid');
  const state = tokenState(t);
  if (state !== 'Active') throw refusal(state);
  return t;
}

function refusal(state: Parameters<typeof enrolmentRefusal>[0]): AppError {
  const r = enrolmentRefusal(state);
  return new AppError(r.code, r.message, r.status);
}

export interface EnrolRequest {
  token: string;
  transport: NodeTransport;
  /** Inbound (http) agents only. */
  address?: string;
  heartbeatSeconds: number;
  modules: Record<string, ModuleState>;
  workloadUrl?: string;
}

export interface Enrolled {
  node: NodeRecord;
  key: AgentKey;
}

/** Blue-green environments: a new host joins the colour with fewer nodes. */
async function colourFor(environment: Environment): Promise<NodeRecord['colour']> {
  if (!strategyFor(ENVIRONMENT_PROFILES[environment].strategy).usesColours) return undefined;
  const nodes = await listNodes(environment);
  return nodes.filter((n) => n.colour === 'blue').length <= nodes.filter((n) => n.colour === 'green').length ? 'blue' : 'green';
}

const isLoopback = (host: string) => host === 'localhost' || host === '::1' || host === '[::1]' || /^127\./.test(host);
/** host:port with the scheme's default port made explicit, every loopback name as one. */
function originKey(u: URL): string {
  const host = u.hostname.toLowerCase().replace(/\.$/, '');
  return `${isLoopback(host) ? 'loopback' : host}:${u.port || (u.protocol === 'https:' ? '443' : '80')}`;
}
const sameHost = (a: URL, b: URL) => originKey(a).split(':')[0] === originKey(b).split(':')[0];

/** The orchestrator's own endpoints (the API, the routers, the local cloud's services): never a workload. */
function ownOrigins(): string[] {
  const urls = [
    process.env.PUBLIC_API_URL,
    process.env.AGENT_WS_URL?.replace(/^ws/, 'http'),
    ...Object.values(JSON.parse(process.env.LOCAL_ROUTER_URLS || '{}') as Record<string, string>),
    ...Object.entries(process.env)
      .filter(([k]) => k.startsWith('AWS_ENDPOINT_URL'))
      .map(([, v]) => v),
  ];
  return urls.flatMap((u) => {
    try {
      return u ? [originKey(new URL(u))] : [];
    } catch {
      return [];
    }
  });
}

/**
 * A workload endpoint is what the environment's router sends users' requests to, so it must be
 * the node's own: inside the agent allowlist (the same SSRF guard as the agent's address), on the
 * same host as the node's agent (inbound agents), none of the orchestrator's own endpoints, and no
 * other live node's (which would take that node's share and be counted as it).
 */
export async function checkWorkloadUrl(url: string, node: { nodeId?: string; address?: string }): Promise<void> {
  const guard = checkAgentAddress(url, config.agentAllowedHosts());
  if (!guard.ok) throw new AppError('AddressRefused', `the workload URL is refused: ${guard.reason}`, 400);
  const target = guard.url;
  if (node.address) {
    const own = new URL(node.address);
    if (!sameHost(own, target)) throw new AppError('AddressRefused', `the workload URL is refused: it must be on the node's own host (${own.hostname})`, 400);
    if (originKey(own) === originKey(target)) throw new AppError('AddressRefused', "the workload URL is refused: it is the agent's own address", 400);
  }
  if (ownOrigins().includes(originKey(target)))
    throw new AppError('AddressRefused', "the workload URL is refused: it is one of the orchestrator's own endpoints", 400);
  const everyone = [...(await listNodesByEnvironment()).values()].flat();
  const holder = everyone.find((n) => n.nodeId !== node.nodeId && n.workloadUrl && originKey(new URL(n.workloadUrl)) === originKey(target));
  if (holder) throw new AppError('WorkloadUrlInUse', `the workload URL is refused: node ${holder.nodeId} serves there`, 409);
}

export async function enrolNode(req: EnrolRequest, sourceIp: string | undefined): Promise<Enrolled> {
  const t = await usableToken(req.token);
  const environment = t.environment as Environment;
  // A dial-out node is never called at an address, so it has none to check.
  if (req.transport === 'http') {
    const guard = checkAgentAddress(req.address ?? '', config.agentAllowedHosts());
    if (!guard.ok) throw new AppError('AddressRefused', `the advertised address is refused: ${guard.reason}`, 400);
  }
  if (req.workloadUrl !== undefined) await checkWorkloadUrl(req.workloadUrl, { address: req.transport === 'http' ? req.address : undefined });
  const nodeId = `host-${randomBytes(5).toString('hex')}`;
  const key = newNodeKey();
  const [wrapWith] = await agentKeys();
  const now = new Date();
  const node: NodeRecord = {
    environment,
    nodeId,
    address: req.transport === 'http' ? (req.address ?? '') : '',
    ...(req.transport === 'dial-out' ? { transport: 'dial-out' as const } : {}),
    ...(req.workloadUrl ? { workloadUrl: req.workloadUrl } : {}),
    colour: await colourFor(environment),
    modules: Object.fromEntries(
      Object.entries(req.modules).map(([m, s]) => [m, { version: s.version, previousVersion: s.previousVersion, updatedAt: s.loadedAt }]),
    ),
    registeredAt: now.toISOString(),
    enrolment: { tokenId: t.tokenId, enrolledAt: now.toISOString(), heartbeatSeconds: req.heartbeatSeconds },
    credential: {
      keyId: key.id,
      wrapped: wrapSecret(key.secret, nodeId, wrapWith),
      issuedAt: now.toISOString(),
      issuedUnder: wrapWith.id,
      activeSince: now.toISOString(),
    },
    labels: t.labels,
    lastSeenAt: now.toISOString(),
  };
  await writeEnrolment(t, node, sourceIp, Math.floor(now.getTime() / 1000));
  // Its workload takes its share of the environment's requests from now on.
  await routeNodeChange(node, undefined, `node:${nodeId}`);
  return { node, key };
}

/** One transaction: count the use (conditionally), create the node, audit the join and the new key. */
async function writeEnrolment(t: EnrolmentTokenRecord, node: NodeRecord, sourceIp: string | undefined, nowSeconds: number): Promise<void> {
  const actor = `node:${node.nodeId}`;
  try {
    await transactWrite([
      {
        Update: {
          TableName: tableName('enrolmentTokens'),
          Key: { tokenId: t.tokenId },
          UpdateExpression: 'SET uses = uses + :one',
          ConditionExpression: 'attribute_exists(tokenId) AND attribute_not_exists(revokedAt) AND uses < maxUses AND expiresAt > :now',
          ExpressionAttributeValues: { ':one': 1, ':now': nowSeconds },
        },
      },
      { Put: { TableName: tableName('nodes'), Item: node, ConditionExpression: 'attribute_not_exists(nodeId)' } },
      {
        Put: auditItem({
          subject: nodeSubject(node.nodeId),
          category: 'node',
          action: 'node.enrolled',
          actor,
          details: {
            environment: node.environment,
            transport: node.transport ?? 'http',
            address: node.address || undefined,
            workloadUrl: node.workloadUrl,
            tokenId: t.tokenId,
            sourceIp,
            labels: node.labels,
          },
        }),
      },
      {
        Put: auditItem({
          subject: nodeSubject(node.nodeId),
          category: 'security',
          action: 'node.credentials.issued',
          actor,
          details: { keyId: node.credential!.keyId, wrapKeyId: node.credential!.wrapped.wrapKeyId },
        }),
      },
    ]);
  } catch (e) {
    if (!(e instanceof TransactionCanceledException) || !isConditionFailure(e)) throw e;
    // Another host took the last use (or the token was revoked) between the read and the write.
    const now = await getToken(t.tokenId);
    const state = now ? tokenState(now) : 'Invalid';
    throw refusal(state === 'Active' ? 'UsedUp' : state);
  }
}
