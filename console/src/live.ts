/**
 * Live events over the WebSocket API (docs/asyncapi.json, docs/adr/0028-live-events.md): one
 * connection per console, `?token=<jwt>`, subscribed to everything the role may read. A dropped
 * connection comes back with `after` = the last seq seen, so nothing is missed; pages re-read what
 * an event concerns over REST (the events say *when*, the API says *what*).
 */
import { EventLog, type LiveEvent } from './model.ts';

export type LiveState = 'connecting' | 'live' | 'offline';

export class LiveEvents {
  private socket?: WebSocket;
  private readonly log = new EventLog();
  private readonly listeners = new Set<(e: LiveEvent) => void>();
  private readonly stateListeners = new Set<(s: LiveState) => void>();
  private closed = false;
  private retryMs = 500;
  state: LiveState = 'connecting';

  constructor(
    private readonly wsUrl: string,
    private readonly token: () => string,
  ) {
    this.connect();
  }

  private setState(s: LiveState) {
    this.state = s;
    for (const l of this.stateListeners) l(s);
  }

  private connect() {
    if (this.closed) return;
    const url = new URL(this.wsUrl);
    url.searchParams.set('token', this.token());
    const ws = new WebSocket(url);
    this.socket = ws;
    this.setState('connecting');
    ws.onopen = () => {
      this.retryMs = 500;
      ws.send(JSON.stringify({ action: 'subscribe', all: true, ...(this.log.lastSeq !== undefined ? { after: this.log.lastSeq } : {}) }));
    };
    ws.onmessage = (m) => {
      let e: LiveEvent;
      try {
        e = JSON.parse(String(m.data)) as LiveEvent;
      } catch {
        return;
      }
      if (e.type === 'subscribed') this.setState('live');
      if (!this.log.accept(e) || e.type === 'error' || e.type === 'pong') return;
      for (const l of this.listeners) l(e);
    };
    ws.onclose = () => {
      if (this.socket !== ws) return;
      this.socket = undefined;
      if (this.closed) return;
      this.setState('offline');
      // Back with `after`: the replay fills the gap.
      setTimeout(() => this.connect(), this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 10_000);
    };
  }

  on(listener: (e: LiveEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onState(listener: (s: LiveState) => void): () => void {
    this.stateListeners.add(listener);
    return () => this.stateListeners.delete(listener);
  }

  close() {
    this.closed = true;
    this.socket?.close();
  }
}
