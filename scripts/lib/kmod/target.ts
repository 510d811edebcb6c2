/**
 * Where the kmod CLI sends its requests, and with which bearer token.
 *
 * - `KMOD_API_URL` and `KMOD_TOKEN` (a deployed API; the token from your identity provider; and
 *   `KMOD_WS_URL`, the stack's WebSocketUrl output, for live `--watch`), or
 * - a local cloud's `cloud.json` (apiUrl, tokens by role): `--cloud-file`, else `KMOD_CLOUD_FILE`,
 *   else `$KMOD_DATA_DIR/cloud.json`, else `.local/cloud.json` in the working directory.
 *
 * `--as <role>` picks the role's token from cloud.json; each command has a sensible default.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const ROLES = ['Deployer', 'Approver', 'Admin', 'Viewer'] as const;
export type Role = (typeof ROLES)[number];

export interface Target {
  apiUrl: string;
  token: string;
  /** The WebSocket API for live events (`--watch`); without it, watching polls. */
  wsUrl?: string;
  /** Where it came from, for error messages. */
  source: string;
}

export class UsageError extends Error {}

type Env = Record<string, string | undefined>;

export function cloudFileOf(opts: { cloudFile?: string }, env: Env, cwd: string): string {
  if (opts.cloudFile) return resolve(cwd, opts.cloudFile);
  if (env.KMOD_CLOUD_FILE) return resolve(cwd, env.KMOD_CLOUD_FILE);
  if (env.KMOD_DATA_DIR) return resolve(cwd, env.KMOD_DATA_DIR, 'cloud.json');
  return join(cwd, '.local', 'cloud.json');
}

export function resolveTarget(opts: { as?: string; cloudFile?: string }, defaultRole: Role, env: Env = process.env, cwd = process.cwd()): Target {
  const role = (opts.as ?? defaultRole) as Role;
  if (!ROLES.includes(role)) throw new UsageError(`--as must be one of ${ROLES.join(', ')}`);
  const explicitFile = opts.cloudFile ?? env.KMOD_CLOUD_FILE;
  if (env.KMOD_API_URL && !explicitFile) {
    if (!env.KMOD_TOKEN) throw new UsageError('KMOD_API_URL is set but KMOD_TOKEN is not (a bearer token for the API)');
    return { apiUrl: env.KMOD_API_URL.replace(/\/+$/, ''), token: env.KMOD_TOKEN, wsUrl: env.KMOD_WS_URL || undefined, source: 'KMOD_API_URL' };
  }
  const file = cloudFileOf(opts, env, cwd);
  if (!existsSync(file)) {
    throw new UsageError(`no API to talk to: set KMOD_API_URL and KMOD_TOKEN, or start the local cloud (npm start) so that ${file} exists`);
  }
  let cloud: { apiUrl?: string; wsUrl?: string; tokens?: Record<string, string> };
  try {
    cloud = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new UsageError(`${file} is not valid JSON: ${(e as Error).message}`);
  }
  const token = cloud.tokens?.[role];
  if (!cloud.apiUrl || !token) throw new UsageError(`${file} has no apiUrl or no token for ${role}`);
  return { apiUrl: cloud.apiUrl.replace(/\/+$/, ''), token, wsUrl: cloud.wsUrl, source: file };
}
