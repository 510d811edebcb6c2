import { createContext } from 'preact';
import { useCallback, useContext, useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, type KmodApi } from '../../sdk/typescript/client.ts';
import type { ConsoleConfig } from './config.ts';
import type { LiveEvents, LiveState } from './live.ts';
import { concerns, type LiveEvent, type Session } from './model.ts';

export interface Ctx {
  config: ConsoleConfig;
  session: Session;
  api: KmodApi;
  live?: LiveEvents;
}

export const AppContext = createContext<Ctx | undefined>(undefined);

export function useApp(): Ctx {
  const c = useContext(AppContext);
  if (!c) throw new Error('outside the app');
  return c;
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.code}: ${e.message}`;
  return e instanceof Error ? e.message : String(e);
}

export interface Loaded<T> {
  data?: T;
  error?: string;
  loading: boolean;
  reload: () => void;
}

/**
 * Data from the API, read again whenever a live event concerns it (a burst of events is one
 * read), and every `safetyMs` in case the socket is down.
 */
export function useLive<T>(load: () => Promise<T>, deps: unknown[], about: Parameters<typeof concerns>[1], safetyMs = 30_000): Loaded<T> {
  const { live } = useApp();
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({ loading: true });
  const generation = useRef(0);
  // The caller names what the loader depends on (deps), as with useCallback itself.
  const run = useCallback(() => {
    const g = ++generation.current;
    load().then(
      (data) => g === generation.current && setState({ data, loading: false }),
      (e) => g === generation.current && setState((s) => ({ data: s.data, error: errorText(e), loading: false })),
    );
  }, deps);
  useEffect(() => {
    setState((s) => ({ ...s, loading: true }));
    run();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const off = live?.on((e: LiveEvent) => {
      if (!concerns(e, about)) return;
      clearTimeout(timer);
      timer = setTimeout(run, 75);
    });
    const safety = setInterval(run, safetyMs);
    return () => {
      off?.();
      clearTimeout(timer);
      clearInterval(safety);
    };
  }, [run]);
  return { ...state, reload: run };
}

export function useLiveState(): LiveState | undefined {
  const { live } = useApp();
  const [s, setS] = useState(live?.state);
  useEffect(() => live?.onState(setS), [live]);
  return s;
}

/** The hash route: `#/deployments/abc` → ['deployments', 'abc']. */
export function useRoute(): string[] {
  const read = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  const [route, setRoute] = useState(read);
  useEffect(() => {
    const on = () => setRoute(read());
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}
