/**
 * Reply correlation on the orchestrator side (functions/lib/dialOut.ts `exchange`): post on the
 * node's connection, poll for the reply, follow a reconnect with the same command, give up at the
 * timeout saying whether the node was never connected or did not answer. Fakes stand in for
 * DynamoDB and the management API here; test/integration/dial-out.test.ts runs the real ones.
 */
import { describe, expect, it } from 'vitest';
import { exchange, type ExchangeDeps } from '../../../functions/lib/dialOut.ts';

/** A fake clock and a scripted world: which connection the node has and when the reply appears, by time. */
function world(script: { connection: (t: number) => string | undefined; gone?: string[]; replyAt?: (posts: string[]) => number | undefined }) {
  let t = 0;
  const posts: string[] = [];
  const deps: ExchangeDeps = {
    now: () => t,
    sleep: async (ms) => {
      t += ms;
    },
    connectionOf: async () => script.connection(t),
    post: async (c) => {
      if (script.gone?.includes(c)) return 'gone';
      posts.push(c);
      return 'sent';
    },
    reply: async () => {
      const at = script.replyAt?.(posts);
      return at !== undefined && t >= at ? { status: 200, body: { on: posts.at(-1) } } : undefined;
    },
  };
  return { deps, posts, time: () => t };
}

const settings = { timeoutMs: 5000, pollMs: 50, recheckMs: 1000 };

describe('exchange', () => {
  it('posts once on the node’s connection and returns the reply when it is recorded', async () => {
    const w = world({ connection: () => 'c1', replyAt: () => 300 });
    expect(await exchange(w.deps, settings)).toEqual({ ok: true, reply: { status: 200, body: { on: 'c1' } }, posts: 1 });
    expect(w.posts).toEqual(['c1']);
    expect(w.time()).toBeGreaterThanOrEqual(300);
    expect(w.time()).toBeLessThan(300 + 4 * 50 + 1); // polls back off to 4× the first wait, no more
  });

  it('sends the command again when the node reconnected on another connection, and takes the reply there', async () => {
    // Dropped at 200 ms; the agent is back on c2 at 700 ms; only the command sent on c2 is answered.
    const w = world({
      connection: (t) => (t < 200 ? 'c1' : t < 700 ? undefined : 'c2'),
      replyAt: (posts) => (posts.includes('c2') ? 0 : undefined),
    });
    const out = await exchange(w.deps, settings);
    expect(out).toMatchObject({ ok: true, posts: 2, reply: { body: { on: 'c2' } } });
    expect(w.posts).toEqual(['c1', 'c2']);
  });

  it('waits for a connection while the node has none, and posts as soon as it has one', async () => {
    const w = world({ connection: (t) => (t < 1500 ? undefined : 'c9'), replyAt: () => 0 });
    expect(await exchange(w.deps, settings)).toMatchObject({ ok: true, posts: 1 });
    expect(w.time()).toBeGreaterThanOrEqual(1500);
  });

  it('does not post again and again to a connection that is gone, and times out as not connected', async () => {
    const calls: string[] = [];
    const w = world({ connection: () => 'stale', gone: ['stale'] });
    const post = w.deps.post;
    w.deps.post = async (c) => {
      calls.push(c);
      return post(c);
    };
    expect(await exchange(w.deps, settings)).toEqual({ ok: false, reason: 'not-connected', posts: 0 });
    expect(calls).toEqual(['stale']);
    expect(w.time()).toBe(5000);
  });

  it('times out as no-reply when the command was delivered but never answered', async () => {
    const w = world({ connection: () => 'c1' });
    expect(await exchange(w.deps, settings)).toEqual({ ok: false, reason: 'no-reply', posts: 1 });
    expect(w.time()).toBe(5000);
  });
});
