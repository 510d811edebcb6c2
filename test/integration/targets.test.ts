/**
 * A deployed target as the LocalStack path sees it, dry-run on the local cloud: its gateway runs
 * no authorizer (as LocalStack's community edition) and the API functions verify tokens themselves
 * (API_VERIFIES_TOKENS, CDK context verifyTokensInFunctions). Against it: the post-deploy smoke
 * check (`npm run smoke`) with each way of getting a token, and the end-to-end suite's remote
 * target, configured as an operator would configure it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type LocalCloud, writeCloudFile } from '../../localcloud/cloud.ts';
import { openTarget } from '../e2e/target.ts';
import { api, startTestCloud, waitForDeployment } from './harness.ts';

const exec = promisify(execFile);
let cloud: LocalCloud;
let cloudFile: string;

beforeAll(async () => {
  cloud = await startTestCloud({ gatewayRunsAuthorizer: false, env: { API_VERIFIES_TOKENS: 'true' } });
  cloudFile = writeCloudFile(cloud, join(mkdtempSync(join(tmpdir(), 'kmod-target-')), 'cloud.json'));
});
afterAll(async () => {
  await cloud?.stop();
});

/** `npm run smoke -- <args>` as an operator runs it: exit status and the lines it printed. */
async function smoke(...args: string[]): Promise<{ code: number; lines: string[] }> {
  try {
    const r = await exec(process.execPath, ['--import', 'tsx', 'scripts/smoke.ts', ...args], { timeout: 90_000 });
    return { code: 0, lines: r.stdout.trim().split('\n') };
  } catch (e) {
    const err = e as { code: number; stdout: string };
    return { code: err.code, lines: err.stdout.trim().split('\n') };
  }
}
const outcomes = (lines: string[]) =>
  lines.slice(1, -1).map((l) =>
    l
      .split(/\s{2,}/)
      .slice(0, 2)
      .join(' '),
  );

