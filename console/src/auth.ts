/**
 * Signing in. Locally: the local cloud's identity (a user id → an access token, the part Cognito's
 * hosted UI plays on AWS). On AWS: Cognito's hosted UI, authorization code with PKCE, through
 * oidc-client-ts (discovery, state, PKCE verifier, code exchange and silent renewal are its job).
 * The access token lives in sessionStorage only: it goes when the tab closes.
 */
import { UserManager, WebStorageStateStore } from 'oidc-client-ts';
import type { CognitoAuth, ConsoleConfig } from './config.ts';
import { expired, type Session, sessionFromToken } from './model.ts';

const KEY = 'kmod.console.token';

let manager: UserManager | undefined;

function cognito(auth: CognitoAuth): UserManager {
  manager ??= new UserManager({
    authority: auth.authority,
    client_id: auth.clientId,
    redirect_uri: new URL('./', document.baseURI).href,
    post_logout_redirect_uri: new URL('./', document.baseURI).href,
    response_type: 'code',
    scope: auth.scope,
    userStore: new WebStorageStateStore({ store: window.sessionStorage }),
    automaticSilentRenew: false,
    // Cognito's logout endpoint is not in its discovery document.
    metadataSeed: { end_session_endpoint: `${auth.domain}/logout` },
    extraQueryParams: {},
  });
  return manager;
}

/** The current session, finishing a Cognito redirect first when the URL carries one. */
export async function currentSession(config: ConsoleConfig): Promise<Session | undefined> {
  if (config.auth.mode === 'cognito') {
    const m = cognito(config.auth);
    const params = new URLSearchParams(location.search);
    if (params.has('code') && params.has('state')) {
      const user = await m.signinRedirectCallback();
      history.replaceState(null, '', location.pathname + location.hash);
      sessionStorage.setItem(KEY, user.access_token);
    }
  }
  const token = sessionStorage.getItem(KEY);
  const s = token ? sessionFromToken(token) : undefined;
  if (s && !expired(s)) return s;
  sessionStorage.removeItem(KEY);
  return undefined;
}

export async function signInLocal(config: ConsoleConfig, userId: string): Promise<Session> {
  if (config.auth.mode !== 'local') throw new Error('not a local cloud');
  const r = await fetch(new URL(config.auth.tokenUrl, document.baseURI), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ userId }),
  });
  const body = (await r.json().catch(() => ({}))) as { access_token?: string; message?: string };
  if (!r.ok || !body.access_token) throw new Error(body.message ?? `sign-in failed (HTTP ${r.status})`);
  const s = sessionFromToken(body.access_token);
  if (!s) throw new Error('the identity answered something that is not a token');
  sessionStorage.setItem(KEY, body.access_token);
  return s;
}

/** Cognito: off to the hosted UI (the page comes back with ?code=…&state=…). */
export async function signInCognito(config: ConsoleConfig): Promise<void> {
  if (config.auth.mode !== 'cognito') throw new Error('not configured for Cognito');
  await cognito(config.auth).signinRedirect();
}

export async function signOut(config: ConsoleConfig): Promise<void> {
  sessionStorage.removeItem(KEY);
  if (config.auth.mode === 'cognito') {
    const m = cognito(config.auth);
    await m.removeUser();
    // Cognito's /logout wants client_id and logout_uri rather than OIDC's parameters.
    location.assign(
      `${config.auth.domain}/logout?client_id=${encodeURIComponent(config.auth.clientId)}&logout_uri=${encodeURIComponent(new URL('./', document.baseURI).href)}`,
    );
  }
}
