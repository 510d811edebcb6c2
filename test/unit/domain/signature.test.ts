import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { beforeAll, describe, expect, it } from 'vitest';
import { verifyModuleSignature, type RevocationLists, type TrustPolicy } from '../../../functions/domain/signature.ts';
import { revocationListFetcher } from '../../../functions/lib/revocationLists.ts';
import { createDevPki, signedModuleVersion, type DevPki } from '../../../localcloud/devPki.ts';
import { codeSigning, crl, intermediateCa, issue, KU, root, signerOf, tlsServer, type Issued } from './fixtures/certificates.ts';

const artifact = Buffer.from('module bytes');
const fields = { name: 'demo-kernel', version: '1.1.0', entrypoint: 'init', resources: { cpuMillicores: 100, memoryMiB: 32 } };

const policy = (roots: string[], o: Partial<TrustPolicy> = {}): TrustPolicy => ({ trustedRoots: roots, revokedSerials: [], now: new Date(), ...o });
/** CRLs handed over as the fetcher would, as configured (required) lists. */
const crls =
  (...pems: string[]) =>
  async (): Promise<RevocationLists> => ({ lists: pems.map((data, i) => ({ source: `crl-${i}`, data, required: true })), unavailable: [] });

/** A manifest signed by `leaf`, with `intermediates` after it in the chain. */
function signedBy(leaf: Issued, intermediates: Issued[] = []) {
  const m = signedModuleVersion(fields, artifact, signerOf(leaf));
  return { manifest: m.manifest, signature: m.signature, chain: [leaf.certPem, ...intermediates.map((i) => i.certPem)] };
}
const verify = (m: ReturnType<typeof signedBy>, p: TrustPolicy) => verifyModuleSignature(m.manifest, m.signature, m.chain, p);

describe('verifyModuleSignature: signature and chain', () => {
  let ec: DevPki;
  let rsa: DevPki;
  beforeAll(async () => {
    [ec, rsa] = await Promise.all([createDevPki({ algorithm: 'ECDSA-P256-SHA256' }), createDevPki({ algorithm: 'RSA-SHA256' })]);
  });

  it.each(['ECDSA P-256', 'RSA-2048'])('accepts a valid %s signature by the dev PKI’s code-signing certificate', async (kind) => {
    const pki = kind === 'RSA-2048' ? rsa : ec;
    const m = signedModuleVersion(fields, artifact, pki);
    const verdict = await verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([pki.rootCertPem]));
    expect(verdict).toMatchObject({
      ok: true,
      signer: 'CN=Dev Module Signer, O=kmod-orchestrator',
      fingerprint256: expect.stringMatching(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/),
    });
  });

  it('rejects a manifest changed after signing', async () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const verdict = await verifyModuleSignature({ ...m.manifest, entrypoint: 'evil' }, m.signature, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('signature does not match') });
  });

  it('rejects a flipped signature byte', async () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const sig = Buffer.from(m.signature.value, 'base64');
    sig[sig.length - 1] ^= 0xff;
    const verdict = await verifyModuleSignature(m.manifest, { ...m.signature, value: sig.toString('base64') }, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict.ok).toBe(false);
  });

  it('rejects a chain that does not lead to a trusted root', async () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const verdict = await verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([rsa.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: 'the certificate chain does not lead to a trusted root' });
  });

  it('rejects an expired signer certificate', async () => {
    const old = await createDevPki({ notBefore: new Date(Date.now() - 10 * 86400_000), notAfter: new Date(Date.now() - 86400_000) });
    const m = signedModuleVersion(fields, artifact, old);
    const verdict = await verifyModuleSignature(m.manifest, m.signature, m.certificateChain, policy([old.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('expired') });
  });

  it('rejects a signer certificate on the configured serial list', async () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const { serialOf } = await import('../../../localcloud/devPki.ts');
    const verdict = await verifyModuleSignature(
      m.manifest,
      m.signature,
      m.certificateChain,
      policy([ec.rootCertPem], { revokedSerials: [serialOf(ec.signerCertPem).toUpperCase()] }),
    );
    expect(verdict).toEqual({ ok: false, reason: expect.stringContaining('revoked') });
  });

  it('rejects an algorithm that does not match the signer key', async () => {
    const m = signedModuleVersion(fields, artifact, ec);
    const verdict = await verifyModuleSignature(m.manifest, { ...m.signature, algorithm: 'RSA-SHA256' }, m.certificateChain, policy([ec.rootCertPem]));
    expect(verdict).toEqual({ ok: false, reason: 'the signer key is ec, not RSA' });
  });
});

