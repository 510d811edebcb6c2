import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';

/** A TCP port free right now on 127.0.0.1 (for processes that need a port number up front). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

/** Whether nothing listens on `port` (on every interface, as DynamoDB Local binds). */
function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '0.0.0.0', () => s.close(() => resolve(true)));
  });
}

/** The lowest port the kernel hands out for port-0 listeners (Linux; elsewhere at least 32768). */
export function ephemeralRangeStart(): number {
  try {
    const low = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0]);
    return Number.isInteger(low) && low > 1024 ? low : 32_768;
  } catch {
    return 32_768;
  }
}

/**
 * A TCP port free right now and below the kernel's ephemeral range, for a process that is given
 * its port up front and binds it seconds later (DynamoDB Local's JVM): no listener on port 0 (the
 * fleet's agents, the routers, starting meanwhile) can be handed the same port in between.
 */
export async function portBelowEphemeralRange(): Promise<number> {
  const low = 10_000;
  const high = ephemeralRangeStart();
  if (high - low < 1_000) return freePort();
  for (let i = 0; i < 50; i++) {
    const port = low + Math.floor(Math.random() * (high - low));
    if (await isFree(port)) return port;
  }
  return freePort();
}

/** Hosts only this machine can reach. */
const LOOPBACK = /^(localhost|127(?:\.\d{1,3}){3}|::1|\[::1\]|::ffff:127(?:\.\d{1,3}){3})$/i;

/**
 * The warning `npm start` prints when it listens beyond loopback: the local cloud's own endpoints
 * (`/_local/identity/token` mints a token of any role; the fleet, WebSocket and meter controls) take
 * no credentials and sit outside the rate rule, as a development cloud's do. Undefined on loopback.
 */
export function exposureWarning(host: string | undefined): string | undefined {
  if (host === undefined || host === '' || LOOPBACK.test(host)) return undefined;
  return `WARNING: HOST=${host} — anyone who can reach this machine can mint a token of any role (Admin included) at /_local/identity/token and drive the /_local/* controls, which take no credentials. Use it only on a network you trust.`;
}
