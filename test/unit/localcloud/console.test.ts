/** The local cloud's console server (localcloud/console.ts): the bundle, config.json, its CSP, and what it refuses. */
import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { consoleCsp, consoleHandler, localConsoleConfig } from '../../../localcloud/console.ts';

let server: Server;
let base = '';

beforeAll(async () => {
  const config = localConsoleConfig('http://127.0.0.1:3000', 'ws://127.0.0.1:3000/ws');
  const serve = consoleHandler(() => config);
  server = createServer((req, res) => void serve(req, res));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const a = server.address();
  base = `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe('the local console server', () => {
  it('serves index.html, app.js and app.css under its own CSP', async () => {
    const index = await fetch(`${base}/console/`);
    expect(index.status).toBe(200);
    expect(index.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(index.headers.get('content-security-policy')).toBe(consoleCsp('ws://127.0.0.1:3000/ws'));
    expect(await index.text()).toContain('<script type="module" src="app.js"></script>');
    for (const [file, type] of [
      ['app.js', 'text/javascript; charset=utf-8'],
      ['app.css', 'text/css; charset=utf-8'],
    ]) {
      const r = await fetch(`${base}/console/${file}`);
      expect([r.status, r.headers.get('content-type')]).toEqual([200, type]);
      expect((await r.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    }
  });

  it('answers config.json: the API, the WebSocket and the local sign-in with the dev users', async () => {
    const r = await fetch(`${base}/console/config.json`);
    expect(r.headers.get('cache-control')).toBe('no-store');
    const config = await r.json();
    expect(config).toMatchObject({
      apiUrl: 'http://127.0.0.1:3000',
      wsUrl: 'ws://127.0.0.1:3000/ws',
      auth: { mode: 'local', tokenUrl: 'http://127.0.0.1:3000/_local/identity/token' },
    });
    expect(config.auth.users.map((u: { role: string }) => u.role).sort()).toEqual(['Admin', 'Approver', 'Deployer', 'Viewer']);
  });

  it('redirects /console to /console/, refuses other methods and unknown files', async () => {
    const r = await fetch(`${base}/console`, { redirect: 'manual' });
    expect([r.status, r.headers.get('location')]).toEqual([301, '/console/']);
    expect((await fetch(`${base}/console/`, { method: 'POST' })).status).toBe(405);
    const missing = await fetch(`${base}/console/%2e%2e/package.json`);
    expect(missing.status).toBe(404);
    expect((await fetch(`${base}/console/secret.txt`)).status).toBe(404);
  });

  it('allows scripts, styles and connections from its own origin and the WebSocket only', () => {
    const csp = consoleCsp('ws://127.0.0.1:3000/ws');
    expect(csp).toContain("script-src 'self';");
    expect(csp).toContain("connect-src 'self' ws://127.0.0.1:3000;");
    expect(csp).not.toMatch(/unsafe|https?:/);
  });
});