describe('verifyModuleSignature: certificates meant for code signing (issue 15 defect 10)', () => {
  let trusted: Issued;
  beforeAll(async () => {
    trusted = await root('Trusted Root', { pathLength: 1 });
  });

  it('refuses a TLS server certificate (key agreement only, server authentication) issued by a trusted root', async () => {
    const tls = await issue(trusted, 'api.example.com', tlsServer);
    const verdict = await verify(signedBy(tls), policy([trusted.certPem]));
    expect(verdict).toEqual({
      ok: false,
      reason: 'the signer certificate CN=api.example.com is not meant for code signing: its key usage (keyAgreement) does not include digitalSignature',
    });
  });

  it('refuses a digital-signature certificate whose extended key usage is not code signing', async () => {
    const leaf = await issue(trusted, 'Web Signer', { keyUsage: KU.digitalSignature, eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] });
    expect(await verify(signedBy(leaf), policy([trusted.certPem]))).toEqual({
      ok: false,
      reason: 'the signer certificate CN=Web Signer is not meant for code signing: its extended key usage is serverAuth, clientAuth, not codeSigning',
    });
  });

  it('requires both usage extensions to be present', async () => {
    const noKeyUsage = await issue(trusted, 'No KU', codeSigning({ keyUsage: null }));
    expect(await verify(signedBy(noKeyUsage), policy([trusted.certPem]))).toMatchObject({ reason: expect.stringContaining('has no key usage extension') });
    const noEku = await issue(trusted, 'No EKU', codeSigning({ eku: null }));
    expect(await verify(signedBy(noEku), policy([trusted.certPem]))).toMatchObject({ reason: expect.stringContaining('has no extended key usage extension') });
  });

  it('refuses a CA certificate as the signer', async () => {
    const ca = await issue(trusted, 'Signing CA', codeSigning({ ca: true }));
    expect(await verify(signedBy(ca), policy([trusted.certPem]))).toMatchObject({
      reason: 'the signer certificate CN=Signing CA is a CA certificate, not a code-signing one',
    });
  });

  it('accepts a code-signing leaf under an intermediate CA, with or without the root in the chain', async () => {
    const intermediate = await issue(trusted, 'Issuing CA', intermediateCa({ pathLength: 0 }));
    const leaf = await issue(intermediate, 'Team Signer', codeSigning());
    expect(await verify(signedBy(leaf, [intermediate]), policy([trusted.certPem]))).toMatchObject({ ok: true, signer: 'CN=Team Signer' });
    expect(await verify(signedBy(leaf, [intermediate, trusted]), policy([trusted.certPem]))).toMatchObject({ ok: true });
  });

  it('refuses an intermediate that is not a CA (CA:false, or no basic constraints)', async () => {
    const notCa = await issue(trusted, 'Not A CA', { ca: false, keyUsage: KU.keyCertSign });
    const leaf = await issue(notCa, 'Signer', codeSigning());
    expect(await verify(signedBy(leaf, [notCa]), policy([trusted.certPem]))).toEqual({
      ok: false,
      reason: 'the intermediate certificate CN=Not A CA is not a CA (basicConstraints CA:true is required to issue certificates)',
    });
    const bare = await issue(trusted, 'Bare', { noBasicConstraints: true, keyUsage: KU.keyCertSign });
    const leaf2 = await issue(bare, 'Signer', codeSigning());
    expect(await verify(signedBy(leaf2, [bare]), policy([trusted.certPem]))).toMatchObject({ reason: expect.stringContaining('CN=Bare is not a CA') });
  });

  it('refuses an intermediate whose key usage does not allow signing certificates', async () => {
    const crlOnly = await issue(trusted, 'CRL Only', intermediateCa({ keyUsage: KU.cRLSign }));
    const leaf = await issue(crlOnly, 'Signer', codeSigning());
    expect(await verify(signedBy(leaf, [crlOnly]), policy([trusted.certPem]))).toMatchObject({ reason: expect.stringContaining('lacks keyCertSign') });
  });

  it('refuses a chain longer than a path length constraint allows, at the root and at an intermediate', async () => {
    const strictRoot = await root('Strict Root', { pathLength: 0 });
    const intermediate = await issue(strictRoot, 'Issuing CA', intermediateCa());
    const leaf = await issue(intermediate, 'Signer', codeSigning());
    expect(await verify(signedBy(leaf, [intermediate]), policy([strictRoot.certPem]))).toEqual({
      ok: false,
      reason: 'path length exceeded: the root certificate CN=Strict Root allows 0 intermediate certificate(s) below it, the chain has 1',
    });
    const openRoot = await root('Open Root');
    const upper = await issue(openRoot, 'Upper CA', intermediateCa({ pathLength: 0 }));
    const lower = await issue(upper, 'Lower CA', intermediateCa());
    const leaf2 = await issue(lower, 'Signer', codeSigning());
    expect(await verify(signedBy(leaf2, [lower, upper]), policy([openRoot.certPem]))).toMatchObject({
      reason: 'path length exceeded: the intermediate certificate CN=Upper CA allows 0 intermediate certificate(s) below it, the chain has 1',
    });
  });
});

