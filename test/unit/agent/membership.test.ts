import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { credentialsFile, readCredentials, writeCredentials } from '../../../functions/agent/membership.ts';

describe('agent credentials file', () => {
  it('is written owner-only (whatever the umask) and read back', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'kmod-creds-')), 'data');
    const c = {
      apiUrl: 'http://127.0.0.1:3000',
      nodeId: 'host-1',
      environment: 'Development',
      key: { id: 'nk-1', secret: 's' },
      enrolledAt: '2026-01-01T00:00:00Z',
    };
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
});
