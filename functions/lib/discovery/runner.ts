/**
 * Two ways to drive a reconciler: one list-and-reconcile pass (the scheduled Lambda on AWS), or a
 * long-running watch with periodic full passes (the local cloud, or any always-on host).
 */
import { Reconciler, type PassSummary, type ReconcilerDeps } from './reconcile.ts';
import type { DiscoverySource } from './source.ts';

export async function reconcileOnce(source: DiscoverySource, deps: ReconcilerDeps = {}): Promise<PassSummary> {
  return new Reconciler(source, deps).reconcile(await source.list());
}

export interface WatchOptions {
  /** Full pass every so often even without events: heals anything a watch could have missed. */
  resyncMs?: number;
  log?: (line: string) => void;
}

export interface RunningDiscovery {
  /** Resolves when every change seen so far has been applied (tests wait on it). */
  settled(): Promise<void>;
  stop(): Promise<void>;
}

/** List, reconcile, then follow the watch; every step runs in order on one queue. */
export async function watchDiscovery(source: DiscoverySource, deps: ReconcilerDeps = {}, opts: WatchOptions = {}): Promise<RunningDiscovery> {
  const log = opts.log ?? (() => undefined);
  const reconciler = new Reconciler(source, deps);
  let queue: Promise<void> = Promise.resolve();
  let stopped = false;
  const enqueue = (what: string, step: () => Promise<unknown>) => {
    queue = queue.then(step).then(
      () => undefined,
      (e: Error) => log(`discovery (${source.name}): ${what} failed: ${e.message}`),
    );
  };
  const fullPass = (why: string) =>
    enqueue(`full pass (${why})`, async () => {
      if (stopped) return;
      const s = await reconciler.reconcile(await source.list());
      if (s.joined.length || s.left.length || s.updated.length)
        log(`discovery (${source.name}): +${s.joined.length} ~${s.updated.length} -${s.left.length} (${why})`);
    });
  // The first pass must succeed before the watch starts: it fixes the revision the watch follows.
  await reconciler.reconcile(await source.list());
  const stopWatch = await source.watch(
    (event) => enqueue(`${event.type} event`, () => (stopped ? Promise.resolve() : reconciler.apply(event))),
    (reason) => fullPass(reason),
  );
  const timer = setInterval(() => fullPass('periodic'), opts.resyncMs ?? 60_000);
  timer.unref();
  return {
    settled: async () => {
      let seen: Promise<void>;
      do {
        seen = queue;
        await seen;
      } while (seen !== queue);
    },
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await stopWatch().catch(() => undefined);
      await queue;
      await source.close();
    },
  };
}
