/**
 * The development signing PKI: a root CA, a code-signing certificate (ECDSA P-256 by default, or
 * RSA-2048 with --rsa) and the root's CRL, which the signer certificate names as its distribution point.
 *
 *   npm run dev-pki -- [--dir .local/pki] [--rsa] [--force]      make one (--force replaces an existing one)
 *   npm run dev-pki -- --revoke signer|<serial hex> [--reason keyCompromise] [--dir .local/pki]
 *                                                                 publish a CRL that also lists that certificate
 *   npm run dev-pki -- --publish-crl [--dir .local/pki]          publish the CRL again, with the same entries and a new validity
 *
 * The root certificate (root-ca.pem) is what the orchestrator must trust (TRUSTED_ROOTS_PEM); crl.pem
 * is read at every Security scan (the local cloud configures it in REVOCATION_LIST_URLS).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseOptionsOrExit } from './lib/usage.ts';
import { CRL_FILE, CRL_REASONS, createPkiIn, crlReason, issueRevocationList, loadPki, revocationEntries, serialOf } from '../localcloud/devPki.ts';

const USAGE = [
  'usage: npm run -s dev-pki -- [--dir DIR] [--rsa] [--force]           make one (--force replaces an existing one)',
  '       npm run -s dev-pki -- --revoke signer|SERIAL [--reason R] [--dir DIR]   publish a CRL that also lists that certificate',
  '       npm run -s dev-pki -- --publish-crl [--dir DIR]              publish the CRL again with a new validity',
  '  DIR defaults to $KMOD_DATA_DIR/pki, else .local/pki',
].join('\n');

// Before anything is written: a mistyped flag must not make (or replace) a PKI.
const values = parseOptionsOrExit('dev-pki', USAGE, {
  dir: { type: 'string', default: `${process.env.KMOD_DATA_DIR ?? '.local'}/pki` },
  rsa: { type: 'boolean', default: false },
  force: { type: 'boolean', default: false },
  revoke: { type: 'string' },
  reason: { type: 'string', default: 'unspecified' },
  'publish-crl': { type: 'boolean', default: false },
  help: { type: 'boolean', short: 'h', default: false },
});

if (values.revoke || values['publish-crl']) {
  const pki = loadPki(values.dir);
  if (!pki?.rootKeyPem) {
    console.error(`${values.dir} holds no dev PKI with a root key: run npm start once (it creates or upgrades one) or npm run dev-pki -- --force`);
    process.exit(1);
  }
  const crlFile = join(values.dir, CRL_FILE);
  const entries = existsSync(crlFile) ? revocationEntries(readFileSync(crlFile, 'utf8')) : [];
  if (values.revoke) {
    const serialNumber = (values.revoke === 'signer' ? serialOf(pki.signerCertPem) : values.revoke).toLowerCase();
    const reason = crlReason(values.reason);
    if (reason === undefined) {
      console.error(`--reason must be one of ${CRL_REASONS.join(', ')}`);
      process.exit(2);
    }
    if (!entries.some((e) => e.serialNumber.toLowerCase() === serialNumber)) entries.push({ serialNumber, reason, revocationDate: new Date() });
  }
  writeFileSync(crlFile, await issueRevocationList(pki, entries), { mode: 0o644 });
  console.log(`wrote ${crlFile}: ${entries.length} revoked certificate(s)${entries.length ? ` (${entries.map((e) => e.serialNumber).join(', ')})` : ''}`);
  process.exit(0);
}

if (existsSync(join(values.dir, 'signer-key.pem')) && !values.force) {
  console.error(`${values.dir} already holds a PKI; pass --force to replace it`);
  process.exit(1);
}
const pki = await createPkiIn(values.dir, values.rsa ? 'RSA-SHA256' : 'ECDSA-P256-SHA256');
console.log(`wrote ${values.dir}/root-ca.pem, root-ca-key.pem, signer.pem, signer-key.pem and ${CRL_FILE} (${pki.algorithm})`);