describe('verifyModuleSignature: revocation lists', () => {
  let trusted: Issued;
  let leaf: Issued;
  beforeAll(async () => {
    trusted = await root('CRL Root', { pathLength: 1 });
    leaf = await issue(trusted, 'Signer', codeSigning());
  });

  it('refuses a signer listed in a CRL of its issuer, naming the list, the date and the reason', async () => {
    const verdict = await verify(signedBy(leaf), policy([trusted.certPem], { revocationLists: crls(await crl(trusted, [leaf])) }));
    expect(verdict).toEqual({
      ok: false,
      reason: expect.stringMatching(
        /^the signer certificate CN=Signer \(serial [0-9a-f]+\) is revoked: listed in the CRL from crl-0 since .+, reason keyCompromise$/,
      ),
    });
  });

  it('refuses a revoked intermediate', async () => {
    const intermediate = await issue(trusted, 'Issuing CA', intermediateCa());
    const below = await issue(intermediate, 'Signer', codeSigning());
    const verdict = await verify(signedBy(below, [intermediate]), policy([trusted.certPem], { revocationLists: crls(await crl(trusted, [intermediate])) }));
    expect(verdict).toMatchObject({ ok: false, reason: expect.stringContaining('the intermediate certificate CN=Issuing CA') });
  });

  it('accepts a signer not on its issuer’s CRL, and ignores a CRL of another CA with the same name', async () => {
    const impostor = await root('CRL Root');
    const verdict = await verify(signedBy(leaf), policy([trusted.certPem], { revocationLists: crls(await crl(trusted, []), await crl(impostor, [leaf])) }));
    expect(verdict).toEqual({ ok: true, signer: 'CN=Signer', fingerprint256: expect.any(String), revocation: 'revocation checked against crl-0' });
  });

  it('ignores a CRL signed by an issuer whose key usage lacks cRLSign, and says so', async () => {
    const noCrlSign = await root('No CRL Sign', { keyUsage: KU.keyCertSign });
    const signer = await issue(noCrlSign, 'Signer', codeSigning());
    const verdict = await verify(signedBy(signer), policy([noCrlSign.certPem], { revocationLists: crls(await crl(noCrlSign, [signer])) }));
    expect(verdict).toMatchObject({ ok: true, revocation: expect.stringContaining('lacks cRLSign') });
  });

  it('refuses when a configured list cannot be parsed or read', async () => {
    expect(await verify(signedBy(leaf), policy([trusted.certPem], { revocationLists: crls('not a CRL') }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('the revocation list from crl-0 cannot be parsed'),
    });
    const fetcher = revocationListFetcher(['/nonexistent/dir/crl.pem']);
    expect(await verify(signedBy(leaf), policy([trusted.certPem], { revocationLists: fetcher }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining('revocation could not be checked: the configured revocation list /nonexistent/dir/crl.pem cannot be read'),
    });
  });

  it('reads the CRL at the certificate’s distribution point (a file here), and goes on without one it cannot read', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'crl-'));
    const url = pathToFileURL(join(dir, 'root.crl')).href;
    const withDp = await issue(trusted, 'DP Signer', codeSigning({ crlUrl: url }));
    const fetcher = revocationListFetcher([]);
    expect(await verify(signedBy(withDp), policy([trusted.certPem], { revocationLists: fetcher }))).toMatchObject({
      ok: true,
      revocation: `no CRL applies to this chain (${url} unavailable)`,
    });
    writeFileSync(join(dir, 'root.crl'), await crl(trusted, [withDp]));
    expect(await verify(signedBy(withDp), policy([trusted.certPem], { revocationLists: fetcher }))).toMatchObject({
      ok: false,
      reason: expect.stringContaining(`is revoked: listed in the CRL from ${url}`),
    });
  });

  it('asks for distribution points only once the chain verifies', async () => {
    const stranger = await root('Stranger');
    const foreign = await issue(stranger, 'Foreign', codeSigning({ crlUrl: 'http://169.254.169.254/latest/meta-data/' }));
    const asked: string[][] = [];
    const verdict = await verify(
      signedBy(foreign),
      policy([trusted.certPem], {
        revocationLists: async (dps) => {
          asked.push(dps);
          return { lists: [], unavailable: [] };
        },
      }),
    );
    expect(verdict).toMatchObject({ ok: false, reason: 'the certificate chain does not lead to a trusted root' });
    expect(asked).toEqual([]);
  });
});
