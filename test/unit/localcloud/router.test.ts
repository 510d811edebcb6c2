import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalRouter, UPSTREAM_IDLE_MS } from '../../../localcloud/router.ts';

/** Tiny workloads that answer with their own name. */
const backends: Server[] = [];
const urls: string[] = [];
let router: LocalRouter;
const TOKEN = 'test-token';

beforeAll(async () => {
  for (const name of ['n1', 'n2', 'n3']) {
    const s = createServer((_req, res) => res.end(name));
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    backends.push(s);
    urls.push(`http://127.0.0.1:${(s.address() as AddressInfo).port}`);
  }
  router = new LocalRouter('Production', TOKEN);
  await router.listen();
});
afterAll(async () => {
  await router.close();
  for (const s of backends) await new Promise((r) => s.close(r));
});

const put = (body: unknown, token = TOKEN) =>
  fetch(`${router.url}/_kmod/router/routes`, { method: 'PUT', headers: { authorization: `Bearer ${token}` }, body: JSON.stringify(body) });

describe('the local router', () => {
  it('splits requests by weight exactly (smooth weighted round-robin), and counts them per node', async () => {
    const r = await put({
      groups: [
        { name: 'canary', weight: 10, backends: [{ nodeId: 'n1', url: urls[0] }] },
        {
          name: 'stable',
          weight: 90,
          backends: [
            { nodeId: 'n2', url: urls[1] },
            { nodeId: 'n3', url: urls[2] },
          ],
        },
      ],
    });
    expect(r.status).toBe(200);
    const seen: Record<string, number> = {};
    for (let i = 0; i < 200; i++) {
      const a = await fetch(`${router.url}/work`);
      expect(await a.text()).toBe(a.headers.get('x-kmod-node'));
      seen[a.headers.get('x-kmod-node')!] = (seen[a.headers.get('x-kmod-node')!] ?? 0) + 1;
    }
    expect(seen).toEqual({ n1: 20, n2: 90, n3: 90 });
    const stats = await (await fetch(`${router.url}/_kmod/router/stats`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    expect(stats.nodes).toEqual(seen);
    expect(stats.groups).toEqual({ canary: 20, stable: 180 });
  });

  it('answers 503 with no live backend, tries the next backend when one is down, and refuses a bad table or token', async () => {
    await put({ groups: [] });
    expect((await fetch(`${router.url}/work`)).status).toBe(503);
    await put({
      groups: [
        {
          name: 'g',
          weight: 100,
          backends: [
            { nodeId: 'dead', url: 'http://127.0.0.1:9' },
            { nodeId: 'n2', url: urls[1] },
          ],
        },
      ],
    });
    for (let i = 0; i < 4; i++) expect((await fetch(`${router.url}/work`)).status).toBe(200);
    expect((await put({ groups: [{ name: 'g', weight: 500, backends: [] }] })).status).toBe(400);
    expect((await put({ groups: [] }, 'wrong')).status).toBe(401);
    expect(router.routes.groups[0].backends.map((b) => b.nodeId)).toEqual(['dead', 'n2']);
  });

  it('refuses a PUT with ifVersion unless the table is at that version (read-modify-write callers)', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    const { version } = await (await fetch(`${router.url}/_kmod/router/routes`, { headers: auth })).json();
    const table = { groups: [{ name: 'stable', weight: 100, backends: [{ nodeId: 'n1', url: urls[0] }] }] };
    const stale = await fetch(`${router.url}/_kmod/router/routes?ifVersion=${version - 1}`, { method: 'PUT', headers: auth, body: JSON.stringify(table) });
    expect(stale.status).toBe(409);
    expect(await stale.json()).toMatchObject({ code: 'VersionMismatch' });
    expect((await (await fetch(`${router.url}/_kmod/router/routes`, { headers: auth })).json()).version).toBe(version);
    const ok = await fetch(`${router.url}/_kmod/router/routes?ifVersion=${version}`, { method: 'PUT', headers: auth, body: JSON.stringify(table) });
    expect(ok.status).toBe(200);
    expect((await ok.json()).version).toBe(version + 1);
  });

  it('refuses tables it could not route (non-http backends, duplicate groups), junk versions and oversized bodies', async () => {
    const auth = { authorization: `Bearer ${TOKEN}` };
    for (const table of [
      { groups: [{ name: 'stable', weight: 100, backends: [{ nodeId: 'x', url: 'file:///etc/passwd' }] }] },
      { groups: [{ name: 'stable', weight: 100, backends: [{ nodeId: 'x', url: 'ftp://127.0.0.1/' }] }] },
      {
        groups: [
          { name: 'stable', weight: 50, backends: [] },
          { name: 'stable', weight: 50, backends: [] },
        ],
      },
    ]) {
      const r = await put(table);
      expect(r.status, JSON.stringify(table)).toBe(400);
    }
    for (const v of ['', '1.0', '0x2', '-1']) {
      const r = await fetch(`${router.url}/_kmod/router/routes?ifVersion=${v}`, { method: 'PUT', headers: auth, body: JSON.stringify({ groups: [] }) });
      expect(r.status, v).toBe(400);
    }
    const huge = await fetch(`${router.url}/_kmod/router/routes`, { method: 'PUT', headers: auth, body: 'x'.repeat(2 * 1024 * 1024) });
    expect(huge.status).toBe(413);
    const proxied = await fetch(`${router.url}/work`, { method: 'POST', body: Buffer.alloc(11 * 1024 * 1024) });
    expect(proxied.status).toBe(413);
  });

  /** A workload that closes every keep-alive connection as its next request arrives (the keep-alive race, every time). */
  async function closingOnReuse(name: string) {
    const seen = new WeakMap<object, number>();
    const s = createServer((req, res) => {
      const n = (seen.get(req.socket) ?? 0) + 1;
      seen.set(req.socket, n);
      if (n > 1) return void req.socket.destroy();
      res.end(name);
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    return { server: s, url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` };
  }

  it('retries a GET whose reused connection the backend had just closed, however many backends did the same (a flaky 502 in CI)', async () => {
    const a = await closingOnReuse('a');
    const b = await closingOnReuse('b');
    try {
      await put({
        groups: [
          {
            name: 'g',
            weight: 100,
            backends: [
              { nodeId: 'a', url: a.url },
              { nodeId: 'b', url: b.url },
            ],
          },
        ],
      });
      // Two requests at once open one pooled connection to each backend; every later request is
      // sent first on a pooled connection that its backend then closes.
      const warm = await Promise.all([fetch(`${router.url}/work`), fetch(`${router.url}/work`)]);
      expect(warm.map((r) => r.status)).toEqual([200, 200]);
      const statuses: number[] = [];
      for (let i = 0; i < 6; i++) statuses.push((await fetch(`${router.url}/work`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    } finally {
      for (const s of [a.server, b.server]) {
        s.closeAllConnections();
        await new Promise((r) => s.close(r));
      }
    }
  });

  it('closes idle upstream connections itself, before a backend with the default 5 s keep-alive would', async () => {
    const closedAfter: number[] = [];
    const s = createServer((_req, res) => res.end('x'));
    s.keepAliveTimeout = 60_000;
    s.on('connection', (socket) => {
      const opened = Date.now();
      socket.on('close', () => closedAfter.push(Date.now() - opened));
    });
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    try {
      await put({ groups: [{ name: 'g', weight: 100, backends: [{ nodeId: 'x', url: `http://127.0.0.1:${(s.address() as AddressInfo).port}` }] }] });
      expect((await fetch(`${router.url}/work`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, UPSTREAM_IDLE_MS + 700));
      expect(closedAfter).toHaveLength(1);
      expect(closedAfter[0]).toBeLessThan(5_000);
    } finally {
      s.closeAllConnections();
      await new Promise((r) => s.close(r));
    }
  }, 15_000);
});
