/**
 * The web console, served by the local cloud at /console/ (`consoleUrl` in cloud.json). The bundle
 * is built by esbuild at the first request (console/build.ts; well under a second) and kept for the
 * life of the process; config.json tells it where the API and the WebSocket are and how to sign in
 * (the local identity, localcloud/identityControl.ts). On AWS the same bundle is in S3 behind
 * CloudFront (infra/constructs/console.ts). docs/adr/0035-web-console.md.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { buildConsole, type ConsoleAsset } from '../console/build.ts';
import type { ConsoleConfig } from '../console/src/config.ts';
import { DEV_USERS } from './identity.ts';

export const CONSOLE_PATH = '/console';

/** Scripts, styles and connections from this origin only (the WebSocket is on the same port). */
export function consoleCsp(wsUrl: string): string {
  return [
    "default-src 'none'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self' ${new URL(wsUrl).origin}`,
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'self'",
  ].join('; ');
}

let bundle: Promise<Map<string, ConsoleAsset>> | undefined;

export function localConsoleConfig(apiUrl: string, wsUrl: string): ConsoleConfig {
  return {
    apiUrl,
    wsUrl,
    auth: {
      mode: 'local',
      tokenUrl: `${apiUrl}/_local/identity/token`,
      users: Object.entries(DEV_USERS).map(([role, u]) => ({ userId: u.sub, username: u.username, role })),
    },
  };
}

export function consoleHandler(config: () => ConsoleConfig) {
  return async (req: IncomingMessage, res: ServerResponse) => {
    const path = new URL(req.url ?? '/', 'http://local').pathname;
    const send = (status: number, type: string, body: string | Buffer, extra: Record<string, string> = {}) => {
      res.writeHead(status, {
        'content-type': type,
        'content-security-policy': consoleCsp(config().wsUrl ?? config().apiUrl),
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
        ...extra,
      });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'application/json', JSON.stringify({ code: 'MethodNotAllowed', message: 'GET only' }));
    if (path === CONSOLE_PATH) {
      res.writeHead(301, { location: `${CONSOLE_PATH}/` });
      return void res.end();
    }
    const name = path.slice(CONSOLE_PATH.length + 1) || 'index.html';
    if (name === 'config.json') return send(200, 'application/json', JSON.stringify(config()), { 'cache-control': 'no-store' });
    try {
      bundle ??= buildConsole();
      const asset = (await bundle).get(name);
      if (!asset) return send(404, 'application/json', JSON.stringify({ code: 'NotFound', message: `no console file ${name}` }));
      return send(200, asset.contentType, asset.body, { 'cache-control': 'no-cache' });
    } catch (e) {
      bundle = undefined;
      return send(500, 'text/plain; charset=utf-8', `the console could not be built: ${(e as Error).message}`);
    }
  };
}
