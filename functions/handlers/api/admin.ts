import { z } from 'zod';
import { ROLES } from '../../domain/roles.ts';
import { audit } from '../../lib/audit.ts';
import { SCOPE_ROLES } from '../../domain/accessTokens.ts';
import { createClient, createUser, listEntries, present, setEnabled, setRoles } from '../../lib/directory.ts';
import { apiHandler, json } from '../../lib/http.ts';
import { parseBody, parsePath } from '../../lib/parse.ts';
import { rateLimitSettings, rateLimitSettingsSchema, setRateLimitSettings } from '../../lib/rateLimits.ts';
import { syncSubscriptions, type SubscriptionReport } from '../../lib/subscriptions.ts';
import { logger } from '../../lib/telemetry.ts';
import { pathSchema } from './pathParameters.ts';

export const createUserSchema = z
  .object({
    username: z.string().regex(/^[a-z][a-z0-9._-]{2,63}$/, 'must be 3-64 lower-case letters, digits, dots, dashes or underscores'),
    email: z.email(),
    roles: z.array(z.enum(ROLES)).min(1).max(4),
  })
  .strict();
export const rolesSchema = z.object({ roles: z.array(z.enum(ROLES)).min(1).max(4) }).strict();
export const createClientSchema = z
  .object({
    name: z.string().regex(/^[a-z][a-z0-9-]{2,63}$/, 'must be 3-64 lower-case letters, digits or dashes'),
    scopes: z.array(z.enum(Object.keys(SCOPE_ROLES) as [string, ...string[]])).min(1),
  })
  .strict();
const userPath = pathSchema('userId');

/** Identity changes are security events. */
const record = (actor: string, action: string, subject: string, details: Record<string, unknown>) =>
  audit({ subject: `principal#${subject}`, category: 'security', action, actor, details });

/**
 * The user's email subscriptions brought in line with their new state. The directory change above
 * stands whatever happens here; a failure is reported in the answer, and the next sync (any
 * deploy, or POST /api/v1/admin/subscriptions/sync) finishes the job.
 */
async function syncUser(userId: string, actor: string): Promise<SubscriptionReport | { error: string }> {
  try {
    return await syncSubscriptions({ actor, userId });
  } catch (e) {
    logger.error('email subscriptions not synchronised', { userId, error: (e as Error).message });
    return { error: `email subscriptions not updated (${(e as Error).message}); POST /api/v1/admin/subscriptions/sync retries` };
  }
}

export const handler = apiHandler({
  'GET /api/v1/admin/users': async () => json(200, { items: (await listEntries()).map(present) }),
  'POST /api/v1/admin/users': async (event, caller) => {
    const body = parseBody(event, createUserSchema);
    const e = await createUser(body, caller.userId);
    await record(caller.userId, 'user.created', e.userId, { username: e.username, roles: e.roles });
    return json(201, { ...present(e), subscriptions: await syncUser(e.userId, caller.userId) });
  },
  'PUT /api/v1/admin/users/{userId}/roles': async (event, caller) => {
    const { userId } = parsePath(event, userPath);
    const { roles } = parseBody(event, rolesSchema);
    const e = await setRoles(userId, roles);
    await record(caller.userId, 'user.roles-changed', userId, { roles });
    return json(200, { ...present(e), subscriptions: await syncUser(userId, caller.userId) });
  },
  'POST /api/v1/admin/users/{userId}/disable': async (event, caller) => {
    const { userId } = parsePath(event, userPath);
    const e = await setEnabled(userId, false);
    await record(caller.userId, 'principal.disabled', userId, { username: e.username });
    return json(200, { ...present(e), ...(e.kind === 'user' ? { subscriptions: await syncUser(userId, caller.userId) } : {}) });
  },
  'POST /api/v1/admin/users/{userId}/enable': async (event, caller) => {
    const { userId } = parsePath(event, userPath);
    const e = await setEnabled(userId, true);
    await record(caller.userId, 'principal.enabled', userId, { username: e.username });
    return json(200, { ...present(e), ...(e.kind === 'user' ? { subscriptions: await syncUser(userId, caller.userId) } : {}) });
  },
  'POST /api/v1/admin/clients': async (event, caller) => {
    const body = parseBody(event, createClientSchema);
    const { entry, clientSecret } = await createClient(body.name, body.scopes, caller.userId);
    await record(caller.userId, 'client.created', entry.userId, { name: body.name, scopes: body.scopes });
    return json(201, { ...present(entry), clientId: entry.userId, clientSecret });
  },
  /** What a sync would change now, and each subscription's state: read-only. */
  'GET /api/v1/admin/subscriptions': async (_event, caller) => json(200, await syncSubscriptions({ actor: caller.userId, dryRun: true })),
  'POST /api/v1/admin/subscriptions/sync': async (event, caller) => {
    // No input: a body, if any, must be an empty JSON object (anything else was a mistake; refused before syncing).
    parseBody(event, z.object({}).strict().optional());
    return json(200, await syncSubscriptions({ actor: caller.userId }));
  },
  'GET /api/v1/admin/rate-limits': async () => json(200, await rateLimitSettings()),
  /** A change applies within seconds everywhere: containers re-read the settings every few seconds. */
  'PUT /api/v1/admin/rate-limits': async (event, caller) => {
    const value = parseBody(event, rateLimitSettingsSchema);
    await setRateLimitSettings(value, caller.userId);
    return json(200, value);
  },
});
