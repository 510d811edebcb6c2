/**
 * Agent side of the dial-out transport (functions/agent/wsProtocol.ts): keep one outbound
 * WebSocket to the orchestrator, run every command it sends through the agent's own request path
 * (NodeAgent.serve: signature check, then routing, exactly as for an inbound HTTP request), and
 * answer over the same socket. Reconnects with capped, fully jittered exponential backoff; a
 * command whose connection dropped is sent again by the orchestrator on the new one, and the
 * agent's idempotency per deployment id makes that replay harmless.
 */
import WebSocket from 'ws';
import type { AgentAnswer, AgentRequest } from './agent.ts';
import { signRequest, type AgentKey } from './protocol.ts';
import { agentConnectPath, NODE_ID_HEADER, orchestratorMessageSchema, parseMessage, type AgentCommand, type AgentReply } from './wsProtocol.ts';

export interface DialOutOptions {
  /** The orchestrator's WebSocket URL (wss://… on AWS, ws://127.0.0.1:…/ws locally). */
  url: string;
  nodeId: string;
  /** The node's own key (read at every connect, so a rotated key is used from the next one). */
  key: () => AgentKey;
  /** The agent's request path: NodeAgent.serve. */
  serve: (req: AgentRequest) => Promise<AgentAnswer | undefined>;
  log: (line: string) => void;
  /** Backoff between connection attempts: full jitter over base·2^attempt, capped. */
  backoffBaseMs?: number;
  backoffCapMs?: number;
  /**
   * How often the agent pings through the orchestrator (API Gateway closes a connection idle for
   * 10 minutes), and how long it waits for the pong before it calls the connection dead.
   */
  keepaliveMs?: number;
  pongTimeoutMs?: number;
  /** Tests: the random source of the jitter. */
  random?: () => number;
}

/** Full jitter (a uniformly random wait up to the capped exponential), so a fleet does not reconnect in step. */
export function backoffDelay(attempt: number, baseMs: number, capMs: number, random: () => number = Math.random): number {
  return Math.floor(random() * Math.min(capMs, baseMs * 2 ** Math.min(attempt, 30)));
}

/** A connection that stayed up this long was a real one: the next drop starts the backoff over. */
const STABLE_MS = 10_000;

export class DialOutConnection {
  private socket?: WebSocket;
  private attempt = 0;
  private stopped = false;
  private retryTimer?: NodeJS.Timeout;
  private keepaliveTimer?: NodeJS.Timeout;
  private pongTimer?: NodeJS.Timeout;
  private lastTimestamp = 0;
  private refusedBefore = false;
  private lastFailure?: string;
  private readonly waiters: (() => void)[] = [];
  /** Connections opened so far (the first, then every reconnect). */
  connects = 0;

  constructor(private readonly opts: DialOutOptions) {}

  get connected(): boolean {
    return this.socket?.readyState === WebSocket.OPEN;
  }

  start(): void {
    this.stopped = false;
    this.connect();
  }

