import { createServer, type Server } from 'node:http';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CredentialStore,
  credentialsFile,
  keysAfterAnswer,
  readCredentials,
  startHeartbeats,
  writeCredentials,
  type NodeCredentials,
} from '../../../functions/agent/membership.ts';
import { verifyRequest, type AgentKey, type HealthReport } from '../../../functions/agent/protocol.ts';

const k0 = { id: 'nk-0', secret: 'zero' };
const k1 = { id: 'nk-1', secret: 'one' };
const k2 = { id: 'nk-2', secret: 'two' };

const creds = (keys: AgentKey[], apiUrl = 'http://127.0.0.1:3000'): NodeCredentials => ({
  apiUrl,
  nodeId: 'host-1',
  environment: 'Development',
  keys,
  key: keys[0],
  enrolledAt: '2026-01-01T00:00:00Z',
});
const dataDir = () => join(mkdtempSync(join(tmpdir(), 'kmod-creds-')), 'data');

describe('agent credentials file', () => {
  it('is written owner-only (whatever the umask) and read back', () => {
    const dir = dataDir();
    const c = creds([k0]);
    const umask = process.umask(0o000);
    try {
      writeCredentials(dir, c);
    } finally {
      process.umask(umask);
    }
    expect(statSync(credentialsFile(dir)).mode & 0o777).toBe(0o600);
    expect(readCredentials(dir)).toEqual(c);
    expect(readCredentials(join(dir, 'missing'))).toBeUndefined();
  });

  it('reads the single-key file of an agent from before key rotation, and keeps writing `key` for one', () => {
    const dir = dataDir();
    writeCredentials(dir, creds([k0]));
    const old = { apiUrl: 'http://x', nodeId: 'host-1', environment: 'QA', key: k0, enrolledAt: '2026-01-01T00:00:00Z' };
    writeFileSync(credentialsFile(dir), JSON.stringify(old));
    expect(readCredentials(dir)).toEqual({ ...old, keys: [k0] });
    writeCredentials(dir, creds([k1, k0]));
    expect(JSON.parse(readFileSync(credentialsFile(dir), 'utf8'))).toMatchObject({ keys: [k1, k0], key: k1 });
  });

  it('tightens a leftover temp file from a crash to owner-only before it becomes the file', () => {
    const dir = dataDir();
    writeCredentials(dir, creds([k0]));
    writeFileSync(`${credentialsFile(dir)}.tmp`, 'half', { mode: 0o644 });
    chmodSync(`${credentialsFile(dir)}.tmp`, 0o644);
    writeCredentials(dir, creds([k1, k0]));
    expect(statSync(credentialsFile(dir)).mode & 0o777).toBe(0o600);
    expect(readCredentials(dir)?.keys).toEqual([k1, k0]);
  });
});

describe('keys after a heartbeat answer', () => {
  it('puts a delivered key first and keeps the old one while the orchestrator honours it', () => {
    expect(keysAfterAnswer([k0], { credentials: { keyId: 'nk-1', secret: 'one' }, acceptedKeyIds: ['nk-0', 'nk-1'] })).toEqual([k1, k0]);
    // The promotion's answer: both still honoured, nothing changes.
    expect(keysAfterAnswer([k1, k0], { acceptedKeyIds: ['nk-1', 'nk-0'] })).toBeUndefined();
    // The overlap is over.
    expect(keysAfterAnswer([k1, k0], { acceptedKeyIds: ['nk-1'] })).toEqual([k1]);
  });

  it('never drops the signing key, and drops nothing when the answer lists no keys (an older orchestrator)', () => {
    expect(keysAfterAnswer([k1, k0], { acceptedKeyIds: [] })).toEqual([k1]);
    expect(keysAfterAnswer([k1, k0], {})).toBeUndefined();
    expect(keysAfterAnswer([k1, k0], { acceptedKeyIds: 'nk-1' as unknown as string[] })).toBeUndefined();
  });

  it('takes a key delivered again (answer lost, agent restored) without duplicating it', () => {
    expect(keysAfterAnswer([k1, k0], { credentials: { keyId: 'nk-1', secret: 'one' }, acceptedKeyIds: ['nk-0', 'nk-1'] })).toBeUndefined();
    expect(keysAfterAnswer([k0, k1], { credentials: { keyId: 'nk-1', secret: 'one' }, acceptedKeyIds: ['nk-0', 'nk-1'] })).toEqual([k1, k0]);
    expect(keysAfterAnswer([k0], { credentials: { keyId: 'nk-2' } as never, acceptedKeyIds: ['nk-0'] })).toBeUndefined();
  });
});

