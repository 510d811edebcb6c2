import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { ephemeralRangeStart, exposureWarning, portBelowEphemeralRange } from '../../../localcloud/net.ts';

describe('the port DynamoDB Local is given up front', () => {
  it('is free and below the kernel’s ephemeral range, so no port-0 listener can take it while the JVM boots', async () => {
    const start = ephemeralRangeStart();
    expect(start).toBeGreaterThan(1024);
    const ports = await Promise.all(Array.from({ length: 20 }, () => portBelowEphemeralRange()));
    for (const port of ports) {
      expect(port).toBeGreaterThanOrEqual(10_000);
      expect(port).toBeLessThan(start);
    }
    // Free: it can be bound on every interface, as DynamoDB Local binds it.
    const s = createServer();
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.listen(ports[0], '0.0.0.0', resolve);
    });
    await new Promise((r) => s.close(r));
    // Hundreds of port-0 listeners never land on it.
    const listeners = await Promise.all(
      Array.from({ length: 200 }, async () => {
        const l = createServer();
        await new Promise<void>((r) => l.listen(0, '127.0.0.1', r));
        return l;
      }),
    );
    const taken = listeners.map((l) => (l.address() as { port: number }).port);
    expect(taken.filter((p) => p < start)).toEqual([]);
    await Promise.all(listeners.map((l) => new Promise((r) => l.close(r))));
  });
});

describe('the warning npm start prints when it listens beyond loopback', () => {
  it('is silent on loopback hosts and the default', () => {
    for (const host of [undefined, '', '127.0.0.1', '127.1.2.3', 'localhost', 'LOCALHOST', '::1', '[::1]', '::ffff:127.0.0.1'])
      expect(exposureWarning(host), String(host)).toBeUndefined();
  });

  it('names the host and what anyone reaching it can do, for any other', () => {
    for (const host of ['0.0.0.0', '::', '192.168.1.20', 'my-laptop.lan', '128.0.0.1']) {
      const w = exposureWarning(host);
      expect(w, host).toContain(`HOST=${host}`);
      expect(w).toContain('/_local/identity/token');
      expect(w).toMatch(/Admin/);
    }
  });
});