describe('a gateway that runs no authorizer, with functions that verify tokens', () => {
  it('refuses no token and a forged one, enforces roles, and deploys for a Deployer', async () => {
    const none = await api(cloud, 'GET', '/api/v1/deployments');
    expect(none.status).toBe(401);
    expect(none.body).toMatchObject({ code: 'Unauthorized' });
    const forged = `${cloud.tokens.Admin.split('.').slice(0, 2).join('.')}.Zm9yZ2Vk`;
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: forged })).status).toBe(401);
    // A token of another issuer's key, with every claim right, is refused as well.
    const { DevIssuer, DEV_USERS } = await import('../../localcloud/identity.ts');
    const stranger = await (await DevIssuer.load(join(mkdtempSync(join(tmpdir(), 'kmod-other-')), 'key.json'))).mint(DEV_USERS.Admin);
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: stranger })).status).toBe(401);
    const body = { moduleName: 'demo-kernel', version: '1.1.0', targetEnvironment: 'Development' };
    expect((await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Viewer, body })).status).toBe(403);
    const r = await api(cloud, 'POST', '/api/v1/deployments', { token: cloud.tokens.Deployer, body });
    expect(r.status).toBe(202);
    expect((await waitForDeployment(cloud, r.body.executionId)).status).toBe('Succeeded');
  });

  it('refuses a disabled user at once, whatever their token', async () => {
    const created = await api(cloud, 'POST', '/api/v1/admin/users', {
      token: cloud.tokens.Admin,
      body: { username: 'gil.viewer', email: 'gil@example.com', roles: ['Viewer'] },
    });
    const signIn = await fetch(`${cloud.apiUrl}/_local/identity/token`, { method: 'POST', body: JSON.stringify({ userId: created.body.userId }) });
    const token = ((await signIn.json()) as { access_token: string }).access_token;
    expect((await api(cloud, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
    expect((await api(cloud, 'POST', `/api/v1/admin/users/${created.body.userId}/disable`, { token: cloud.tokens.Admin })).status).toBe(200);
    expect((await api(cloud, 'GET', '/api/v1/clusters', { token })).status).toBe(401);
  });
});

describe('npm run smoke', () => {
  it('passes every check with a Viewer token, one line each, and skips what needs an Admin', async () => {
    const r = await smoke('--api', cloud.apiUrl, '--token', cloud.tokens.Viewer);
    expect(r.code, r.lines.join('\n')).toBe(0);
    expect(r.lines[0]).toBe(`kmod smoke check against ${cloud.apiUrl}`);
    expect(outcomes(r.lines)).toEqual([
      'PASS health',
      'PASS security headers',
      'PASS metrics',
      'PASS no token refused',
      'PASS forged token refused',
      'PASS token accepted',
      'PASS deployments',
      'PASS modules',
      'PASS approvals',
      'SKIP email subscriptions',
    ]);
    expect(r.lines.find((l) => l.includes('token accepted'))).toContain('Development 3 nodes, QA 5 nodes, Staging 10 nodes, Production 20 nodes');
    expect(r.lines.at(-1)).toBe('9 passed, 0 failed, 0 warnings, 1 skipped');
  });

  it("with an Admin token from a local cloud's cloud.json, reports the approvers' email subscriptions", async () => {
    const r = await smoke('--api', cloud.apiUrl, '--token-file', cloudFile, '--role', 'Admin');
    expect(r.code, r.lines.join('\n')).toBe(0);
    expect(r.lines.find((l) => l.includes('email subscriptions'))).toMatch(
      /^PASS {2}email subscriptions +1 approver subscription\(s\), \d+ outcome subscription\(s\), all confirmed$/,
    );
  });

  it('gets its token by client credentials (HTTP Basic, as from Cognito)', async () => {
    const client = await api(cloud, 'POST', '/api/v1/admin/clients', { token: cloud.tokens.Admin, body: { name: 'smoke-check', scopes: ['kmod/read'] } });
    expect(client.status).toBe(201);
    const args = ['--api', cloud.apiUrl, '--token-url', `${cloud.apiUrl}/_local/identity/oauth2/token`, '--client-id', client.body.clientId];
    const r = await smoke(...args, '--client-secret', client.body.clientSecret, '--scope', 'kmod/read');
    expect(r.code, r.lines.join('\n')).toBe(0);
    const refused = await smoke(...args, '--client-secret', 'wrong');
    expect(refused.code).toBe(1);
    expect(refused.lines[1]).toMatch(/^FAIL {2}token {2}client credentials for Viewer refused by .*: HTTP 401 invalid_client/);
  });

  it('fails, saying which checks and why, with a token the API refuses or an API that is not there', async () => {
    const bad = await smoke('--api', cloud.apiUrl, '--token', `${cloud.tokens.Viewer}x`);
    expect(bad.code).toBe(1);
    expect(outcomes(bad.lines)).toContain('FAIL token accepted');
    expect(bad.lines.find((l) => l.includes('token accepted'))).toContain('HTTP 401');
    const gone = await smoke('--api', 'http://127.0.0.1:9', '--token', cloud.tokens.Viewer);
    expect(gone.code).toBe(1);
    expect(outcomes(gone.lines)).toEqual(expect.arrayContaining(['FAIL health', 'FAIL token accepted']));
    expect(gone.lines.at(-1)).toMatch(/^0 passed, \d+ failed/);
  });
});

describe("the end-to-end suite's remote target, configured by environment", () => {
  it("finds a running local cloud's capabilities and gets each role's token from its configured source", async () => {
    const client = await api(cloud, 'POST', '/api/v1/admin/clients', { token: cloud.tokens.Admin, body: { name: 'e2e-deployer', scopes: ['kmod/deploy'] } });
    const target = await openTarget({
      KMOD_TARGET_URL: `${cloud.apiUrl}/`,
      KMOD_TARGET_CLOUD_FILE: cloudFile,
      KMOD_TARGET_TOKEN_URL: `${cloud.apiUrl}/_local/identity/oauth2/token`,
      KMOD_TARGET_CLIENT_DEPLOYER: `${client.body.clientId}:${client.body.clientSecret}`,
      KMOD_TARGET_TOKEN_VIEWER: cloud.tokens.Viewer,
    });
    expect(target.apiUrl).toBe(cloud.apiUrl);
    // Probed: /_local/fleet answers here. From cloud.json: the mailbox. Not configured: a signer, short bakes.
    expect(Object.entries(target.capabilities).flatMap(([k, v]) => (v ? [k] : []))).toEqual(['fleetFaults', 'mailbox']);
    expect(await target.token('Viewer')).toBe(cloud.tokens.Viewer);
    expect(await target.token('Admin')).toBe(cloud.tokens.Admin);
    const deployer = await target.token('Deployer');
    expect(JSON.parse(Buffer.from(deployer.split('.')[1], 'base64url').toString())).toMatchObject({ client_id: client.body.clientId, scope: 'kmod/deploy' });
    // Fetched once, reused until shortly before it expires.
    expect(await target.token('Deployer')).toBe(deployer);
    expect((await api(cloud, 'GET', '/api/v1/deployments', { token: deployer })).status).toBe(200);
    // The Development deployment above mailed its requester the outcome.
    expect((await target.capabilities.mailbox!.messages()).map((m) => m.to)).toContain('dan.deployer@example.com');
  });
});