  /** Resolves once a connection is open (at once if one is). */
  whenConnected(): Promise<void> {
    if (this.connected) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.clearKeepalive();
    const socket = this.socket;
    this.socket = undefined;
    if (!socket || socket.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      socket.once('close', () => resolve());
      socket.close(1000, 'agent stopping');
      setTimeout(() => {
        socket.terminate();
        resolve();
      }, 2000).unref();
    });
  }

  /** The connect request's signature headers: a fresh, strictly increasing timestamp each time (replay guard). */
  private connectHeaders(): Record<string, string> {
    const now = Math.max(Date.now(), this.lastTimestamp + 1);
    this.lastTimestamp = now;
    return { ...signRequest(this.opts.key(), 'GET', agentConnectPath(this.opts.nodeId), '', now), [NODE_ID_HEADER]: this.opts.nodeId };
  }

  private connect(): void {
    if (this.stopped) return;
    const socket = new WebSocket(this.opts.url, { headers: this.connectHeaders(), handshakeTimeout: 15_000, maxPayload: 1024 * 1024 });
    this.socket = socket;
    let openedAt = 0;
    let answered = false;
    socket.on('unexpected-response', (_req, res) => {
      answered = true;
      // The handshake was answered with an HTTP status instead of an upgrade: refused.
      const status = res.statusCode ?? 0;
      if (!this.refusedBefore || (status !== 401 && status !== 403))
        this.opts.log(
          `dial-out connect refused (HTTP ${status})${status === 401 || status === 403 ? ': unknown node or revoked credentials (decommissioned? enrol again with a new token)' : ''}`,
        );
      this.refusedBefore = status === 401 || status === 403;
      res.resume();
      socket.terminate();
    });
    socket.on('open', () => {
      openedAt = Date.now();
      this.connects++;
      this.refusedBefore = false;
      this.lastFailure = undefined;
      this.opts.log(`dial-out connected to ${this.opts.url}${this.connects > 1 ? ` (reconnect ${this.connects - 1})` : ''}`);
      this.startKeepalive(socket);
      for (const w of this.waiters.splice(0)) w();
    });
    socket.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.onMessage(socket, data.toString());
    });
    socket.on('error', (e) => {
      // A refusal was logged above (terminating it raises an error too); a network failure is logged here.
      if (!openedAt && !answered && e.message !== this.lastFailure) this.opts.log(`dial-out connect failed: ${e.message} (retrying)`);
      if (!openedAt && !answered) this.lastFailure = e.message; // the same failure again is not logged again
    });
    socket.on('close', (code) => {
      if (this.socket === socket) this.socket = undefined;
      this.clearKeepalive();
      if (this.stopped) return;
      if (openedAt && Date.now() - openedAt >= STABLE_MS) this.attempt = 0;
      const delay = backoffDelay(this.attempt++, this.opts.backoffBaseMs ?? 500, this.opts.backoffCapMs ?? 30_000, this.opts.random);
      if (openedAt) this.opts.log(`dial-out connection closed (${code}); reconnecting in ${delay} ms`);
      this.retryTimer = setTimeout(() => this.connect(), delay);
    });
  }

  private onMessage(socket: WebSocket, text: string): void {
    const msg = parseMessage(orchestratorMessageSchema, text);
    if (!msg) {
      this.opts.log(`dial-out: ignored a message that is not a request (${text.slice(0, 80)})`);
      return;
    }
    if (msg.type === 'pong') {
      clearTimeout(this.pongTimer);
      this.pongTimer = undefined;
      return;
    }
    void this.run(socket, msg);
  }

  /** Serve one command and answer on the socket it came from (if that one dropped, the orchestrator asks again). */
  private async run(socket: WebSocket, cmd: AgentCommand): Promise<void> {
    const answer = await this.opts.serve({ method: cmd.method, path: cmd.path, headers: cmd.headers, body: cmd.body });
    if (!answer) return; // the simulated unresponsive node
    const reply: AgentReply = { type: 'response', requestId: cmd.requestId, status: answer.status, body: answer.body };
    if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(reply));
  }

  private startKeepalive(socket: WebSocket): void {
    const every = this.opts.keepaliveMs ?? 300_000;
    this.keepaliveTimer = setInterval(() => {
      if (socket.readyState !== WebSocket.OPEN) return;
      socket.send(JSON.stringify({ type: 'ping' }));
      this.pongTimer ??= setTimeout(() => {
        this.opts.log('dial-out: no pong from the orchestrator; dropping the connection');
        socket.terminate();
      }, this.opts.pongTimeoutMs ?? 30_000);
    }, every);
    this.keepaliveTimer.unref();
  }

  private clearKeepalive(): void {
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.pongTimer);
    this.keepaliveTimer = undefined;
    this.pongTimer = undefined;
  }
}
