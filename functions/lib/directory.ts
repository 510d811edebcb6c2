/**
 * Users and service clients. The Users table is the product's own record (roles, enabled, who
 * created them) and what every request is authorised from: the authorizer takes a caller's roles
 * from here (cached for seconds, DIRECTORY_CACHE_SECONDS), never from the token. The identity
 * provider issues the tokens: Cognito on AWS (admin APIs), the local dev issuer locally.
 *
 * Names are unique across users and clients: each entry's name is held by a name item in the same
 * table (`userId = name#<name>`, kind `name`), written in one transaction with the entry.
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
  DeleteUserPoolClientCommand,
} from '@aws-sdk/client-cognito-identity-provider';
import { GetCommand, TransactWriteCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { LRUCache, type Perf } from 'lru-cache';
import { AppError } from '../domain/errors.ts';
import type { Role } from '../domain/roles.ts';
import { dynamo, scanAll } from './aws.ts';
import { config } from './config.ts';
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

const isPrincipal = (item: Record<string, unknown> | undefined): item is DirectoryEntry & Record<string, unknown> =>
  item?.kind === 'user' || item?.kind === 'client';

export async function getEntry(userId: string): Promise<DirectoryEntry | undefined> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('users'), Key: { userId }, ConsistentRead: true }));
  return isPrincipal(r.Item) ? r.Item : undefined;
}

/**
 * `load`, remembered per id for `ttlSeconds()` (read at each look-up, so it can change live), "not
 * found" included; at most `max` ids. Look-ups that miss at the same time share one read, so an
 * entry expiring under load costs one table call, not one per request in flight. A TTL of 0 reads
 * every time, each look-up on its own.
 */
export function cachedLookup(
  load: (userId: string) => Promise<DirectoryEntry | undefined>,
  opts: { ttlSeconds: () => number; max?: number; perf?: Perf },
): (userId: string) => Promise<DirectoryEntry | undefined> {
  // ttlResolution 0: ask the clock on every read (the default re-reads it at most once per millisecond by timer).
  const cache = new LRUCache<string, { entry?: DirectoryEntry }>({ max: opts.max ?? 10_000, ttlResolution: 0, ...(opts.perf ? { perf: opts.perf } : {}) });
  const reading = new Map<string, Promise<DirectoryEntry | undefined>>();
  return async (userId) => {
    const ttl = opts.ttlSeconds() * 1000;
    if (ttl <= 0) return load(userId);
    const hit = cache.get(userId);
    if (hit) return hit.entry;
    let read = reading.get(userId);
    if (!read) {
      read = load(userId)
        .then((entry) => {
          cache.set(userId, { entry }, { ttl });
          return entry;
        })
        .finally(() => reading.delete(userId));
      reading.set(userId, read);
    }
    return read;
  };
}

/** What the authorizer checks callers against: the directory as of at most DIRECTORY_CACHE_SECONDS ago. */
export const lookupEntry = cachedLookup(getEntry, { ttlSeconds: () => config.directoryCacheSeconds() });

export async function listEntries(): Promise<DirectoryEntry[]> {
  const items = await scanAll<DirectoryEntry>({
    TableName: tableName('users'),
    FilterExpression: '#kind IN (:user, :client)',
    ExpressionAttributeNames: { '#kind': 'kind' },
    ExpressionAttributeValues: { ':user': 'user', ':client': 'client' },
  });
  return items.sort((a, b) => a.username.localeCompare(b.username));
}

const nameKey = (name: string) => `name#${name}`;
/** The item that holds an entry's name (same table; listEntries and getEntry never return it). */
export const nameItem = (entry: Pick<DirectoryEntry, 'userId' | 'username'>) => ({ userId: nameKey(entry.username), kind: 'name', holder: entry.userId });
const taken = (name: string) => new AppError('AlreadyExists', `${name} already exists`, 409);

/** A name in use: by a name item, or by an entry written before name items existed. */
async function nameInUse(name: string): Promise<boolean> {
  const r = await dynamo().send(new GetCommand({ TableName: tableName('users'), Key: { userId: nameKey(name) }, ConsistentRead: true }));
  return r.Item !== undefined || (await listEntries()).some((e) => e.username === name);
}

/** The entry and the item holding its name, together or not at all: two callers racing for one name get one 201. */
export async function putWithName(entry: DirectoryEntry): Promise<void> {
  const notThere = { ConditionExpression: 'attribute_not_exists(userId)' };
  try {
    await dynamo().send(
      new TransactWriteCommand({
        TransactItems: [
          { Put: { TableName: tableName('users'), Item: nameItem(entry), ...notThere } },
          { Put: { TableName: tableName('users'), Item: entry, ...notThere } },
        ],
      }),
    );
  } catch (e) {
    if (isConditionFailure(e)) throw taken(entry.username);
    throw e;
  }
}

export async function createUser(u: { username: string; email: string; roles: Role[] }, by: string): Promise<DirectoryEntry> {
  if (await nameInUse(u.username)) throw taken(u.username);
  let userId = `user-${randomUUID()}`;
  if (pool()) {
    // Cognito usernames are unique too: a racing second create fails here.
    const r = await idp()
      .send(
        new AdminCreateUserCommand({
          UserPoolId: pool(),
          Username: u.username,
          UserAttributes: [
            { Name: 'email', Value: u.email },
            { Name: 'email_verified', Value: 'true' },
          ],
        }),
      )
      .catch((e: Error) => {
        throw e.name === 'UsernameExistsException' ? taken(u.username) : e;
      });
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
  await putWithName(entry);
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
  if (await nameInUse(name)) throw taken(name);
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
  try {
    await putWithName(entry);
  } catch (e) {
    // Cognito app client names may repeat; ours may not. The loser of a race leaves no client behind.
    if (pool()) await idp().send(new DeleteUserPoolClientCommand({ UserPoolId: pool(), ClientId: clientId }));
    throw e;
  }
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
