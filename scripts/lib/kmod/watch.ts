/**
 * `--watch`: a source of deployment snapshots, and a renderer that shows them.
 *
 * Two sources (docs/adr/0026-kmod-cli.md): live events over the WebSocket API (`wsUrl` of the local
 * cloud's cloud.json, or KMOD_WS_URL), which say *when* the deployment changed, each answered by one
 * GET of the deployment; and polling that GET, which is the fallback when the WebSocket cannot be
 * reached and covers the time a dropped socket takes to come back.
 */
import WebSocket from 'ws';
import { ApiError, type KmodApi, type Schemas, unwrap } from '../../../sdk/typescript/client.ts';
import { deploymentLines, exitCodeFor, type Line } from './format.ts';

type Deployment = Schemas['Deployment'];

export interface ProgressSource {
  /** Snapshots of the deployment, the first at once, then each time it changes, ending once it finished. */
  updates(executionId: string): AsyncIterable<Deployment>;
}

const sleeper = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** How the watch treats an API it cannot get an answer from. */
export interface OutageOptions {
  /** Told when the API stops answering (with why) and when it answers again. */
  note?: (message: string) => void;
  /** How long the API may stay unreachable (or answer 5xx/429) before the watch gives up. Default 5 minutes. */
  unreachableLimitMs?: number;
}

/** An outage, not an answer: the API could not be reached, was overloaded or failed (the deployment goes on regardless). */
const isOutage = (e: unknown) => e instanceof ApiError && (e.status === 0 || e.status === 429 || e.status >= 500);

/**
 * The deployment, GET after GET: each snapshot that differs from the last is yielded, until it has
 * finished; between GETs, `next()` waits for a reason to look again. A GET that finds the API
 * unreachable or failing is tried again at the next wake-up, for up to `unreachableLimitMs`: a
 * network blip or a restarting API must not end the watch with exit code 1 (failed) while the
 * deployment carries on and succeeds.
 */
async function* snapshots(client: KmodApi, executionId: string, next: () => Promise<void>, o: OutageOptions = {}): AsyncGenerator<Deployment> {
  let last = '';
  let downSince: number | undefined;
  const limit = o.unreachableLimitMs ?? 300_000;
  for (;;) {
    let d: Deployment;
    try {
      d = await unwrap(client.GET('/api/v1/deployments/{executionId}', { params: { path: { executionId } } }));
    } catch (e) {
      if (!isOutage(e)) throw e;
      if (downSince === undefined) {
        downSince = Date.now();
        o.note?.(`the API does not answer (${(e as ApiError).message}); trying again for up to ${Math.round(limit / 1000)} s`);
      } else if (Date.now() - downSince >= limit) throw e;
      await next();
      continue;
    }
    if (downSince !== undefined) {
      downSince = undefined;
      o.note?.('the API answers again');
    }
    const seen = JSON.stringify(d);
    if (seen !== last) {
      last = seen;
      yield d;
    }
    if (exitCodeFor(d.status) !== undefined) return;
    await next();
  }
}

export function pollingSource(client: KmodApi, intervalMs = 1000, sleep = sleeper, outage: OutageOptions = {}): ProgressSource {
  return { updates: (executionId) => snapshots(client, executionId, () => sleep(intervalMs), outage) };
}

export interface LiveOptions extends Pick<OutageOptions, 'unreachableLimitMs'> {
  wsUrl: string;
  token: string;
  /** The interval of the GET while the socket is down (and the fallback when it never comes up). */
  pollMs?: number;
  /** With the socket up: a GET at least this often anyway, in case an event was lost. */
  safetyMs?: number;
  /** How long a connect may take before polling takes over. */
  connectTimeoutMs?: number;
  /** Told once when live events stop or cannot start, and when they come back. */
  note?: (message: string) => void;
}

/**
 * Live events: subscribe to the deployment; each event (a burst of them coalesced) is answered by
 * one GET of it. A socket that closes is reconnected with `after` = the last seq seen, so nothing
 * is missed; meanwhile, and when it cannot connect at all, the GET is polled.
 */