describe('heartbeats that carry key changes', () => {
  let server: Server | undefined;
  let stop: (() => void) | undefined;
  afterEach(async () => {
    stop?.();
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    server = undefined;
  });

  const health = (): HealthReport => ({
    nodeId: 'host-1',
    protocolVersion: '1',
    status: 'healthy',
    reasons: [],
    at: new Date().toISOString(),
    uptimeSeconds: 1,
    modules: {},
    metrics: { nodeId: 'host-1', at: '', cpuPercent: 0, memoryPercent: 0, latencyMs: 0, errorRatePercent: 0, requestsPerSecond: 0 },
  });

  /**
   * A stand-in orchestrator: node keys K0 (current) and K2 (pending). It answers a heartbeat signed
   * with K0 by handing over K2, and one signed with K2 by promoting it (K0 honoured one more beat).
   */
  async function orchestrator(signedWith: string[], onBeat: (n: number) => void = () => undefined): Promise<string> {
    const keys = [k0, k2];
    let promotedAt = -1;
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const verdict = verifyRequest(keys, 'POST', req.url ?? '', Buffer.concat(chunks).toString(), req.headers);
        if (!verdict.ok) {
          res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ message: verdict.reason }));
          return;
        }
        signedWith.push(verdict.keyId);
        onBeat(signedWith.length);
        if (verdict.keyId === 'nk-2' && promotedAt < 0) promotedAt = signedWith.length;
        const answer =
          verdict.keyId === 'nk-0'
            ? { credentials: { keyId: k2.id, secret: k2.secret }, acceptedKeyIds: ['nk-0', 'nk-2'] }
            : { acceptedKeyIds: signedWith.length - promotedAt < 1 ? ['nk-2', 'nk-0'] : ['nk-2'] };
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'Online', ...answer }));
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const a = server.address();
    return `http://127.0.0.1:${typeof a === 'object' && a ? a.port : 0}`;
  }

  const until = async (cond: () => boolean) => {
    for (let i = 0; i < 200 && !cond(); i++) await new Promise((r) => setTimeout(r, 25));
    expect(cond()).toBe(true);
  };

  it('stores a delivered key before signing with it, accepts calls with both, then drops the old one', async () => {
    const signedWith: string[] = [];
    const onDisk: string[][] = [];
    const dir = dataDir();
    const apiUrl = await orchestrator(signedWith, () => onDisk.push(readCredentials(dir)!.keys.map((k) => k.id)));
    writeCredentials(dir, creds([k0], apiUrl));
    const store = new CredentialStore(dir, readCredentials(dir)!);
    const lines: string[] = [];
    stop = startHeartbeats(store, 1, 'http://127.0.0.1:9', health, (l) => lines.push(l));
    // The third answer is what drops the old key: wait for the agent to have handled it, not just for the server to have seen the beat.
    await until(() => signedWith.length >= 3 && lines.length >= 2);
    stop();
    expect(signedWith.slice(0, 3)).toEqual(['nk-0', 'nk-2', 'nk-2']);
    // When the first beat signed with the new key arrived, the disk already held it.
    expect(onDisk[1]).toEqual(['nk-2', 'nk-0']);
    expect(store.keys().map((k) => k.id)).toEqual(['nk-2']);
    expect(readCredentials(dir)?.keys).toEqual([k2]);
    expect(statSync(credentialsFile(dir)).mode & 0o777).toBe(0o600);
    expect(lines).toEqual([
      'received key nk-2 from the orchestrator; signing with it from the next heartbeat',
      'dropped key nk-0: no longer honoured by the orchestrator',
    ]);
  }, 15_000);

  it('keeps signing with the old key while the new one cannot be stored, and takes it when it can', async () => {
    const signedWith: string[] = [];
    const dir = dataDir();
    const apiUrl = await orchestrator(signedWith);
    writeCredentials(dir, creds([k0], apiUrl));
    const store = new CredentialStore(dir, readCredentials(dir)!);
    mkdirSync(`${credentialsFile(dir)}.tmp`); // the temp file cannot be written (even by root)
    const lines: string[] = [];
    try {
      stop = startHeartbeats(store, 1, 'http://127.0.0.1:9', health, (l) => lines.push(l));
      await until(() => signedWith.length >= 2);
      expect(signedWith.slice(0, 2)).toEqual(['nk-0', 'nk-0']);
      expect(store.keys()).toEqual([k0]);
      expect(lines[0]).toMatch(/^could not store the node's new keys, keeping the old ones: /);
    } finally {
      rmSync(`${credentialsFile(dir)}.tmp`, { recursive: true });
    }
    await until(() => signedWith.includes('nk-2'));
    expect(readCredentials(dir)?.keys[0]).toEqual(k2);
  }, 15_000);
});
