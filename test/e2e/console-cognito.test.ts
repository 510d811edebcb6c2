/**
 * The console's AWS sign-in path (console/src/auth.ts: Cognito's hosted UI, authorization code with
 * PKCE through oidc-client-ts) in headless Chromium, against the AWS topology in miniature: the
 * bundle and a Cognito-mode config.json on one origin that also proxies /api/* to the API (as the
 * CloudFront distribution does, infra/constructs/console.ts), and a stand-in for the user pool and
 * its hosted domain on another origin (discovery, /oauth2/authorize, /oauth2/token, /logout). The
 * stand-in checks what Cognito checks for a public client: the code is redeemed once, by the same
 * client and redirect URI, with the verifier whose S256 hash was the challenge.
 */
import { createHash, randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { CHROMIUM, launchChromium } from './browser.ts';
import { startTestCloud } from '../integration/harness.ts';
import type { LocalCloud } from '../../localcloud/cloud.ts';
import { DEV_USERS } from '../../localcloud/identity.ts';
import { buildConsole } from '../../console/build.ts';

const CLIENT_ID = 'console-client-id';
let cloud: LocalCloud;
let browser: Browser;
const servers: Server[] = [];
let site = '';
let idp = '';
const authorizations: Record<string, string>[] = [];
const redemptions: { ok: boolean; why?: string }[] = [];
const proxied: { path: string; authorization?: string }[] = [];

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void> | void): Promise<string> {
  const server = createServer((req, res) => {
    Promise.resolve(handler(req, res)).catch((e: Error) => {
      res.writeHead(500);
      res.end(e.message);
    });
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
}

const body = async (req: IncomingMessage) => {
  let s = '';
  for await (const c of req) s += c;
  return s;
};

beforeAll(async () => {
  cloud = await startTestCloud();
  browser = await launchChromium();
  const codes = new Map<string, Record<string, string>>();
  // The user pool and its hosted domain.
  idp = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const cors = { 'access-control-allow-origin': site, 'access-control-allow-headers': 'content-type, authorization' };
    const json = (status: number, v: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json', ...cors });
      res.end(JSON.stringify(v));
    };
    if (req.method === 'OPTIONS') return void res.writeHead(204, cors).end();
    if (url.pathname === '/pool/.well-known/openid-configuration')
      return json(200, {
        issuer: `${idp}/pool`,
        authorization_endpoint: `${idp}/oauth2/authorize`,
        token_endpoint: `${idp}/oauth2/token`,
        jwks_uri: `${idp}/pool/.well-known/jwks.json`,
        response_types_supported: ['code'],
        code_challenge_methods_supported: ['S256'],
      });
    if (url.pathname === '/oauth2/authorize') {
      const q = Object.fromEntries(url.searchParams);
      authorizations.push(q);
      // Signed in at the hosted UI (as the Deployer): back to the app with a one-time code.
      const code = randomUUID();
      codes.set(code, q);
      const back = new URL(q.redirect_uri);
      back.searchParams.set('code', code);
      back.searchParams.set('state', q.state);
      res.writeHead(302, { location: back.href });
      return void res.end();
    }
    if (url.pathname === '/oauth2/token' && req.method === 'POST') {
      const form = new URLSearchParams(await body(req));
      const asked = codes.get(form.get('code') ?? '');
      codes.delete(form.get('code') ?? '');
      const verifier = form.get('code_verifier') ?? '';
      const why = !asked
        ? 'unknown or used code'
        : form.get('grant_type') !== 'authorization_code'
          ? 'grant_type'
          : form.get('client_id') !== asked.client_id
            ? 'client_id'
            : form.get('redirect_uri') !== asked.redirect_uri
              ? 'redirect_uri'
              : asked.code_challenge_method !== 'S256' || createHash('sha256').update(verifier).digest('base64url') !== asked.code_challenge
                ? 'PKCE verifier does not match the challenge'
                : undefined;
      redemptions.push({ ok: !why, why });
      if (why) return json(400, { error: 'invalid_grant', error_description: why });
      const now = Math.floor(Date.now() / 1000);
      return json(200, {
        // The API verifies the access token (the local issuer's, as Cognito's would be the pool's).
        access_token: await cloud.issuer.mint(DEV_USERS.Deployer, { ttlSeconds: 3600 }),
        id_token: await cloud.issuer.mint(DEV_USERS.Deployer, {
          overrides: { iss: `${idp}/pool`, aud: CLIENT_ID, token_use: 'id', iat: now, exp: now + 3600, ...(asked!.nonce ? { nonce: asked!.nonce } : {}) },
        }),
        token_type: 'Bearer',
        expires_in: 3600,
      });
    }
    if (url.pathname === '/logout') {
      res.writeHead(302, { location: url.searchParams.get('logout_uri') ?? '/' });
      return void res.end();
    }
    json(404, { error: 'not_found' });
  });
  // The distribution: the bundle, config.json, and /api/* to the API.
  const assets = await buildConsole();
  site = await listen(async (req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname.startsWith('/api/')) {
      proxied.push({ path: url.pathname, authorization: req.headers.authorization });
      const method = req.method ?? 'GET';
      const r = await fetch(`${cloud.apiUrl}${url.pathname}${url.search}`, {
        method,
        headers: Object.fromEntries(Object.entries(req.headers).filter(([k]) => !['host', 'connection', 'content-length'].includes(k))) as Record<
          string,
          string
        >,
        body: ['GET', 'HEAD'].includes(method) ? undefined : await body(req),
      });
      res.writeHead(r.status, { 'content-type': r.headers.get('content-type') ?? 'application/json' });
      return void res.end(Buffer.from(await r.arrayBuffer()));
    }
    if (url.pathname === '/config.json') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end(
        JSON.stringify({
          apiUrl: site,
          wsUrl: cloud.wsUrl,
          auth: { mode: 'cognito', authority: `${idp}/pool`, clientId: CLIENT_ID, domain: idp, scope: 'openid email profile' },
        }),
      );
    }
    const asset = assets.get(url.pathname === '/' ? 'index.html' : url.pathname.slice(1));
    if (!asset) return void res.writeHead(404).end();
    res.writeHead(200, { 'content-type': asset.contentType });
    res.end(asset.body);
  });
}, 180_000);

