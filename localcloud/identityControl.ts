/**
 * Signing in, locally (the part Cognito's hosted endpoints play on AWS):
 *
 *   POST /_local/identity/token          {"userId": "…"}  → an access token for a user of the directory
 *   POST /_local/identity/oauth2/token   client credentials (form: grant_type, scope; the client in the form
 *                                        as client_id/client_secret, or as HTTP Basic like Cognito's endpoint)
 *
 * Tokens carry the roles the directory holds now; disabled principals get none.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { getEntry, secretMatches } from '../functions/lib/directory.ts';
import { ControlBodyTooLarge, readControlBody } from './controlBody.ts';
import type { DevIssuer } from './identity.ts';

function send(res: ServerResponse, status: number, body: unknown) {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

async function readBody(req: IncomingMessage): Promise<string> {
  return (await readControlBody(req)).toString('utf8');
}

export function identityControl(issuer: DevIssuer) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST') return send(res, 405, { code: 'MethodNotAllowed', message: 'POST only' });
    try {
      if (path === '/_local/identity/token') {
        const { userId } = JSON.parse((await readBody(req)) || '{}') as { userId?: string };
        const e = userId ? await getEntry(userId) : undefined;
        if (e?.kind !== 'user') return send(res, 404, { code: 'NotFound', message: `no user ${userId}` });
        if (!e.enabled) return send(res, 403, { code: 'Disabled', message: `${e.username} is disabled` });
        return send(res, 200, {
          access_token: await issuer.mint({ sub: e.userId, username: e.username, groups: e.roles }),
          token_type: 'Bearer',
          expires_in: 43_200,
        });
      }
      if (path === '/_local/identity/oauth2/token') {
        const form = new URLSearchParams(await readBody(req));
        // The client authenticates in the body or, as Cognito's token endpoint expects, with HTTP Basic.
        const basic = /^Basic\s+(\S+)$/i.exec(String(req.headers.authorization ?? ''));
        const [basicId, basicSecret] = basic ? Buffer.from(basic[1], 'base64').toString('utf8').split(/:(.*)/s, 2).map(decodeURIComponent) : [];
        const clientId = form.get('client_id') ?? basicId ?? '';
        const clientSecret = form.get('client_secret') ?? basicSecret ?? '';
        const e = await getEntry(clientId);
        if (form.get('grant_type') !== 'client_credentials') return send(res, 400, { error: 'unsupported_grant_type' });
        if (e?.kind !== 'client' || !secretMatches(e, clientSecret)) return send(res, 401, { error: 'invalid_client' });
        if (!e.enabled) return send(res, 401, { error: 'invalid_client', error_description: 'disabled' });
        const asked = (form.get('scope') ?? (e.scopes ?? []).join(' ')).split(' ').filter(Boolean);
        if (asked.some((s) => !(e.scopes ?? []).includes(s))) return send(res, 400, { error: 'invalid_scope' });
        const token = await issuer.mint(
          { sub: e.userId, username: e.username, groups: [] },
          { ttlSeconds: 3600, overrides: { client_id: e.userId, scope: asked.join(' '), username: undefined, 'cognito:groups': undefined } },
        );
        return send(res, 200, { access_token: token, token_type: 'Bearer', expires_in: 3600 });
      }
      return send(res, 404, { code: 'NotFound', message: `no route ${path}` });
    } catch (e) {
      if (e instanceof ControlBodyTooLarge) return send(res, 413, { code: 'RequestTooLarge', message: e.message });
      return send(res, 400, { code: 'BadRequest', message: (e as Error).message });
    }
  };
}
