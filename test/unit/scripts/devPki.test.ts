import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isLegacyPki, loadPki, revocationEntries, serialOf } from '../../../localcloud/devPki.ts';

const devPki = (...args: string[]) =>
  execFileSync(process.execPath, ['--import', 'tsx', 'scripts/dev-pki.ts', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

describe('npm run dev-pki', () => {
  it('makes a code-signing PKI with an empty CRL, then publishes a CRL that revokes the signer', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dev-pki-')), 'pki');
    expect(devPki('--dir', dir)).toContain(`wrote ${dir}/root-ca.pem, root-ca-key.pem, signer.pem, signer-key.pem and crl.pem (ECDSA-P256-SHA256)`);
    const pki = loadPki(dir)!;
    expect(isLegacyPki(pki)).toBe(false);
    expect(revocationEntries(readFileSync(join(dir, 'crl.pem'), 'utf8'))).toEqual([]);
    const serial = serialOf(pki.signerCertPem);
    expect(devPki('--dir', dir, '--revoke', 'signer', '--reason', 'keyCompromise')).toBe(`wrote ${dir}/crl.pem: 1 revoked certificate(s) (${serial})\n`);
    expect(devPki('--dir', dir, '--publish-crl')).toBe(`wrote ${dir}/crl.pem: 1 revoked certificate(s) (${serial})\n`);
    expect(revocationEntries(readFileSync(join(dir, 'crl.pem'), 'utf8'))).toEqual([{ serialNumber: serial, reason: 1, revocationDate: expect.any(Date) }]);
    expect(() => devPki('--dir', dir, '--revoke', 'signer', '--reason', 'boredom')).toThrow(/--reason must be one of unspecified, keyCompromise/);
  });

  it('prints its usage for --help and refuses an unknown flag (exit 2, no stack trace), writing nothing either way', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'dev-pki-')), 'pki');
    const run = (...args: string[]) => spawnSync(process.execPath, ['--import', 'tsx', 'scripts/dev-pki.ts', ...args], { encoding: 'utf8' });
    const help = run('--help', '--dir', dir);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/^usage: npm run -s dev-pki -- \[--dir DIR\] \[--rsa\] \[--force\]/);
    const unknown = run('--dri', dir);
    expect(unknown.status).toBe(2);
    expect(unknown.stderr).toMatch(/^dev-pki: Unknown option '--dri'/);
    expect(unknown.stderr).not.toContain('ERR_PARSE_ARGS');
    expect(existsSync(dir)).toBe(false);
  });
});
