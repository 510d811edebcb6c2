/**
 * Users and service clients. The Users table is the product's own record (roles, enabled, who
 * created them) and what the authorizer checks to refuse disabled principals at once; the identity
 * provider issues the tokens: Cognito on AWS (admin APIs), the local dev issuer locally.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import {
  AdminAddUserToGroupCommand,
  AdminCreateUserCommand,
  AdminDisableUserCommand,
  AdminEnableUserCommand,
  AdminRemoveUserFromGroupCommand,
  AdminUserGlobalSignOutCommand,
  CognitoIdentityProviderClient,
  CreateUserPoolClientCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { GetCommand, PutCommand, ScanCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { AppError } from '../domain/errors.ts';
import type { Role } from '../domain/roles.ts';
import { dynamo } from './aws.ts';
import { isConditionFailure } from './deployments.ts';
import { tableName } from './tables.ts';

export interface DirectoryEntry {
  userId: string;
  kind: 'user' | 'client';
  username: string;
  email?: string;
  roles: Role[];
  scopes?: string[];
  enabled: boolean;
  createdAt: string;
  createdBy: string;
  /** Local service clients only: SHA-256 of the secret (Cognito keeps its own). */
  secretHash?: string;
}

let cognito: CognitoIdentityProviderClient | undefined;
const pool = () => process.env.COGNITO_USER_POOL_ID;
const idp = () => (cognito ??= new CognitoIdentityProviderClient({}));

export async function getEntry(userId: string): Promise<DirectoryEntry | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('users'), Key: { userId }, ConsistentRead: true }));
  return r.Item as DirectoryEntry | undefined;
}

export async function listEntries(): Promise<DirectoryEntry[]> {
  const items: DirectoryEntry[] = [];
  let cursor: Record<string, unknown> | undefined;
  do {
    const r = await dynamo().send(new ScanCommand({ TableName: tableName('users'), ExclusiveStartKey: cursor }));
    items.push(...((r.Items ?? []) as DirectoryEntry[]));
    cursor = r.LastEvaluatedKey;
  } while (cursor);
  return items.sort((a, b) => a.username.localeCompare(b.username));
}

async function put(entry: DirectoryEntry): Promise<void> {
  try {
    await dynamo().send(new PutCommand({ TableName: tableName('users'), Item: entry, ConditionExpression: 'attribute_not_exists(userId)' }));
  } catch (e) {
    if (isConditionFailure(e)) throw new AppError('AlreadyExists', `${entry.username} already exists`, 409);
    throw e;
  }
}

export async function createUser(u: { username: string; email: string; roles: Role[] }, by: string): Promise<DirectoryEntry> {
  if ((await listEntries()).some((e) => e.username === u.username)) throw new AppError('AlreadyExists', `${u.username} already exists`, 409);
  let userId = `user-${randomUUID()}`;
  if (pool()) {
    const r = await idp().send(
      new AdminCreateUserCommand({
        UserPoolId: pool(),
        Username: u.username,
        UserAttributes: [
          { Name: 'email', Value: u.email },
          { Name: 'email_verified', Value: 'true' },
        ],
      }),
    );
    userId = r.User?.Attributes?.find((a) => a.Name === 'sub')?.Value ?? userId;
    for (const role of u.roles) await idp().send(new AdminAddUserToGroupCommand({ UserPoolId: pool(), Username: u.username, GroupName: role }));
  }
  const entry: DirectoryEntry = {
    userId,
    kind: 'user',
    username: u.username,
    email: u.email,
    roles: u.roles,
    enabled: true,
    createdAt: new Date().toISOString(),
    createdBy: by,
  };
  await put(entry);
  return entry;
}

async function requireEntry(userId: string): Promise<DirectoryEntry> {
  const e = await getEntry(userId);
  if (!e) throw new AppError('NotFound', `no user or client ${userId}`, 404);
  return e;
}

export async function setRoles(userId: string, roles: Role[]): Promise<DirectoryEntry> {
  const e = await requireEntry(userId);
  if (e.kind !== 'user') throw new AppError('ValidationError', 'service clients get their role from their scopes');
  if (pool()) {
    for (const role of roles.filter((r) => !e.roles.includes(r)))
      await idp().send(new AdminAddUserToGroupCommand({ UserPoolId: pool(), Username: e.username, GroupName: role }));
    for (const role of e.roles.filter((r) => !roles.includes(r)))
      await idp().send(new AdminRemoveUserFromGroupCommand({ UserPoolId: pool(), Username: e.username, GroupName: role }));
  }
  await dynamo().send(
    new UpdateCommand({
      TableName: tableName('users'),
      Key: { userId },
      UpdateExpression: 'SET #r = :r',
      ExpressionAttributeNames: { '#r': 'roles' },
      ExpressionAttributeValues: { ':r': roles },
    }),
  );
  return { ...e, roles };
}

export async function setEnabled(userId: string, enabled: boolean): Promise<DirectoryEntry> {
  const e = await requireEntry(userId);
  if (pool() && e.kind === 'user') {
    if (enabled) await idp().send(new AdminEnableUserCommand({ UserPoolId: pool(), Username: e.username }));
    else {
      await idp().send(new AdminDisableUserCommand({ UserPoolId: pool(), Username: e.username }));
      await idp().send(new AdminUserGlobalSignOutCommand({ UserPoolId: pool(), Username: e.username }));
    }
  }
  await dynamo().send(
    new UpdateCommand({ TableName: tableName('users'), Key: { userId }, UpdateExpression: 'SET enabled = :e', ExpressionAttributeValues: { ':e': enabled } }),
  );
  return { ...e, enabled };
}

const hash = (secret: string) => createHash('sha256').update(secret).digest('hex');

/** A service principal for the client-credentials flow; the secret is shown once. */
export async function createClient(name: string, scopes: string[], by: string): Promise<{ entry: DirectoryEntry; clientSecret: string }> {
  let clientId = `client-${randomBytes(8).toString('hex')}`;
  let clientSecret = randomBytes(32).toString('base64url');
  if (pool()) {
    const r = await idp().send(
      new CreateUserPoolClientCommand({
        UserPoolId: pool(),
        ClientName: name,
        GenerateSecret: true,
        AllowedOAuthFlows: ['client_credentials'],
        AllowedOAuthFlowsUserPoolClient: true,
        AllowedOAuthScopes: scopes,
      }),
    );
    clientId = r.UserPoolClient!.ClientId!;
    clientSecret = r.UserPoolClient!.ClientSecret!;
  }
  const entry: DirectoryEntry = {
    userId: clientId,
    kind: 'client',
    username: name,
    roles: [],
    scopes,
    enabled: true,
    createdAt: new Date().toISOString(),
    createdBy: by,
    ...(pool() ? {} : { secretHash: hash(clientSecret) }),
  };
  await put(entry);
  return { entry, clientSecret };
}

export function secretMatches(entry: DirectoryEntry, secret: string): boolean {
  if (!entry.secretHash) return false;
  const a = Buffer.from(entry.secretHash);
  const b = Buffer.from(hash(secret));
  return a.length === b.length && timingSafeEqual(a, b);
}

export function present(e: DirectoryEntry) {
  const { secretHash: _h, ...visible } = e;
  void _h;
  return visible;
}