export function liveSource(client: KmodApi, o: LiveOptions): ProgressSource {
  const pollMs = o.pollMs ?? 1000;
  const safetyMs = o.safetyMs ?? 15_000;
  return {
    async *updates(executionId: string) {
      let socket: WebSocket | undefined;
      let lastSeq: number | undefined;
      let changed = false;
      let wake: (() => void) | undefined;
      let finished = false;
      let everConnected = false;
      const poke = () => {
        changed = true;
        wake?.();
      };
      const connect = () =>
        new Promise<boolean>((resolve) => {
          const url = new URL(o.wsUrl);
          url.searchParams.set('token', o.token);
          const ws = new WebSocket(url);
          const timer = setTimeout(() => ws.terminate(), o.connectTimeoutMs ?? 5000);
          ws.on('open', () => {
            clearTimeout(timer);
            ws.send(JSON.stringify({ action: 'subscribe', deploymentId: executionId, ...(lastSeq !== undefined ? { after: lastSeq } : {}) }));
            socket = ws;
            resolve(true);
            if (everConnected) {
              o.note?.('live events back');
              poke(); // whatever happened while it was away
            }
            everConnected = true;
          });
          ws.on('message', (data) => {
            let m: { type?: string; seq?: number; deploymentId?: string };
            try {
              m = JSON.parse(String(data));
            } catch {
              return;
            }
            if (typeof m.seq === 'number' && (m.type === 'subscribed' || m.deploymentId === executionId)) lastSeq = Math.max(lastSeq ?? 0, m.seq);
            if (m.deploymentId === executionId) poke();
          });
          ws.on('error', () => undefined); // 'close' follows and says what to do
          ws.on('close', () => {
            clearTimeout(timer);
            if (socket === ws) {
              socket = undefined;
              if (!finished) o.note?.('live events lost; polling while reconnecting');
            }
            // Once it worked, keep trying to get it back (the replay fills the gap).
            if (everConnected && !finished) setTimeout(() => void (finished ? undefined : connect()), Math.max(pollMs, 1000));
            resolve(false);
          });
        });
      if (!(await connect())) o.note?.(`live events unavailable at ${o.wsUrl}; polling every ${pollMs} ms`);
      // Until an event of the deployment (or the safety interval; the poll interval while the socket is down).
      const next = async () => {
        if (!changed) {
          await new Promise<void>((resolve) => {
            const timer = setTimeout(resolve, socket ? safetyMs : pollMs);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
          wake = undefined;
        }
        // A burst (every node of a batch) becomes one GET.
        await sleeper(50);
        changed = false;
      };
      try {
        yield* snapshots(client, executionId, next, { note: o.note, unreachableLimitMs: o.unreachableLimitMs });
      } finally {
        finished = true;
        socket?.close();
      }
    },
  };
}

export interface Output {
  write(s: string): void;
  isTTY?: boolean;
}

/**
 * Plain lines, one per change (pipes, CI logs): each line that is new or different since the last
 * snapshot. After the first snapshot the deployment's own line (key `head`) comes after the
 * stages' changes of the same snapshot, so its final status is the last line, not followed by
 * the last stage's.
 */
export function plainRenderer(out: Output) {
  const shown = new Map<string, string>();
  return (lines: Line[]) => {
    const first = shown.size === 0;
    const changed = lines.filter((l) => shown.get(l.key) !== l.text);
    const ordered = first ? changed : [...changed.filter((l) => l.key !== 'head'), ...changed.filter((l) => l.key === 'head')];
    const at = new Date().toISOString().slice(11, 19);
    for (const l of ordered) {
      shown.set(l.key, l.text);
      out.write(`${at} ${l.text.trim()}\n`);
    }
  };
}

/** On a terminal: the whole view, redrawn in place. */
export function ttyRenderer(out: Output) {
  let height = 0;
  return (lines: Line[]) => {
    const text = lines.map((l) => l.text).join('\n');
    out.write(`${height ? `\x1b[${height}A\x1b[0J` : ''}${text}\n`);
    height = lines.length;
  };
}

/** Watch until the deployment finishes; answers the exit code its final status means. */
export async function watch(source: ProgressSource, executionId: string, out: Output): Promise<number> {
  const render = out.isTTY ? ttyRenderer(out) : plainRenderer(out);
  let status = '';
  for await (const d of source.updates(executionId)) {
    status = d.status;
    render(deploymentLines(d));
  }
  return exitCodeFor(status) ?? 1;
}