afterAll(async () => {
  await browser?.close();
  for (const s of servers) {
    s.closeAllConnections();
    await new Promise<void>((r) => s.close(() => r()));
  }
  await cloud?.stop();
});

describe.runIf(existsSync(CHROMIUM))('signing in to the console through Cognito (code flow with PKCE)', () => {
  it('redirects to the hosted UI, redeems the code with the verifier, calls the API with the access token, signs out', async () => {
    const page = await browser.newPage();
    const problems: string[] = [];
    page.on('pageerror', (e) => problems.push(e.message));
    page.on('console', (m) => {
      if (m.type() === 'error') problems.push(m.text());
    });
    await page.goto(`${site}/`);
    expect(await page.getByText("Sign in with your organisation's account (Amazon Cognito).").count()).toBe(1);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // Back from the hosted UI, signed in as the pool's user; the code and state are gone from the address.
    await expect.poll(() => page.getByTestId('who').textContent(), { timeout: 30_000 }).toBe('dan.deployer · Deployer');
    expect(new URL(page.url()).search).toBe('');
    expect(authorizations).toHaveLength(1);
    expect(authorizations[0]).toMatchObject({
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: `${site}/`,
      scope: 'openid email profile',
      code_challenge_method: 'S256',
    });
    expect(authorizations[0].code_challenge).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(redemptions).toEqual([{ ok: true, why: undefined }]);
    // The API on the console's own origin, with the access token.
    await expect.poll(() => page.getByTestId('environment-Production').count(), { timeout: 30_000 }).toBe(1);
    const clusters = proxied.find((p) => p.path === '/api/v1/clusters')!;
    expect(clusters.authorization).toMatch(/^Bearer ey/);
    // The events socket connects after the first page of data; it must reach 'live' on its own.
    await expect.poll(() => page.locator('.live').textContent(), { timeout: 15_000 }).toBe('live');
    // Sign out: the session goes, Cognito's /logout sends the browser back to the sign-in page.
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.getByRole('button', { name: 'Sign in' }).count(), { timeout: 15_000 }).toBe(1);
    expect(await page.evaluate(() => Object.keys(sessionStorage).filter((k) => k.startsWith('kmod') || k.startsWith('oidc')))).toEqual([]);
    expect(problems).toEqual([]);
  }, 90_000);
});
